"""Train variable-rate (gain unit) families and export them (docs/model-format.md).

    cd training
    python -m tfci_training.train --family mbt2018-mean-msssim \\
        --data ../../shared/data/train ../../shared/data/train_extra --steps 60000 --out runs/mbt2018-mean-msssim

Recipe (CompressAI examples/train.py + TECH_BRIEF §8/§10):

* loss per batch: ONE random level l (uniform over 1..L) with that level's lambda from ``FAMILIES``:
  MSE families ``lambda * 255^2 * MSE + bpp``, MS-SSIM families ``lambda * (1 - MS-SSIM) + bpp``
  (pytorch_msssim ``ms_ssim(x_hat, x, data_range=1)``; 11x11 window, automatically narrowed for crops
  below 161 px, which only small test/smoke crops need);
* MS-SSIM families start on MSE (``--mse-warmup``, the first 250 steps, counted from step 0 so a
  resume never re-enters it, with CompressAI's MSE lambda of the same quality index): from a random start the relu inside MS-SSIM can
  pin the distortion at 1 with zero gradient (seen on a 64/96 bmshj2018-factorized run);
* Adam lr 1e-4 on every parameter except ``*quantiles``, ``--density-lr-scale`` (10) times that on the
  entropy bottlenecks' densities; Adam lr 1e-3 on the quantiles with ``aux_loss()`` (constant);
  gradient clipping (max-norm 1.0) of the transforms and gains, and apart from them of the densities;
  ``--mse-term F`` adds F times the MSE loss to the MS-SSIM families' loss; ``--lowpass-term F`` adds F
  times the MSE of the ``--lowpass-size`` block means (the colour of an area, which MS-SSIM leaves free);
* factorized families (one density per level): every step also trains the densities of the other
  levels on the batch's detached ``y * gain`` (``density_bits``), so each density sees every batch;
* lr schedule: constant, then cosine decay to 1e-5 over the last 15 % of the steps; a trunk
  (``--trunk``, ``--decay-frac 0``) stays constant and ``--cooldown`` branches decay instead (trunk.py);
* gains start as a ramp ``y_gain[l] = sqrt(lambda_l / geomean(lambda))`` (``y_gain_inv = 1 / y_gain``)
  so the levels differ from step 0 (``--gain-init ones`` for all-ones);
* several ``--family`` values are trained interleaved: every iteration does one step of each family
  (own model, optimizers, level and batch), so they share the time limit and the GPU evenly.

Checkpoints (``OUT/checkpoint.pt``: models, optimizers, step, RNG states, args, accumulated minutes) are
written atomically every ``--checkpoint-every`` steps, on ``--time-limit`` and at the end; rerunning the
same command continues from the checkpoint.  When ``--steps`` is reached the models are exported
(``update(force=True, update_quantiles=True)``, f16) into ``--export-dir`` with a training record in the
manifest entry.  On CPU the run is deterministic given ``--seed`` (N steps == k steps + resume).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from .data import CropSampler, find_images
from .export import export
from .trunk import load_checked, load_export, load_trunk, read_trunk, save_trunk
from .models import ARCHITECTURES, FAMILIES, GDN, MSE_LAMBDAS_8, build_model, rd_loss

CHECKPOINT_FORMAT = "tfci-train-checkpoint/1"
CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
# args that must match when resuming (others, e.g. --time-limit or --log-every, may change)
RESUME_MUST_MATCH = ("family", "widths", "gain_init", "seed")
RESUME_SHOULD_MATCH = ("steps", "batch", "crop", "lr", "lr_min", "aux_lr", "density_lr_scale", "decay_frac",
                       "clip", "data")


# The training recipe: on a resume from a slim trunk these come from the trunk unless given.
RECIPE = ("family", "data", "steps", "batch", "crop", "seed", "lr", "lr_min", "decay_frac", "aux_lr",
          "density_lr_scale", "mse_warmup", "mse_term", "lowpass_term", "lowpass_size", "colour_aug", "colour_sat", "clip", "clip_densities",
          "gain_init", "widths",
          "threads", "bf16", "channels_last", "log_every", "checkpoint_every")


def parse_args(argv=None) -> argparse.Namespace:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.trunk and os.path.exists(args.trunk):
        # One command resumes a trunk: the recipe is the trunk's, except what the command line sets.
        quiet = _parser()
        for a in quiet._actions:
            a.default = argparse.SUPPRESS
        given = set(vars(quiet.parse_args(argv)))
        saved = read_trunk(args.trunk)["args"]
        for k in RECIPE:
            if k not in given and k in saved:
                setattr(args, k, saved[k])
    if not args.export_only and (not args.family or not (args.steps or args.cooldown)):
        ap.error("--family and --steps (or --cooldown, or a --trunk) are required (except with --export-only)")
    if args.cooldown and not args.trunk:
        ap.error("--cooldown branches off a --trunk")
    if (args.init_from or args.trunk) and args.family and len(args.family) > 1:
        ap.error("--init-from and --trunk take one --family")
    if args.init_transforms_from and not args.init_from:
        ap.error("--init-transforms-from needs --init-from")
    for fam in args.family or []:
        if fam not in FAMILIES:
            ap.error(f"unknown family {fam!r}; known: {', '.join(sorted(FAMILIES))}")
        if fam.endswith("-untrained"):
            ap.error(f"{fam} is a random-init placeholder family (make_untrained), not trainable")
    if args.family and len(set(args.family)) != len(args.family):
        ap.error("--family lists a family twice")
    return args


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tfci_training.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", nargs="+", help="FAMILIES key(s); several are trained interleaved")
    ap.add_argument("--data", nargs="+", default=["../../shared/data/train", "../../shared/data/train_extra"],
                    help="image folders (recursive JPEG/PNG; anything containing 'kodak' is refused)")
    ap.add_argument("--steps", type=int, help="total steps per family (the same on every resume)")
    ap.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lr-min", type=float, default=1e-5, help="lr reached at the last step")
    ap.add_argument("--decay-frac", type=float, default=0.15, help="cosine decay over this last fraction")
    ap.add_argument("--aux-lr", type=float, default=1e-3)
    ap.add_argument("--density-lr-scale", type=float, default=10.0,
                    help="the entropy bottlenecks' density parameters train at this multiple of --lr")
    ap.add_argument("--mse-warmup", type=int, default=250,
                    help="MS-SSIM families: train on MSE (CompressAI's MSE lambda of the same quality "
                         "index) for the first STEPS steps (absolute, so a resume never re-enters it); "
                         "from a random start MS-SSIM's relu can pin the distortion at 1 with zero gradient")
    ap.add_argument("--mse-term", type=float, default=0.0,
                    help="MS-SSIM families: add this fraction of CompressAI's MSE loss of the same quality "
                         "index (lambda_mse * 255^2 * MSE); MS-SSIM on 128 px crops constrains means and "
                         "colour only at its 8x8 coarsest scale")
    ap.add_argument("--lowpass-term", type=float, default=0.0,
                    help="MS-SSIM families: add this fraction of the same MSE loss computed on the means of "
                         "--lowpass-size blocks (the mean colour of an area); MS-SSIM lets such means drift, "
                         "which the colour chart of tfci-eval sees as patches moving by 4-8 dE")
    ap.add_argument("--lowpass-size", type=int, default=8, help="block size of --lowpass-term")
    ap.add_argument("--colour-aug", type=float, default=0.0,
                    help="fraction of crops whose chroma is rotated by a random hue angle and scaled by "
                         "up to --colour-sat (data.colour_aug): every hue, saturated, at photo structure")
    ap.add_argument("--colour-sat", type=float, default=1.5, help="largest chroma gain of --colour-aug")
    ap.add_argument("--clip", type=float, default=1.0,
                    help="gradient clipping max-norm of the transforms and gains (0: off)")
    ap.add_argument("--clip-densities", type=float, default=1.0,
                    help="gradient clipping max-norm of the entropy densities, apart from the transforms "
                         "(0: off); one clip over both let density spikes shrink the transform update")
    ap.add_argument("--init-from", metavar="SAFETENSORS",
                    help="fresh run only: start from an exported model file (transforms, gains; the "
                         "densities are not in the export and are re-fitted first, see --refit-steps)")
    ap.add_argument("--init-transforms-from", metavar="SAFETENSORS",
                    help="fresh run only: then take g_a, g_s and the gains from this export (same N/M), "
                         "e.g. an mbt2018-mean run from bmshj2018-factorized's transforms")
    ap.add_argument("--init-step", type=int, default=None,
                    help="step count of --init-from (default: its 'steps' metadata)")
    ap.add_argument("--refit-steps", type=int, default=300,
                    help="after --init-from: steps that train only the densities (transforms frozen)")
    ap.add_argument("--refit-lr", type=float, default=1e-2, help="density lr during the re-fit")
    ap.add_argument("--lr-warmup", type=int, default=500,
                    help="after --init-from (no optimizer state): steps of linear lr warm-up after the re-fit")
    ap.add_argument("--trunk", metavar="PT",
                    help="slim trunk checkpoint (training/checkpoints/FAMILY.pt): seeds the run when OUT has "
                         "no newer checkpoint (recipe arguments not given come from it), and is rewritten "
                         "with every checkpoint of the run (not by a --cooldown branch)")
    ap.add_argument("--cooldown", type=int, default=0,
                    help="cool-down branch off --trunk into OUT: cosine lr decay to --lr-min over this many "
                         "steps after the branch point, then export (--steps is set to branch point + "
                         "COOLDOWN); the trunk is left as it is")
    ap.add_argument("--gain-init", choices=("ramp", "ones"), default="ramp")
    ap.add_argument("--widths", type=int, nargs=2, metavar=("N", "M"),
                    help="override the family's N and M (experiments/tests; recorded in the manifest)")
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast for the conv transforms (GDN, entropy models, loss in fp32)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the four transforms")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--time-limit", type=float, default=0.0,
                    help="minutes: stop (checkpoint written) before this wall time; 0 = none")
    ap.add_argument("--time-reserve", type=float, default=15.0,
                    help="seconds kept free before --time-limit for the final checkpoint")
    ap.add_argument("--run-steps", type=int, default=0,
                    help="stop after this many steps in this invocation (checkpoint written); 0 = none")
    ap.add_argument("--export-dir", default="../models")
    ap.add_argument("--no-export", action="store_true", help="do not export when --steps is reached")
    ap.add_argument("--export-only", action="store_true", help="export from checkpoint.pt and exit")
    ap.add_argument("--note", default="", help="text appended to the manifest training note")
    return ap


# ---------------------------------------------------------------------------------------------------
def lowpass_loss(x_hat: torch.Tensor, x: torch.Tensor, level: int, size: int) -> torch.Tensor:
    """CompressAI's MSE loss of the level's quality index on ``size`` x ``size`` block means.

    The mean colour of an area is one number per block and channel, cheap in bits, and MS-SSIM weighs it
    only through its coarsest luminance term: without this a constant-lr trunk lets it drift.
    """
    mse_lambda = MSE_LAMBDAS_8[(level - 1) % len(MSE_LAMBDAS_8)]
    return mse_lambda * 255**2 * F.mse_loss(F.avg_pool2d(x_hat, size), F.avg_pool2d(x, size))


def lr_at(step: int, total: int, lr: float, lr_min: float, frac: float) -> float:
    """lr for 0-based ``step``: constant, then cosine to ``lr_min`` over the last ``frac`` of ``total``."""
    start = int(round(total * (1.0 - frac)))
    if step < start or total <= start:
        return lr
    t = min(1.0, (step - start + 1) / (total - start))
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))


def lrs_for(step: int, args: argparse.Namespace, sched: dict):
    """(transform lr, density lr) at 0-based ``step``.

    After ``--init-from`` (``sched["init_step"]``): ``refit_steps`` steps with frozen transforms and the
    densities at ``refit_lr``, then a linear warm-up over ``lr_warmup`` steps (no optimizer state yet).
    A cool-down branch (``sched["branch_step"]``) decays the lr by a cosine to ``--lr-min`` from the
    branch point to ``--steps``; otherwise ``lr_at`` (constant, or the old cosine over ``--decay-frac``).
    """
    if sched.get("branch_step") is not None:
        b = sched["branch_step"]
        t = min(1.0, max(0, step - b + 1) / max(args.steps - b, 1))
        lr = args.lr_min + 0.5 * (args.lr - args.lr_min) * (1.0 + math.cos(math.pi * t))
    else:
        lr = lr_at(step, args.steps, args.lr, args.lr_min, args.decay_frac)
    if sched.get("init_step") is not None:
        k = step - sched["init_step"]
        if 0 <= k < sched["refit_steps"]:
            return 0.0, sched["refit_lr"]
        k -= sched["refit_steps"]
        if 0 <= k < sched["lr_warmup"]:
            lr = min(lr, args.lr * (k + 1) / (sched["lr_warmup"] + 1))
    return lr, lr * args.density_lr_scale


def msssim_window(crop: int) -> int:
    """pytorch_msssim needs min side > (win - 1) * 16: 11 from 161 px on, else the largest odd window."""
    win = 11
    while win > 1 and not crop > (win - 1) * 16:
        win -= 2
    if win < 3:
        raise ValueError(f"crop {crop} is too small for MS-SSIM (needs > 32 px)")
    return win


def _fp32_forward(module: torch.nn.Module, device_type: str) -> None:
    """Run ``module`` outside autocast with float32 inputs (instance-level wrap; state_dict unchanged)."""
    orig = module.forward

    def forward(*a, **kw):
        a = [t.float() if torch.is_tensor(t) and t.is_floating_point() else t for t in a]
        with torch.autocast(device_type=device_type, enabled=False):
            return orig(*a, **kw)

    module.forward = forward


class FamilyTrainer:
    """One family: model, the two optimizers, its lambdas/metric and the loss step."""

    def __init__(self, family: str, args: argparse.Namespace, device: torch.device):
        self.family = family
        self.cfg = dict(FAMILIES[family])
        if args.widths:
            self.cfg["N"], self.cfg["M"] = args.widths
        c = self.cfg
        self.model = build_model(c["architecture"], c["N"], c["M"], c["levels"])
        if args.gain_init == "ramp":
            lam = torch.tensor(c["lambdas"], dtype=torch.float64)
            g = torch.sqrt(lam / lam.log().mean().exp())
            with torch.no_grad():
                self.model.y_gain.copy_(g[:, None].expand(c["levels"], self.model.M).float())
                self.model.y_gain_inv.copy_((1.0 / g)[:, None].expand(c["levels"], self.model.M).float())
        self.model.to(device)
        if args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.device = device
        self.args = args
        self.levels = c["levels"]
        self.lambdas = list(c["lambdas"])
        self.metric = c["metric"]
        self.ms_ssim_fn = None
        if self.metric == "ms-ssim":
            from pytorch_msssim import ms_ssim

            win = msssim_window(args.crop)
            self.ms_ssim_fn = lambda a, b: ms_ssim(a, b, data_range=1.0, win_size=win)
        if args.bf16:
            # convs run in bf16 under autocast; GDN and the entropy models in float32
            for m in self.model.modules():
                if isinstance(m, (GDN, EntropyBottleneck, GaussianConditional)):
                    _fp32_forward(m, device.type)
        if args.compile:
            for name in ("g_a", "g_s", "h_a", "h_s"):
                if hasattr(self.model, name):
                    getattr(self.model, name).compile()
        named = list(self.model.named_parameters())
        self.net_names = [n for n, _ in named if not n.endswith("quantiles")]
        self.net_params = [p for n, p in named if not n.endswith("quantiles")]
        self.aux_params = [p for n, p in named if n.endswith("quantiles")]
        assert len(self.net_params) + len(self.aux_params) == len(named) and self.aux_params
        groups = _param_groups(named)
        self.opt = torch.optim.Adam([{"params": [p for _, p in g]} for g in groups], lr=args.lr)
        self.group_names = [[n for n, _ in g] for g in groups]
        self.aux_opt = torch.optim.Adam(self.aux_params, lr=args.aux_lr)
        self.has_level_densities = hasattr(self.model, "density_bits")

    def step(self, x: torch.Tensor, level: int, lr: float, lr_density: float,
             warmup: bool = False) -> Dict[str, torch.Tensor]:
        args = self.args
        self.opt.param_groups[0]["lr"] = lr
        self.opt.param_groups[1]["lr"] = lr_density
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        self.aux_opt.zero_grad(set_to_none=True)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=args.bf16):
            out = self.model(x, level)
        out = {"x_hat": out["x_hat"].float(), "y": out.get("y"),
               "likelihoods": {k: v.float() for k, v in out["likelihoods"].items()}}
        if warmup and self.metric == "ms-ssim":
            loss, bpp, dist = rd_loss(out, x, MSE_LAMBDAS_8[(level - 1) % len(MSE_LAMBDAS_8)], "mse")
        else:
            loss, bpp, dist = rd_loss(out, x, self.lambdas[level - 1], self.metric, self.ms_ssim_fn)
        total = loss
        if args.mse_term > 0 and self.metric == "ms-ssim" and not warmup:
            mse_lambda = MSE_LAMBDAS_8[(level - 1) % len(MSE_LAMBDAS_8)]
            total = total + args.mse_term * mse_lambda * 255**2 * F.mse_loss(out["x_hat"], x)
        if args.lowpass_term > 0 and self.metric == "ms-ssim" and not warmup:
            total = total + args.lowpass_term * lowpass_loss(out["x_hat"], x, level, args.lowpass_size)
        if self.has_level_densities:
            n, _, H, W = x.shape
            total = total + self.model.density_bits(out["y"], level) / (n * H * W)
        total.backward()
        for group, clip in zip(self.opt.param_groups, (args.clip, args.clip_densities)):
            if clip > 0 and group["params"]:
                torch.nn.utils.clip_grad_norm_(group["params"], clip)
        self.opt.step()
        aux = self.model.aux_loss()
        aux.backward()
        self.aux_opt.step()
        return {"loss": loss.detach(), "bpp": bpp.detach(), "dist": dist.detach(), "aux": aux.detach()}

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "aux_opt": self.aux_opt.state_dict(), "N": self.model.N, "M": self.model.M,
                "levels": self.model.levels, "architecture": self.model.architecture}

    def load_state(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        opt = st["opt"]
        if len(opt["param_groups"]) == 1:  # checkpoint from before the density group
            opt = _split_adam_state(opt, self.net_names, self.group_names)
        self.opt.load_state_dict(opt)
        self.aux_opt.load_state_dict(st["aux_opt"])

    def params_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())


def _is_density(name: str) -> bool:
    """CompressAI EntropyBottleneck density parameters (``_matrix*``, ``_bias*``, ``_factor*``)."""
    return "entropy_bottleneck" in name and not name.endswith("quantiles")


def _param_groups(named):
    """The main optimizer's two groups: transforms and gains, then the densities."""
    net = [(n, p) for n, p in named if not n.endswith("quantiles")]
    return [[(n, p) for n, p in net if not _is_density(n)], [(n, p) for n, p in net if _is_density(n)]]


def _split_adam_state(opt: dict, old_names: List[str], group_names: List[List[str]]) -> dict:
    """A one-group Adam state over ``old_names`` re-indexed into the groups of ``group_names``."""
    old_index = {n: i for i, n in enumerate(old_names)}
    state, groups, k = {}, [], 0
    for names in group_names:
        ids = []
        for n in names:
            if old_index[n] in opt["state"]:
                state[k] = opt["state"][old_index[n]]
            ids.append(k)
            k += 1
        groups.append(dict(opt["param_groups"][0], params=ids))
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------------------------------------
def _device(args) -> torch.device:
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda but CUDA is not available")
        return torch.device("cuda")
    return torch.device("cpu")


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _save_atomic(obj, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _log(run_dir: str, rec: dict) -> None:
    with open(os.path.join(run_dir, LOG), "a") as f:
        f.write(json.dumps(rec) + "\n")


def _load_checkpoint(path: str) -> Optional[dict]:
    return load_checked(path, CHECKPOINT_FORMAT)


def _checkpoint_from_trunk(trunk: dict) -> dict:
    """A run checkpoint (as ``_load_checkpoint`` returns) that resumes from a slim trunk."""
    return {"format": CHECKPOINT_FORMAT, "step": trunk["step"], "minutes": trunk["minutes"],
            "cpu_minutes": trunk["cpu_minutes"], "devices": list(trunk["devices"]),
            "args": trunk["args"], "schedule": trunk["schedule"], "rng": trunk["rng"], "trunk": trunk,
            "families": {}}


def _check_resume_args(args, saved: dict) -> None:
    for k in RESUME_MUST_MATCH:
        a, b = getattr(args, k), saved.get(k)
        if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            raise SystemExit(f"cannot resume: --{k.replace('_', '-')} {a} differs from the checkpoint's {b}")
    for k in RESUME_SHOULD_MATCH:
        a, b = getattr(args, k), saved.get(k)
        if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            print(f"note: --{k.replace('_', '-')} {a} differs from the checkpoint's {b}", flush=True)


def export_family(tr_state: dict, family: str, export_dir: str, record: dict, note: str,
                  mse_term: float = 0.0) -> dict:
    """Fresh CPU model from a family state -> update(force, update_quantiles) -> f16 export.

    The manifest carries the training objective (``metric``, ``lambdas`` and, for MS-SSIM families, the
    MSE term's weight and per-level lambdas), so an encoder that searches latents optimises what the
    weights were trained for.
    """
    cfg = FAMILIES[family]
    model = build_model(tr_state["architecture"], tr_state["N"], tr_state["M"], tr_state["levels"])
    model.load_state_dict(tr_state["model"])
    model.eval()
    model.update(force=True, update_quantiles=True)
    training = dict(record)
    training["note"] = note
    return export(
        model, family, export_dir, dtype="f16",
        metadata_extra={"trained": "true", "steps": str(record["steps"])},
        manifest_entry_extra={
            "metric": cfg["metric"], "lambdas": cfg["lambdas"], "N": model.N, "M": model.M,
            "trained": True, "training": training, "kodak": None,
            **objective_entry(cfg["metric"], tr_state["levels"], mse_term),
        },
    )


def objective_entry(metric: str, levels: int, mse_term: float) -> dict:
    """The manifest's ``mse_term``/``mse_lambdas`` (MS-SSIM families only): the loss adds ``mse_term`` x
    ``mse_lambdas[l-1]`` x 255^2 x MSE to lambda x (1 - MS-SSIM) + bpp (``FamilyTrainer.step``)."""
    if metric != "ms-ssim":
        return {}
    return {"mse_term": float(mse_term),
            "mse_lambdas": [MSE_LAMBDAS_8[i % len(MSE_LAMBDAS_8)] for i in range(levels)]}


def fam_factorized(family: str) -> bool:
    """One density per level: the architecture has the every-level density term."""
    return hasattr(ARCHITECTURES[FAMILIES[family]["architecture"]], "density_bits")


def _export_all(ck: dict, export_dir: str, extra_note: str = "") -> List[dict]:
    a = ck["args"]
    fams = list(ck["families"])
    entries = []
    for fam in fams:
        record = {
            "images": ck["images"], "steps": ck["step"], "device": ", ".join(ck["devices"]),
            "minutes": round(ck["minutes"], 1), "cpu_minutes": round(ck.get("cpu_minutes", 0.0), 1),
            "data": list(a["data"]), "batch": a["batch"],
        }
        sched = ck.get("schedule", {})
        if a.get("cooldown"):
            lr_note = (f"constant lr trunk, exported from a cool-down branch at step {sched['branch_step']}: "
                       f"cosine decay to {a['lr_min']:g} over {a['cooldown']} steps")
        else:
            lr_note = f"cosine lr decay to {a['lr_min']:g} over the last {a['decay_frac']:.0%}"
        if sched.get("init_from"):
            lr_note += (f"; trunk initialised at step {sched['init_step']} from {sched['init_from']}"
                        + (f" with g_a, g_s and gains from {sched['init_transforms_from']}"
                           if sched.get("init_transforms_from") else "")
                        + f" ({sched['refit_steps']} density re-fit steps, {sched['lr_warmup']} lr warm-up)")
        note = (f"python -m tfci_training.train: crops {a['crop']}, random flips, one random level per "
                f"batch; Adam {a['lr']:g} (net, clip {a['clip']:g}) + Adam {a['aux_lr']:g} (quantiles, "
                f"aux loss); {lr_note}; "
                f"gain init {a['gain_init']}; seed {a['seed']}"
                + (f"; densities at {a['density_lr_scale']:g}x lr"
                   + (", every level's density on every batch" if fam_factorized(fam) else "")
                   if a.get("density_lr_scale") else "")
                + ("; bf16 autocast convs" if a.get("bf16") else "")
                + (f"; plus {a['mse_term']:g} x the MSE loss" if a.get("mse_term") else "")
                + (f"; plus {a['lowpass_term']:g} x the MSE loss of {a.get('lowpass_size', 8)} px block means"
                   if a.get("lowpass_term") else "")
                + (f"; {a['colour_aug']:.0%} of crops hue-rotated, chroma x1..{a.get('colour_sat', 1.5):g}"
                   if a.get("colour_aug") else "")
                + (f"; densities clipped apart at {a['clip_densities']:g}" if "clip_densities" in a else "")
                + (f"; interleaved with {', '.join(f for f in fams if f != fam)}" if len(fams) > 1 else "")
                + (f"; {a['note']}" if a.get("note") else "")
                + (f"; {extra_note}" if extra_note else ""))
        e = export_family(ck["families"][fam], fam, export_dir, record, note, a.get("mse_term") or 0.0)
        print(f"exported {fam} -> {os.path.join(export_dir, e['file'])} sha256 {e['sha256'][:16]}",
              flush=True)
        entries.append(e)
    return entries


def main(argv=None) -> int:
    t_start = time.time()
    args = parse_args(argv)
    ck_path = os.path.join(args.out, CHECKPOINT)

    if args.export_only:
        ck = _load_checkpoint(ck_path)
        if ck is None:
            raise SystemExit(f"--export-only: no {ck_path}")
        if ck["step"] < ck["args"]["steps"]:
            print(f"note: exporting an unfinished run (step {ck['step']}/{ck['args']['steps']})", flush=True)
        _export_all(ck, args.export_dir,
                    "" if ck["step"] >= ck["args"]["steps"] else f"UNFINISHED run exported at step {ck['step']}")
        return 0

    # Data paths are checked (Kodak refused) before anything else is done.
    paths = find_images(args.data)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = _device(args)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    os.makedirs(args.out, exist_ok=True)

    ck = _load_checkpoint(ck_path)
    trunk = read_trunk(args.trunk) if args.trunk else None
    if trunk is not None and ck is not None and trunk["step"] > ck["step"] and not args.cooldown:
        print(f"note: {args.trunk} (step {trunk['step']}) is ahead of {ck_path} (step {ck['step']}): "
              f"resuming from the trunk", flush=True)
        ck = None
    if ck is None and trunk is not None:
        ck = _checkpoint_from_trunk(trunk)
    if args.cooldown:
        sched = dict(ck["schedule"]) if ck is not None else {}
        sched.setdefault("branch_step", ck["step"] if ck is not None else 0)
        args.steps = sched["branch_step"] + args.cooldown
    if ck is not None:
        _check_resume_args(args, ck["args"])
    torch.manual_seed(args.seed)
    trainers = [FamilyTrainer(f, args, device) for f in args.family]
    sampler = CropSampler(paths, args.crop, device, seed=args.seed + 1)
    sampler.colour = (args.colour_aug, args.colour_sat)
    level_gen = torch.Generator()  # CPU: the level must be a Python int without a device sync
    level_gen.manual_seed(args.seed + 2)
    for p, (w, h) in sampler.skipped:
        print(f"note: skipped {p} ({w}x{h} < crop {args.crop})", flush=True)
    for p, why in sampler.unreadable:
        print(f"note: skipped {p}: not a decodable image ({why})", flush=True)
    print(f"data: {len(sampler)} images from {args.data} ({len(sampler.skipped)} too small, "
          f"{len(sampler.unreadable)} unreadable, skipped), "
          f"decoded in {time.time() - t_start:.1f} s; device {_device_name(device)}", flush=True)

    step, minutes_before, cpu_before, devices, sched = 0, 0.0, 0.0, [], {}
    if ck is None and args.init_from:
        tr = trainers[0]
        step = load_export(tr.model, args.init_from)
        if args.init_transforms_from:
            load_export(tr.model, args.init_transforms_from, ("g_a", "g_s"))
        if args.init_step is not None:
            step = args.init_step
        sched = {"init_step": step, "refit_steps": args.refit_steps, "refit_lr": args.refit_lr,
                 "lr_warmup": args.lr_warmup, "init_from": args.init_from,
                 "init_transforms_from": args.init_transforms_from}
        print(f"initialised from {args.init_from}"
              + (f" (g_a, g_s and gains from {args.init_transforms_from})" if args.init_transforms_from else "")
              + f" at step {step}: {args.refit_steps} density re-fit steps, {args.lr_warmup} warm-up steps",
              flush=True)
    if ck is not None:
        step, minutes_before, devices = ck["step"], ck["minutes"], list(ck["devices"])
        cpu_before = ck.get("cpu_minutes", 0.0)
        sched = dict(ck.get("schedule", {}))
        for tr in trainers:
            if "trunk" in ck:
                load_trunk(ck["trunk"], tr)
            else:
                tr.load_state(ck["families"][tr.family])
        rng = ck["rng"]
        torch.set_rng_state(rng["torch"])
        if device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"])
        level_gen.set_state(rng["level"])
        if not sampler.load_state(rng["sampler"], reseed=args.seed + 1 + step):
            print("note: sampler RNG saved on another device type: reseeded", flush=True)
        print(f"resumed from {args.trunk if 'trunk' in ck else ck_path} at step {step} "
              f"({minutes_before:.1f} min so far)", flush=True)
    if args.cooldown:
        sched["branch_step"] = args.steps - args.cooldown  # fixed above, before the resume checks
    cpu_start = time.process_time()
    name = _device_name(device)
    if name not in devices:
        devices.append(name)

    def checkpoint(reason: str) -> dict:
        for tr in trainers:
            if not tr.params_finite():
                raise SystemExit(f"{tr.family}: non-finite parameters at step {step}; "
                                 f"checkpoint NOT written (last good one kept)")
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
               "level": level_gen.get_state(), "sampler": sampler.state()}
        obj = {
            "format": CHECKPOINT_FORMAT, "step": step,
            "minutes": minutes_before + (time.time() - t_start) / 60.0,
            "cpu_minutes": cpu_before + (time.process_time() - cpu_start) / 60.0,
            "devices": devices, "images": len(sampler), "args": vars(args), "schedule": sched,
            "families": {tr.family: tr.state() for tr in trainers}, "rng": rng,
        }
        _save_atomic(obj, ck_path)
        if args.trunk and not args.cooldown:
            save_trunk(args.trunk, trainers[0], step, obj)
        _log(args.out, {"event": "checkpoint", "reason": reason, "step": step,
                        "minutes": round(obj["minutes"], 3)})
        return obj

    _log(args.out, {"event": "start", "step": step, "device": name, "argv": sys.argv[1:] if argv is None
                    else list(argv), "python": platform.python_version(), "torch": torch.__version__})
    limit_s = args.time_limit * 60.0 if args.time_limit > 0 else None
    signalled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signalled.append(signal.Signals(signum).name))
    t_loop, steps_this_run = time.time(), 0
    t_int, n_int = time.time(), 0
    stopped = None
    while step < args.steps:
        if signalled:
            stopped = signalled[0]
            break
        if args.run_steps and steps_this_run >= args.run_steps:
            stopped = f"--run-steps {args.run_steps}"
            break
        if limit_s is not None:
            per_it = (time.time() - t_loop) / steps_this_run if steps_this_run else 0.0
            if time.time() - t_start + 2 * per_it + args.time_reserve >= limit_s:
                stopped = f"--time-limit {args.time_limit} min"
                break
        lr, lr_density = lrs_for(step, args, sched)
        stats = []
        warmup = step < args.mse_warmup
        for tr in trainers:
            level = int(torch.randint(1, tr.levels + 1, (1,), generator=level_gen))
            x = sampler.sample(args.batch)
            stats.append((tr, level, tr.step(x, level, lr, lr_density, warmup)))
        step += 1
        steps_this_run += 1
        n_int += 1
        if step % args.log_every == 0 or step == args.steps:
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.time()
            its = n_int / max(now - t_int, 1e-9)
            t_int, n_int = now, 0
            for tr, level, s in stats:
                v = {k: float(t) for k, t in s.items()}
                print(f"[{tr.family}] step {step}/{args.steps} level {level} loss {v['loss']:.4f} "
                      f"bpp {v['bpp']:.4f} dist {v['dist']:.5f} aux {v['aux']:.2f} lr {lr:.2e} "
                      f"{its:.2f} it/s", flush=True)
                _log(args.out, {"family": tr.family, "step": step, "level": level, "lr": lr,
                                "mse_warmup": warmup and tr.metric == "ms-ssim",
                                "steps_per_s": round(its, 4), "time_s": round(now - t_start, 2), **v})
                if not math.isfinite(v["loss"]):
                    raise SystemExit(f"{tr.family}: non-finite loss at step {step}; stopping "
                                     f"(last checkpoint kept)")
        if step % args.checkpoint_every == 0 and step < args.steps:
            checkpoint("periodic")

    if steps_this_run == 0 and ck is not None:
        pass  # nothing trained in this invocation: keep the checkpoint as it is
    else:
        ck = checkpoint("end" if stopped is None else "stopped")
    run_min = (time.time() - t_start) / 60.0
    if stopped is not None:
        print(f"stopped by {stopped} at step {step}/{args.steps} after {run_min:.2f} min; checkpoint "
              f"written, rerun the same command to continue", flush=True)
        return 0
    print(f"done: step {step}, {ck['minutes']:.2f} min in total", flush=True)
    if not args.no_export:
        _export_all(ck, args.export_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
