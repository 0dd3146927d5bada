"""Quick Kodak proxy for training decisions (A/Bs, trunk health): a few images, every level, in PyTorch.

    python -m tfci_training.proxy_eval runs/trunk-X [runs/other ...] --images 03 05 14 15 20 23

Rate is the model's own likelihoods in eval mode (CompressAI rounds around the medians/means), i.e. an
estimate that tracks the coded size to within the stream overhead; quality is PSNR, MS-SSIM dB and the PSNR of
the BT.601 full-range Cb and Cr planes (what the colour guard of tfci-eval reports). Reads a run folder
(``checkpoint.pt``), a slim trunk (``.pt``) or an export (``.safetensors``). The figures that ship come from
the Rust decoder (``just models-report``); this is only the quick look used while training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Dict, List

import numpy as np
import torch
from PIL import Image
from pytorch_msssim import ms_ssim

from .models import FAMILIES, build_model
from .trunk import read_trunk

KODAK = "../../shared/data/kodak"
COLOURFUL = ["03", "05", "14", "15", "20", "23"]


def ycbcr(x: torch.Tensor) -> torch.Tensor:
    """[.., 3, H, W] RGB in [0, 1] -> BT.601 full-range Y, Cb, Cr in [0, 255]."""
    r, g, b = (x[..., i, :, :] * 255.0 for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], -3)


def psnr255(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def load_model(path: str):
    """(family, model) from a run folder, a slim trunk or an export."""
    if path.endswith(".safetensors"):
        raise SystemExit(f"{path}: an export holds no densities; give a run folder or a trunk")
    if os.path.isdir(path):
        ck = torch.load(os.path.join(path, "checkpoint.pt"), map_location="cpu", weights_only=False)
        if "families" in ck and ck["families"]:
            fam, st = next(iter(ck["families"].items()))
            model = build_model(st["architecture"], st["N"], st["M"], st["levels"])
            model.load_state_dict(st["model"])
            return fam, model, ck["step"]
        raise SystemExit(f"{path}: no family state")
    tr = read_trunk(path)
    model = build_model(tr["architecture"], tr["N"], tr["M"], tr["levels"])
    model.load_state_dict(tr["model"])
    return tr["family"], model, tr["step"]


@torch.no_grad()
def evaluate(model, family: str, images: List[str]) -> List[Dict[str, float]]:
    model.eval()
    model.update(force=True, update_quantiles=True)
    xs = []
    for k in images:
        img = np.asarray(Image.open(os.path.join(KODAK, f"kodim{k}.png")).convert("RGB"))
        xs.append(torch.from_numpy(img).permute(2, 0, 1).float().div(255).unsqueeze(0))
    rows = []
    for level in range(1, FAMILIES[family]["levels"] + 1):
        acc = {"bpp": 0.0, "psnr": 0.0, "msssim_db": 0.0, "cb": 0.0, "cr": 0.0}
        for x in xs:
            out = model(x, level)
            n, _, H, W = x.shape
            bits = sum(-torch.log2(v).sum() for v in out["likelihoods"].values())
            xh = out["x_hat"].clamp(0, 1)
            xh = torch.round(xh * 255) / 255
            ms = float(ms_ssim(xh, x, data_range=1.0))
            yc, ych = ycbcr(x), ycbcr(xh)
            acc["bpp"] += float(bits) / (H * W)
            acc["psnr"] += psnr255(x * 255, xh * 255)
            acc["msssim_db"] += -10 * math.log10(max(1 - ms, 1e-12))
            acc["cb"] += psnr255(yc[:, 1], ych[:, 1])
            acc["cr"] += psnr255(yc[:, 2], ych[:, 2])
        rows.append({"level": level, **{k: round(v / len(xs), 4) for k, v in acc.items()}})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--images", nargs="+", default=COLOURFUL, help="Kodak numbers (evaluation only)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = {}
    for p in args.paths:
        fam, model, step = load_model(p)
        rows = evaluate(model, fam, args.images)
        out[p] = {"family": fam, "step": step, "levels": rows}
        print(f"{p} ({fam}, step {step})")
        print("  level   bpp     PSNR  MS-SSIM dB   Cb     Cr")
        for r in rows:
            print(f"  {r['level']:5d} {r['bpp']:6.3f} {r['psnr']:7.2f} {r['msssim_db']:8.2f} "
                  f"{r['cb']:7.2f} {r['cr']:6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
