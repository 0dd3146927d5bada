"""Speed of this checkout's CPU codec against another git revision's, on the Kodak images, in one
run (``just bench-vs REV``): did a change make compress or decompress slower?

1. builds the end-to-end benchmark (``cargo bench -p codec-core --bench codec``) of this checkout and
   of ``--rev`` (in a git worktree under ``target/bench-rev/``, its own target folder),
2. runs both on every image with the same shipped models, interleaved A-B, B-A, ... so that drift of
   the machine's speed falls on both sides alike, and records for every run how busy the CPUs were
   with other work (``/proc/stat`` busy time minus the benchmark's own),
3. writes per-family totals over the images and rounds (sums of the per-run medians) and the ratio
   this/rev for compress and decompress, with the median and range of the per-image ratios.

On this 2-core VM, idle, the per-image ratios of one run spread over 0.6-1.8 and the totals of
two runs of the same pair of builds differed by up to 14 % (docs/benchmarks.md), so a 5 % question
needs the totals over every Kodak image and more than one round.

Runs whose other CPU load exceeds ``--max-other`` (default 10 %) are run again, up to 3 times, and
counted as contended if they stay so; the report says how many. Stop training (or any other load)
before running it: ``kill -STOP`` pauses a trainer, ``kill -CONT`` resumes it.

    cd training && python -m tfci_training.bench_revs --rev 162b5f7 --images ../../shared/data/kodak \\
        --out ../docs/benchmarks/vs-162b5f7.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import time

from .benchutil import REPO, bench_binary, sample, write_report


def rev_checkout(rev: str) -> str:
    """A worktree of ``rev`` under ``target/bench-rev`` (reused when it is already there)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip()
    path = os.path.join(REPO, "target", "bench-rev", sha)
    if not os.path.isdir(path):
        subprocess.run(["git", "worktree", "add", "--detach", path, sha], cwd=REPO, check=True,
                       capture_output=True)
    return path


def run_once(exe: str, models: str, image: str, runs: int, warmup: int, threads: int) -> list:
    """One benchmark process: its JSON rows."""
    out = subprocess.run([exe, "--models", models, "--image", image, "--runs", str(runs),
                          "--warmup", str(warmup), "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", required=True, help="the git revision to compare with")
    ap.add_argument("--images", required=True, help="a folder of PNGs (Kodak)")
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    ap.add_argument("--rounds", type=int, default=1, help="passes over the images (each interleaved)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-other", type=float, default=0.10,
                    help="largest share of the CPUs other processes may use during a run")
    ap.add_argument("--out", help="JSON report")
    args = ap.parse_args(argv)

    old_tree = rev_checkout(args.rev)
    exes = {"this": bench_binary(REPO), "rev": bench_binary(old_tree)}
    images = sorted(glob.glob(os.path.join(args.images, "*.png")))
    if args.limit:
        images = images[:args.limit]
    if not images:
        raise SystemExit(f"no PNG in {args.images}")
    models = os.path.abspath(args.models)
    times = {side: {} for side in exes}  # side -> (family, direction) -> [ms per image]
    others, contended = [], 0
    started = time.time()
    for i, image in enumerate(images * args.rounds):
        # A-B, B-A by image, and each image the other way round in the next round.
        order = ["this", "rev"] if (i + i // len(images)) % 2 == 0 else ["rev", "this"]
        for side in order:
            rows, other, clean = sample(
                lambda: run_once(exes[side], models, os.path.abspath(image), args.runs,
                                 args.warmup, args.threads), args.max_other)
            contended += not clean
            others.append(other)
            for r in rows:
                for d in ("compress", "decompress"):
                    times[side].setdefault((r["family"], d), []).append(r[f"{d}_ms"])
        print(f"{os.path.basename(image)}: done ({time.time() - started:.0f} s, other load "
              f"{100 * max(others[-2:]):.1f} %)", flush=True)

    report = {"rev": args.rev, "images": len(images), "rounds": args.rounds, "runs": args.runs, "threads": args.threads,
              "other_load_max": round(max(others), 4), "other_load_median": round(statistics.median(others), 4),
              "contended_runs": contended, "rows": []}
    lines = [f"this checkout vs {args.rev}: {len(images)} images x {args.rounds} rounds, median of {args.runs} runs each, "
             f"{args.threads} threads; other CPU load median {100 * statistics.median(others):.1f} %, "
             f"max {100 * max(others):.1f} %, {contended} contended runs", "",
             "| family | direction | this (s, sum over images) | rev | this / rev | per-image ratio median (range) |",
             "|---|---|---|---|---|---|"]
    for key in sorted(times["this"]):
        this, rev = times["this"][key], times["rev"].get(key)
        if not rev:
            continue
        ratios = [a / b for a, b in zip(this, rev)]
        row = {"family": key[0], "direction": key[1], "this_s": sum(this) / 1e3, "rev_s": sum(rev) / 1e3,
               "ratio": sum(this) / sum(rev), "ratio_median": statistics.median(ratios),
               "ratio_min": min(ratios), "ratio_max": max(ratios)}
        report["rows"].append(row)
        lines.append(f"| {key[0]} | {key[1]} | {row['this_s']:.2f} | {row['rev_s']:.2f} | {row['ratio']:.3f} | "
                     f"{row['ratio_median']:.3f} ({row['ratio_min']:.3f}-{row['ratio_max']:.3f}) |")
    write_report(args.out, report, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
