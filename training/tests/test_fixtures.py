"""Checks the committed golden fixtures (tests/fixtures) against the reference computation.

Never regenerates anything: if these fail after a deliberate change, regenerate with
``PYTHONPATH=training python -m tfci_training.fixtures --out tests/fixtures`` and review the diff.
"""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tfci_training.export import sha256_file
from tfci_training.reference import load, run

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "tests",
                        "fixtures")
ARCHS = ["bmshj2018-factorized", "b2018-gdn", "mbt2018-mean"]


@pytest.mark.parametrize("arch", ARCHS)
def test_golden_matches_reference(arch):
    d = os.path.join(FIXTURES, arch)
    if not os.path.exists(os.path.join(d, "golden.safetensors")):
        pytest.skip("fixtures not generated")
    with open(os.path.join(d, "manifest.json")) as f:
        (entry,) = json.load(f)["families"]
    assert entry["family"] == f"fixture-{arch}"
    model_path = os.path.join(d, entry["file"])
    assert sha256_file(model_path) == entry["sha256"]
    t, meta = load(model_path)
    g, gmeta = load(os.path.join(d, "golden.safetensors"))
    img = np.asarray(Image.open(os.path.join(d, "input.png")).convert("RGB"))
    assert torch.equal(torch.from_numpy(img.copy()), g["x"])
    level = int(g["level"][0])
    ref = run(t, meta, g["x"], level)
    keys = {"x", "level", "y", "y_symbols", "y_hat", "x_hat"}
    if arch == "mbt2018-mean":
        keys |= {"z", "z_symbols", "scales", "scale_indexes", "means"}
    assert set(g) == keys
    for k in keys - {"x", "level"}:
        if g[k].dtype == torch.int32:
            assert torch.equal(ref[k], g[k]), k
        else:
            assert g[k].dtype == torch.float32
            assert torch.allclose(ref[k], g[k], atol=1e-4, rtol=1e-5), k
    info = json.loads(gmeta["analysis"])
    assert min(info["y_escapes"]) >= 1
    if arch == "mbt2018-mean":
        assert info["distinct_scale_indexes"] >= 10 and sum(info["z_escapes"]) >= 2
