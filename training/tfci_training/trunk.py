"""Trunk checkpoints that live in the repository, and starting a run from an exported model.

A session may start on a fresh machine, so the training state that must outlive it is committed:
one slim file per family (``training/checkpoints/<family>.pt``), overwritten in place. It holds the f32
weights *including* the entropy densities and quantiles (the f16 export has neither), Adam's second
moment in bf16 (what sets the step sizes; the first moment is dropped: with beta1 = 0.9 it is rebuilt
within ~20 steps), the quantile optimizer, the step count, wall and CPU minutes, the lr schedule and the
RNG states. Resuming from it continues the trunk without an lr warm-up (tests/test_trunk.py).

``load_export`` is the way in for a trunk that has no such file yet: transforms and gains from a
``.safetensors`` export; the densities then need a re-fit with frozen transforms (``train --init-from``).
"""

from __future__ import annotations

import os
from typing import Iterable, Optional

import torch
from safetensors import safe_open

from .models import GDN, _GainModel

TRUNK_FORMAT = "tfci-trunk/1"


def save_trunk(path: str, trainer, step: int, run: dict) -> int:
    """Write the slim trunk of ``trainer`` (a ``train.FamilyTrainer``) atomically; returns its size.

    ``run``: ``minutes``, ``cpu_minutes``, ``devices``, ``args``, ``schedule``, ``rng`` of the run."""
    opt = trainer.opt.state_dict()
    state = {i: {"step": st["step"], "exp_avg_sq": st["exp_avg_sq"].to(torch.bfloat16)}
             for i, st in opt["state"].items()}
    obj = {
        "format": TRUNK_FORMAT, "family": trainer.family, "step": step,
        **{k: run[k] for k in ("minutes", "cpu_minutes", "devices", "args", "schedule", "rng")},
        "N": trainer.model.N, "M": trainer.model.M, "levels": trainer.model.levels,
        "architecture": trainer.model.architecture,
        "model": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
        "opt": {"state": state, "param_groups": opt["param_groups"]},
        "aux_opt": trainer.aux_opt.state_dict(),
    }
    tmp = path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return os.path.getsize(path)


def load_checked(path: str, fmt: str) -> Optional[dict]:
    """A torch-saved dict whose ``format`` is ``fmt``; None when ``path`` does not exist."""
    if not os.path.exists(path):
        return None
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if obj.get("format") != fmt:
        raise SystemExit(f"{path}: not a {fmt} checkpoint")
    return obj


def read_trunk(path: str) -> Optional[dict]:
    return load_checked(path, TRUNK_FORMAT)


def load_trunk(obj: dict, trainer) -> None:
    """Load a slim trunk into ``trainer``: weights exactly, Adam with its second moment and a zero first
    moment."""
    if obj["family"] != trainer.family:
        raise SystemExit(f"trunk is for {obj['family']}, not {trainer.family}")
    trainer.model.load_state_dict(obj["model"])
    params = [p for g in trainer.opt.param_groups for p in g["params"]]
    state = {}
    for i, st in obj["opt"]["state"].items():
        p = params[int(i)]
        state[i] = {"step": st["step"], "exp_avg": torch.zeros_like(p),
                    "exp_avg_sq": st["exp_avg_sq"].to(p.dtype).reshape(p.shape)}
    trainer.opt.load_state_dict({"state": state, "param_groups": obj["opt"]["param_groups"]})
    trainer.aux_opt.load_state_dict(obj["aux_opt"])


@torch.no_grad()
def load_export(model: _GainModel, path: str, transforms: Optional[Iterable[str]] = None) -> int:
    """Copy weights and gains from an exported ``.safetensors`` into ``model``; returns the exported
    step count (metadata ``steps``, 0 if absent).

    ``transforms`` limits the copy to these transforms (e.g. ``("g_a", "g_s")``); the gains always come
    along, since they are scaled to that ``g_a``'s latent. GDN layers get their effective beta/gamma
    (unpinned, so training goes on).
    """
    keep = None if transforms is None else tuple(transforms)
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        if (int(meta["N"]), int(meta["M"])) != (model.N, model.M) or int(meta["levels"]) != model.levels:
            raise SystemExit(f"{path}: N/M/levels {meta['N']}/{meta['M']}/{meta['levels']} differ from "
                             f"the model's {model.N}/{model.M}/{model.levels}")
        for name, layer in model.transform_layers():
            if keep is not None and name.split(".")[0] not in keep:
                continue
            if isinstance(layer, GDN):
                layer.set_effective(f.get_tensor(f"{name}.beta").float(),
                                    f.get_tensor(f"{name}.gamma").float(), pin=False)
            else:
                layer.weight.copy_(f.get_tensor(f"{name}.weight").float())
                if layer.bias is not None:
                    layer.bias.copy_(f.get_tensor(f"{name}.bias").float())
        model.y_gain.copy_(f.get_tensor("y_gain").float())
        model.y_gain_inv.copy_(f.get_tensor("y_gain_inv").float())
    return int(meta.get("steps", 0))
