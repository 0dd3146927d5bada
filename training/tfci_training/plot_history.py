"""The curve of BD-rate against training steps, per family, and where a log-linear trend meets the target.

The stage-1 targets (issue "Models a user would accept") are BD-rates against PIL JPEG; a session of CPU
training adds a few thousand steps, so the question a next stage must answer is how many more steps (or
how much faster hardware) the trend asks for. This reads every evaluated stage from the manifest's
``history`` (written by ``record_kodak``) plus the evaluated branches that were not shipped
(``docs/branches.csv``), plots BD-rate against steps (log axis), and prints a least-squares fit of
``bd_rate = a + b ln(steps)`` over the trunk-era stages with the step count where it reaches the target.

    python -m tfci_training.plot_history --manifest ../models/manifest.json \\
        --branches ../docs/branches.csv --out ../docs/models-history.png
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from typing import Dict, List, Optional, Tuple

from .record_kodak import AXES, TARGETS

# The step each trunk began at (its ``schedule["init_step"]``): the fit takes the stages from there on,
# trained with one recipe, and ignores the restarted cosine runs before, whose BD-rates rose and fell
# with their schedules.
TREND_FROM_STEPS = {"bmshj2018-factorized-msssim": 11000, "mbt2018-mean-msssim": 11000, "b2018-gdn-128": 26000}


def read_branches(path: Optional[str]) -> Dict[str, List[dict]]:
    """Evaluated but unshipped branches: CSV with family, steps, bd_rate, note."""
    out: Dict[str, List[dict]] = {}
    if not path or not os.path.exists(path):
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["family"], []).append(
                {"steps": int(row["steps"]), "bd_rate": float(row["bd_rate"]), "note": row.get("note", "")})
    return out


def log_fit(points: List[Tuple[int, float]]) -> Optional[Tuple[float, float]]:
    """Least-squares ``(a, b)`` of ``bd = a + b ln(steps)``; None with fewer than two distinct steps."""
    xs = [math.log(s) for s, _ in points]
    if len(set(xs)) < 2:
        return None
    n = len(points)
    mx, my = sum(xs) / n, sum(bd for _, bd in points) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (bd - my) for x, (_, bd) in zip(xs, points)) / sxx
    return my - b * mx, b


def steps_to(fit: Tuple[float, float], target: float) -> Optional[float]:
    """Steps at which the fitted trend reaches ``target``; None if it does not fall."""
    a, b = fit
    return math.exp((target - a) / b) if b < 0 else None


def trends(manifest: dict, branches: Dict[str, List[dict]]) -> List[dict]:
    out = []
    for fam in manifest["families"]:
        name = fam["family"]
        if name not in TARGETS:
            continue
        axis, target, _ = TARGETS[name]
        start = TREND_FROM_STEPS.get(name, 0)
        pts = [(h["steps"], h["bd_rate"]) for h in fam.get("history") or []
               if h.get("bd_rate") is not None and h["steps"] >= start]
        pts += [(b["steps"], b["bd_rate"]) for b in branches.get(name, []) if b["steps"] >= start]
        fit = log_fit(sorted(pts))
        last = max(pts) if pts else None
        need = steps_to(fit, target) if fit else None
        out.append({"family": name, "axis": axis, "target": target, "points": len(pts), "from": start, "fit": fit,
                    "last": last, "steps_to_target": need})
    return out


def plot(manifest: dict, branches: Dict[str, List[dict]], fits: List[dict], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colours = {"bmshj2018-factorized-msssim": "tab:blue", "b2018-gdn-128": "tab:green",
               "mbt2018-mean-msssim": "tab:red"}
    for fam in manifest["families"]:
        name = fam["family"]
        if name not in TARGETS:
            continue
        c = colours.get(name, "k")
        hist = [h for h in fam.get("history") or [] if h.get("bd_rate") is not None]
        ax.plot([h["steps"] for h in hist], [h["bd_rate"] for h in hist], "o-", color=c,
                label=f"{name} ({AXES[TARGETS[name][0]]})")
        br = branches.get(name, [])
        if br:
            ax.plot([b["steps"] for b in br], [b["bd_rate"] for b in br], "o", mfc="none", color=c)
        ax.axhline(TARGETS[name][1], color=c, ls=":", lw=1)
        f = next((t for t in fits if t["family"] == name and t["fit"]), None)
        if f and f["last"]:
            s0 = f["from"]
            s1 = max(f["last"][0], f["steps_to_target"] or 0)
            s1 = min(s1, 20 * f["last"][0])
            xs = [s0 * (s1 / s0) ** (i / 40) for i in range(41)]
            a, b = f["fit"]
            ax.plot(xs, [a + b * math.log(x) for x in xs], "--", color=c, lw=1)
    ax.set_xscale("log")
    ax.set_ylim(-70, 20)
    ax.set_xlabel("training steps (batch 8, 128 px crops; log scale)")
    ax.set_ylabel("BD-rate vs PIL JPEG on Kodak (%)")
    ax.set_title("BD-rate against steps: shipped stages (filled), unshipped branches (open),\n"
                 "log-linear trend (dashed), stage-1 targets (dotted); early stages above +20 % off the axis",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", default="../models/manifest.json")
    ap.add_argument("--branches", default="../docs/branches.csv")
    ap.add_argument("--out", default="../docs/models-history.png")
    args = ap.parse_args(argv)
    with open(args.manifest) as f:
        manifest = json.load(f)
    branches = read_branches(args.branches)
    fits = trends(manifest, branches)
    for t in fits:
        if not t["fit"]:
            print(f"{t['family']}: fewer than two trunk-era stages, no trend")
            continue
        a, b = t["fit"]
        need = t["steps_to_target"]
        last_steps, last_bd = t["last"]
        print(f"{t['family']}: {t['points']} stages from {t['from']:,} steps; "
              f"BD-rate = {a:.1f} {b:+.2f} ln(steps) ({b * math.log(2):+.2f} points per doubling); "
              f"last {last_bd:+.2f} % at {last_steps:,}; target {t['target']:+.0f} % "
              + (f"at about {need:,.0f} steps ({need / last_steps:.1f}x)" if need else "not reached by the trend"))
    plot(manifest, branches, fits, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
