"""Deterministic synthetic test image (smooth gradients + texture + sharp edges)."""

from __future__ import annotations

import numpy as np


def synthetic_image(width: int = 72, height: int = 53, seed: int = 20240601) -> np.ndarray:
    """uint8 ``[height, width, 3]`` RGB image."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    r = 0.15 + 0.7 * u
    g = 0.2 + 0.6 * v + 0.1 * np.sin(2 * np.pi * (u + v))
    b = 0.5 + 0.35 * np.cos(2 * np.pi * 1.5 * u) * np.sin(2 * np.pi * v)
    img = np.stack([r, g, b], axis=-1)
    # texture: oriented sinusoid + a little seeded noise
    img += 0.08 * np.sin(2 * np.pi * (0.23 * xx + 0.11 * yy))[..., None] * np.array([1.0, -0.6, 0.4])
    rng = np.random.default_rng(seed)
    img += 0.04 * rng.standard_normal(img.shape)
    # sharp edges: a dark rectangle, a bright disc and a hard diagonal step
    img[height // 5: height // 2, width // 8: width // 3] = [0.05, 0.08, 0.1]
    disc = (xx - 0.7 * width) ** 2 + (yy - 0.6 * height) ** 2 < (0.18 * height) ** 2
    img[disc] = [0.95, 0.9, 0.2]
    img[(xx + 2 * yy) > 1.9 * height + 0.55 * width, 2] = 0.95
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
