"""Gradient fixtures: PyTorch autograd's input gradients of every transform of the golden fixtures'
models, for the Rust backward passes of the encoder's latent search (``cpu::backprop``,
``tests/gradients.rs``).

For each fixture folder (``tests/fixtures/<architecture>``) and each of its transforms (``g_a``,
``g_s``, and ``h_a``, ``h_s`` for the hyperprior), the input is the fixture's own tensor where it
has one (``x`` / 255 for ``g_a``, ``y_hat`` for ``g_s``, ``y`` for ``h_a``, ``z`` for ``h_s``), the
upstream gradient a seeded normal tensor of the output's shape, and the fixture records
``<net>.input``, ``<net>.upstream``, ``<net>.output`` and ``<net>.grad`` = d/d input of
``sum(net(input) * upstream)``, computed with the independent reference ops of ``reference.py`` (plain
``torch.nn.functional`` on the exported tensors, exactly what the Rust side loads).

    cd training && python -m tfci_training.grad_fixtures --fixtures ../tests/fixtures
"""

from __future__ import annotations

import argparse
import glob
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .reference import LAYOUT, _run, load

INPUTS = {"g_a": "x", "g_s": "y_hat", "h_a": "y", "h_s": "z"}


def gradients(folder: str, seed: int = 0) -> dict:
    """The tensors of one fixture folder's ``gradients.safetensors``."""
    (model,) = glob.glob(os.path.join(folder, "fixture-*.safetensors"))
    t, meta = load(model)
    arch = meta["architecture"]
    with safe_open(os.path.join(folder, "golden.safetensors"), framework="pt") as f:
        golden = {k: f.get_tensor(k) for k in f.keys()}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for net in LAYOUT[arch]:
        x = golden[INPUTS[net]]
        if net == "g_a":
            x = x.permute(2, 0, 1).float() / 255.0
        x = x.float()[None].clone().requires_grad_(True)
        y = _run(t, arch, net, x)
        upstream = torch.randn(y.shape, generator=gen, dtype=torch.float32)
        (grad,) = torch.autograd.grad((y * upstream).sum(), x)
        for name, v in (("input", x), ("upstream", upstream), ("output", y), ("grad", grad)):
            out[f"{net}.{name}"] = v.detach()[0].contiguous()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", required=True, help="the folder of fixture folders (tests/fixtures)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for folder in sorted(glob.glob(os.path.join(args.fixtures, "*", ""))):
        if not glob.glob(os.path.join(folder, "fixture-*.safetensors")):
            continue
        tensors = gradients(folder)
        save_file(tensors, os.path.join(folder, "gradients.safetensors"))
        print(f"{folder}: {', '.join(sorted({k.split('.')[0] for k in tensors}))}")


if __name__ == "__main__":
    main()
