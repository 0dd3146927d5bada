"""Independent reference decoder-side computation straight from an exported safetensors file.

It reads only what the Rust side reads (docs/model-format.md: tensors + metadata) and re-implements the
computation with plain ``torch.nn.functional`` calls, so the tests can check that the exporter's names,
layouts and the models' ``inference`` agree with the contract.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from safetensors import safe_open

from .models import to_input

# architecture -> transform -> list of (index, kind, kernel, stride); kind in c, d, gdn, igdn, lrelu
_FACT_GA = [(0, "c", 5, 2), (1, "gdn"), (2, "c", 5, 2), (3, "gdn"), (4, "c", 5, 2), (5, "gdn"),
            (6, "c", 5, 2)]
_FACT_GS = [(0, "d", 5, 2), (1, "igdn"), (2, "d", 5, 2), (3, "igdn"), (4, "d", 5, 2), (5, "igdn"),
            (6, "d", 5, 2)]
LAYOUT = {
    "bmshj2018-factorized": {"g_a": _FACT_GA, "g_s": _FACT_GS},
    "b2018-gdn": {
        "g_a": [(0, "c", 9, 4), (1, "gdn"), (2, "c", 5, 2), (3, "gdn"), (4, "c", 5, 2)],
        "g_s": [(0, "d", 5, 2), (1, "igdn"), (2, "d", 5, 2), (3, "igdn"), (4, "d", 9, 4)],
    },
    "mbt2018-mean": {
        "g_a": _FACT_GA, "g_s": _FACT_GS,
        "h_a": [(0, "c", 3, 1), (1, "lrelu"), (2, "c", 5, 2), (3, "lrelu"), (4, "c", 5, 2)],
        "h_s": [(0, "d", 5, 2), (1, "lrelu"), (2, "d", 5, 2), (3, "lrelu"), (4, "c", 3, 1)],
    },
}


def load(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def expected_tensor_names(architecture: str) -> set:
    names = {"y_gain", "y_gain_inv"}
    for tname, layers in LAYOUT[architecture].items():
        for layer in layers:
            i, kind = layer[0], layer[1]
            if kind in ("gdn", "igdn"):
                names |= {f"{tname}.{i}.beta", f"{tname}.{i}.gamma"}
            elif kind in ("c", "d"):
                names.add(f"{tname}.{i}.weight")
                if not (architecture == "b2018-gdn" and tname == "g_a" and i == 4):
                    names.add(f"{tname}.{i}.bias")
    tables = ["cdf", "cdf_len", "offset"]
    if architecture == "mbt2018-mean":
        names |= {f"z_eb.{k}" for k in tables + ["medians"]}
        names |= {f"y_gc.{k}" for k in tables + ["scale_table"]}
    else:
        names |= {f"y_eb.{k}" for k in tables + ["medians"]}
    return names


def _run(t: Dict[str, torch.Tensor], arch: str, tname: str, x: torch.Tensor) -> torch.Tensor:
    for layer in LAYOUT[arch][tname]:
        i, kind = layer[0], layer[1]
        p = f"{tname}.{i}"
        if kind == "c":
            k, s = layer[2], layer[3]
            bias = t[p + ".bias"].float() if p + ".bias" in t else None
            x = F.conv2d(x, t[p + ".weight"].float(), bias, stride=s, padding=k // 2)
        elif kind == "d":
            k, s = layer[2], layer[3]
            x = F.conv_transpose2d(x, t[p + ".weight"].float(), t[p + ".bias"].float(), stride=s,
                                   padding=k // 2, output_padding=s - 1)
        elif kind in ("gdn", "igdn"):
            beta, gamma = t[p + ".beta"].float(), t[p + ".gamma"].float()
            C = beta.shape[0]
            norm = F.conv2d(x**2, gamma.reshape(C, C, 1, 1), beta)
            x = x * (torch.sqrt(norm) if kind == "igdn" else torch.rsqrt(norm))
        elif kind == "lrelu":
            x = F.leaky_relu(x, 0.01)
    return x


@torch.no_grad()
def run(t: Dict[str, torch.Tensor], meta: Dict[str, str], x, level: int) -> Dict[str, torch.Tensor]:
    arch, M = meta["architecture"], int(meta["M"])
    x = to_input(x)
    H, W = x.shape[-2:]
    g = t["y_gain"][level - 1].view(1, M, 1, 1)
    gi = t["y_gain_inv"][level - 1].view(1, M, 1, 1)
    y = _run(t, arch, "g_a", x)
    assert y.shape[-2:] == (math.ceil(H / 16), math.ceil(W / 16))
    y_g = y * g
    out = {"y": y[0]}
    if arch == "mbt2018-mean":
        N = int(meta["N"])
        z = _run(t, arch, "h_a", y_g)
        mz = t["z_eb.medians"].view(1, N, 1, 1)
        z_sym = torch.round(z - mz)
        params = _run(t, arch, "h_s", z_sym + mz)[..., : y.shape[-2], : y.shape[-1]]
        scales, means = params[:, :M], params[:, M:]
        table = t["y_gc.scale_table"]
        s = torch.maximum(scales, torch.tensor(0.11, dtype=torch.float32))
        idx = 63 - (s.unsqueeze(-1) <= table[:63]).sum(-1)
        y_sym = torch.round(y_g - means)
        y_hat = (y_sym + means) * gi
        out.update(z=z[0], z_symbols=z_sym[0].int(), scales=scales[0], means=means[0],
                   scale_indexes=idx[0].int())
    else:
        med = t["y_eb.medians"][(level - 1) * M: level * M].view(1, M, 1, 1)
        y_sym = torch.round(y_g - med)
        y_hat = (y_sym + med) * gi
    x_hat = _run(t, arch, "g_s", y_hat)[..., :H, :W].clamp(0, 1)
    out.update(y_symbols=y_sym[0].int(), y_hat=y_hat[0], x_hat=x_hat[0])
    return out
