"""Where a one-shot ``tfci-enc compress`` spends what a warm process does not (``just bench-anatomy``;
issue "CPU speed": measure what remains of the cold start and say why).

Builds ``tfci-enc`` with codec-core's ``stage-marks`` feature (into ``target/anatomy``, so the
release binary stays as it is), whose marks print the process's wall, CPU and system time and minor
page faults at each stage (``crates/codec-core/src/stage.rs``). For each shipped family at its
middle level, over ``--rounds`` rounds:
- cold: one ``tfci-enc compress --backend cpu MODEL IMAGE OUT`` (a user's single call), its stages
  from process start to exit, plus the time from the spawn to ``main`` and from ``main``'s return
  to the parent seeing the exit;
- warm: one ``tfci-enc compress`` of ``--batch`` copies of the image; the last image's stages (from
  its input ready to its file written), after the process has compressed the others.
Both use a packed-weights cache of the run's own, filled by one untimed call per family first
(``benchutil.private_pack_cache``). Prints the median of every stage's wall time, CPU time (both
threads), system time and faults, cold and warm, and the cold minus warm wall time. Stop training
first.

    cd training && python -m tfci_training.bench_anatomy --out ../docs/benchmarks/anatomy.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

from .benchutil import REPO, private_pack_cache, sample, write_report

MARK = re.compile(r"^stage (.+) ([0-9.]+) ([0-9.]+) ([0-9.]+) (-?[0-9]+) (-?[0-9]+)$", re.M)
# The marks of one image's compress, in order (a factorized family has no h_a and h_s).
IMAGE_STAGES = ["g_a", "h_a", "h_s", "entropy coded", "written"]


def marks(err: str) -> list[tuple[str, float, float, float, int, int]]:
    return [(m[0], float(m[1]), float(m[2]), float(m[3]), int(m[4]), int(m[5])) for m in MARK.findall(err)]


def deltas(seq: list) -> dict:
    """Each mark's stage as (wall, cpu, sys, faults) since the mark before it."""
    return {cur[0]: tuple(cur[i] - prev[i] for i in (1, 2, 3, 4)) for prev, cur in zip(seq, seq[1:])}


def cold(exe: str, models: str, name: str, image: str, out: str) -> dict:
    t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
    err = subprocess.run([exe, "compress", "--model-dir", models, "--backend", "cpu", name, image, out],
                         check=True, capture_output=True, text=True).stderr
    t1 = time.clock_gettime(time.CLOCK_MONOTONIC)
    seq = [m for m in marks(err) if m[0] != "image decoded"]
    if not seq or seq[0][0] != "main" or seq[-1][0] != "returned":
        raise SystemExit(f"tfci-enc printed no stage marks from main to its return:\n{err}")
    stages = {"spawn to main": ((seq[0][5] / 1e6 - t0) * 1e3, 0.0, 0.0, 0)}
    stages.update(deltas(seq))
    stages["return to exit seen"] = ((t1 - seq[-1][5] / 1e6) * 1e3, 0.0, 0.0, 0)
    stages["total"] = ((t1 - t0) * 1e3, seq[-1][2], seq[-1][3], seq[-1][4])
    return stages


def warm(exe: str, models: str, name: str, copies: list, outdir: str) -> dict:
    err = subprocess.run([exe, "compress", "--model-dir", models, "--backend", "cpu", "-o", outdir, name, *copies],
                         check=True, capture_output=True, text=True).stderr
    seq = [m for m in marks(err) if m[0] != "image decoded"]
    last = max(i for i, m in enumerate(seq) if m[0] == "input ready")
    image = seq[last:]
    end = next(i for i, m in enumerate(image) if m[0] == "written")
    stages = deltas(image[:end + 1])
    stages["total"] = tuple(image[end][i] - image[0][i] for i in (1, 2, 3, 4))
    return stages


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=os.path.join(REPO, "..", "shared", "data", "kodak", "kodim01.png"))
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=3, help="copies in the warm run (the last one is measured)")
    ap.add_argument("--max-other", type=float, default=0.10)
    ap.add_argument("--out", help="JSON report (a .md table beside it)")
    args = ap.parse_args(argv)
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tfci-enc", "--features", "stage-marks",
                    "--target-dir", os.path.join(REPO, "target", "anatomy")], cwd=REPO, check=True)
    exe = os.path.join(REPO, "target", "anatomy", "release", "tfci-enc")
    models, image = os.path.abspath(args.models), os.path.abspath(args.image)
    with open(os.path.join(models, "manifest.json")) as f:
        families = json.load(f)["families"]
    runs = {e["family"]: {"cold": [], "warm": []} for e in families}
    contended = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.tfci")
        copies = [shutil.copyfile(image, os.path.join(tmp, f"copy{i}.png")) for i in range(max(args.batch, 2))]
        outdir = os.path.join(tmp, "batch")
        private_pack_cache(tmp)
        for e in families:  # untimed: fills the packed-weights cache, as a user's first call does
            cold(exe, models, f"{e['family']}-{(e['levels'] + 1) // 2}", image, out)
        for _ in range(args.rounds):
            for e in families:
                name = f"{e['family']}-{(e['levels'] + 1) // 2}"
                for kind, fn in (("cold", lambda: cold(exe, models, name, image, out)),
                                 ("warm", lambda: warm(exe, models, name, copies, outdir))):
                    r, _, clean = sample(fn, args.max_other)
                    contended += not clean
                    if clean:
                        runs[e["family"]][kind].append(r)
    report = {"image": os.path.basename(image), "rounds": args.rounds, "contended": contended, "families": {}}
    lines = [f"{os.path.basename(image)}, {args.rounds} rounds, {contended} contended samples dropped; medians of "
             "each stage (from the mark before it); CPU and sys in ms over all threads, faults are minor page "
             "faults; total: cold from the spawn to the exit seen, warm from the last image's input ready to its "
             "file written", ""]
    for e in families:
        fam = e["family"]
        c, w = runs[fam]["cold"], runs[fam]["warm"]
        if not c or not w:
            lines.append(f"{fam}: every sample contended")
            continue
        names = [k for k in c[0] if k != "total"] + ["total"]
        med = lambda rs, k, i: statistics.median(r[k][i] for r in rs) if all(k in r for r in rs) else None
        rows = []
        for k in names:
            cw = [med(c, k, i) for i in range(4)]
            ww = [med(w, k, i) for i in range(4)] if (k in IMAGE_STAGES or k == "total") else [None] * 4
            rows.append({"stage": k, "cold": cw, "warm": ww})
        report["families"][fam] = rows
        lines += [f"**{fam}-{(e['levels'] + 1) // 2}**", "",
                  "| stage | cold wall | CPU | sys | faults | warm wall | CPU | sys | faults | cold - warm |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        fmt = lambda v, d=1, unit="": "-" if v is None else f"{v:.{d}f}{unit}"
        for r in rows:
            cw, ww = r["cold"], r["warm"]
            diff = None if ww[0] is None else cw[0] - ww[0]
            lines.append(f"| {r['stage']} | {fmt(cw[0], 1, ' ms')} | {fmt(cw[1])} | {fmt(cw[2])} | {fmt(cw[3], 0)} | "
                         f"{fmt(ww[0], 1, ' ms')} | {fmt(ww[1])} | {fmt(ww[2])} | {fmt(ww[3], 0)} | {fmt(diff)} |")
        lines.append("")
    write_report(args.out, report, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
