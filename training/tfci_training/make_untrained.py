"""Placeholder models: seeded random initialisations, clearly marked ``-untrained``.

    PYTHONPATH=training python -m tfci_training.make_untrained --out models

They let the Rust side run the whole pipeline (load, encode, decode) before trained weights exist. They
are *not* codecs: reconstructions are meaningless.  To make the latents non-degenerate (a plain random
init gives latents far below 0.5, i.e. all-zero symbols), the per-level gains are a geometric ramp
calibrated on a synthetic image so the gained latent std goes from ~0.5 (level 1) to ~8 (level L); for
mbt2018-mean the scale outputs of ``h_s`` get positive, channel-dependent biases (0.2 .. 8) so the
scales are not all clamped at 0.11 and use many table indexes.
The entropy bottlenecks' random densities are narrowed (tables of about +-55 instead of +-215).
"""

from __future__ import annotations

import argparse
import math

import torch

from .export import export
from .models import FAMILIES, MeanScaleGain, build_family, to_input
from .synth import synthetic_image

UNTRAINED = {
    "bmshj2018-factorized-msssim-untrained": 101,
    "mbt2018-mean-msssim-untrained": 103,
}
STD_LO, STD_HI = 0.5, 8.0
EB_NARROW = 4.0


@torch.no_grad()
def make(family: str, seed: int, out_dir: str) -> dict:
    torch.manual_seed(seed)
    model = build_family(family).eval()
    x = to_input(torch.from_numpy(synthetic_image(128, 96)))
    std = float(model.g_a(x).std())
    model.set_gain_ramp(STD_LO / std, STD_HI / std)
    if isinstance(model, MeanScaleGain):
        # channel-dependent scale offsets so the scales spread over many table indexes
        model.h_s[4].bias[: model.M] += torch.exp(
            torch.linspace(math.log(0.2), math.log(8.0), model.M))
    # The default EntropyBottleneck init is a very wide density (tables of +-215); narrowing it by
    # EB_NARROW keeps the tables (and the files) smaller while still covering the latents.
    for eb in model.entropy_bottleneck_modules():
        m = torch.nn.functional.softplus(eb.matrices[0]) * EB_NARROW
        eb.matrices[0].copy_(m + torch.log(-torch.expm1(-m)))
    model.update(force=True, update_quantiles=True)
    f = FAMILIES[family]
    return export(
        model, family, out_dir, dtype="f16",
        metadata_extra={"trained": "false", "seed": str(seed)},
        manifest_entry_extra={
            "metric": f["metric"],
            "lambdas": f["lambdas"],
            "N": model.N,
            "M": model.M,
            "trained": False,
            "training": {
                "images": 0, "steps": 0, "device": "none", "minutes": 0,
                "note": f"random initialisation placeholder (torch seed {seed}), NOT trained; gains: "
                        f"geometric ramp giving gained-latent std {STD_LO}..{STD_HI} on a synthetic "
                        f"image; entropy bottleneck densities narrowed x{EB_NARROW}; made by python -m tfci_training.make_untrained",
            },
            "kodak": None,
        },
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="models")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    for family, seed in UNTRAINED.items():
        e = make(family, seed, args.out)
        print(family, e["sha256"][:16])


if __name__ == "__main__":
    main()
