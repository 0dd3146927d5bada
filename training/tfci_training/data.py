"""Training data: image discovery (Kodak refused), decode-once uint8 bank, random crops + flips on device.

Every image is decoded once (PIL, converted to RGB) and kept as uint8 in one zero-padded tensor
``[n, 3, Hmax, Wmax]`` on the training device, with the true sizes next to it.  A batch is produced by a
single advanced-indexing gather on the device: random image, random crop position inside that image's own
size, random horizontal and vertical flip (folded into the gather indexes), then ``/ 255`` in float32
(as the Rust side converts pixels).  All randomness comes from a ``torch.Generator`` on the device, so the
sampler is reproducible and its state can be checkpointed.

Kodak is evaluation-only: any folder or file whose path (as given or resolved) contains "kodak"
(case-insensitive) is refused with ``KodakError``.
"""

from __future__ import annotations

import math

import os
from typing import List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class KodakError(ValueError):
    """Raised when a training path points at Kodak (evaluation-only data)."""


def _check_not_kodak(path: str) -> None:
    for p in (path, os.path.realpath(path)):
        if "kodak" in p.lower():
            raise KodakError(
                f"refusing training data path {path!r}: Kodak is evaluation-only, never train on it")


def find_images(folders: Sequence[str]) -> List[str]:
    """Every JPEG/PNG under ``folders`` (recursive, sorted, duplicates removed); refuses Kodak."""
    if not folders:
        raise ValueError("no data folders given")
    for folder in folders:
        _check_not_kodak(folder)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"data folder {folder!r} does not exist")
    out, seen = [], set()
    for folder in folders:
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                if not name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                path = os.path.join(root, name)
                _check_not_kodak(path)
                real = os.path.realpath(path)
                if real in seen:
                    continue
                seen.add(real)
                out.append(path)
    if not out:
        raise FileNotFoundError(f"no JPEG/PNG images found in {list(folders)}")
    return out


def decode(path: str) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


# BT.601 full range, as the colour guard of tfci-eval measures.
_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114],
                            [-0.168736, -0.331264, 0.5],
                            [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = torch.linalg.inv(_RGB_TO_YCC)


def colour_aug(x: torch.Tensor, u: torch.Tensor, frac: float, max_sat: float) -> torch.Tensor:
    """Rotates the chroma of a ``frac`` of the crops by a random hue angle and scales it by a random
    gain in ``[1, max_sat]`` (luma kept, clamped to [0, 1], rounded to 8 bits).

    Photos hold few saturated colours away from skin, sky and foliage, so a codec trained on them
    alone drifts on a saturated yellow-green (tfci-eval's colour chart); rotated crops show it every
    hue at photo-like structure. ``u`` is ``[batch, 3]`` uniforms: apply?, angle, gain.
    """
    on = (u[:, 0] < frac).to(x.dtype)
    theta = 2 * math.pi * u[:, 1]
    gain = 1 + (max_sat - 1) * u[:, 2]
    cos, sin = torch.cos(theta) * gain, torch.sin(theta) * gain
    # Per crop: RGB -> YCbCr, rotate and scale (Cb, Cr), back; identity where `on` is 0.
    rot = torch.zeros(x.shape[0], 3, 3, dtype=x.dtype, device=x.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = cos, -sin
    rot[:, 2, 1], rot[:, 2, 2] = sin, cos
    eye = torch.eye(3, dtype=x.dtype, device=x.device).expand_as(rot)
    rot = on[:, None, None] * rot + (1 - on[:, None, None]) * eye
    m = _YCC_TO_RGB.to(x) @ rot @ _RGB_TO_YCC.to(x)
    y = torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 1)
    y = torch.round(y * 255) / 255
    return torch.where(on[:, None, None, None] > 0, y, x)


class CropSampler:
    """Random ``crop x crop`` patches with random flips from a bank of uint8 images on ``device``.

    Images whose smaller side is below ``crop`` are skipped (``self.skipped`` lists them), and so are
    files with an image extension that PIL cannot decode (``self.unreadable``).
    """

    def __init__(self, paths: Sequence[str], crop: int, device: torch.device, seed: int = 0):
        self.crop = int(crop)
        self.device = torch.device(device)
        imgs: List[np.ndarray] = []
        self.paths: List[str] = []
        self.skipped: List[Tuple[str, Tuple[int, int]]] = []
        self.unreadable: List[Tuple[str, str]] = []
        for p in paths:
            try:
                a = decode(p)
            except (UnidentifiedImageError, OSError) as e:
                self.unreadable.append((p, f"{type(e).__name__}: {e}"))
                continue
            if min(a.shape[0], a.shape[1]) < self.crop:
                self.skipped.append((p, (a.shape[1], a.shape[0])))
                continue
            imgs.append(a)
            self.paths.append(p)
        if not imgs:
            raise ValueError(f"no image is at least {self.crop}x{self.crop} (all {len(paths)} skipped)")
        hmax = max(a.shape[0] for a in imgs)
        wmax = max(a.shape[1] for a in imgs)
        bank = torch.zeros(len(imgs), 3, hmax, wmax, dtype=torch.uint8)
        for i, a in enumerate(imgs):
            bank[i, :, : a.shape[0], : a.shape[1]] = torch.from_numpy(a).permute(2, 0, 1)
        self.bank = bank.to(self.device)
        self.sizes = torch.tensor([[a.shape[0], a.shape[1]] for a in imgs], dtype=torch.int64,
                                  device=self.device)
        self._ar = torch.arange(self.crop, device=self.device)
        self._ch = torch.arange(3, device=self.device).view(1, 3, 1, 1)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        # (fraction, largest saturation gain) of crops whose colours are rotated (colour_aug)
        self.colour = (0.0, 1.0)

    def __len__(self) -> int:
        return self.bank.shape[0]

    def sample(self, batch: int) -> torch.Tensor:
        """float32 ``[batch, 3, crop, crop]`` in [0, 1] (uint8 / 255)."""
        g, c = self.generator, self.crop
        idx = torch.randint(len(self), (batch,), generator=g, device=self.device)
        u = torch.rand(batch, 4, generator=g, device=self.device)
        hw = self.sizes[idx]
        room = hw - c + 1  # number of valid offsets per axis (>= 1)
        y0 = torch.minimum((u[:, 0] * room[:, 0]).long(), room[:, 0] - 1)
        x0 = torch.minimum((u[:, 1] * room[:, 1]).long(), room[:, 1] - 1)
        ar = self._ar.unsqueeze(0)
        rows = torch.where(u[:, 2:3] < 0.5, ar, c - 1 - ar) + y0[:, None]  # vertical flip
        cols = torch.where(u[:, 3:4] < 0.5, ar, c - 1 - ar) + x0[:, None]  # horizontal flip
        patch = self.bank[idx.view(-1, 1, 1, 1), self._ch, rows.view(batch, 1, c, 1),
                          cols.view(batch, 1, 1, c)]
        x = patch.to(torch.float32) / 255.0
        if self.colour[0] > 0:
            x = colour_aug(x, torch.rand(batch, 3, generator=g, device=self.device), *self.colour)
        return x

    # -- checkpointing -----------------------------------------------------------------------------
    def state(self) -> dict:
        return {"device_type": self.device.type, "generator": self.generator.get_state()}

    def load_state(self, state: dict, reseed: int) -> bool:
        """Restore the generator; returns False (and reseeds with ``reseed``) if saved on another device type."""
        if state.get("device_type") == self.device.type:
            self.generator.set_state(state["generator"])
            return True
        self.generator.manual_seed(int(reseed))
        return False
