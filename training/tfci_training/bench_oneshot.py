"""A one-shot ``tfci-enc compress`` against the warm in-process compress, in the same run
(``just bench-oneshot``; issue "CPU speed": one-shot within 1.3x of warm).

For each shipped family at its middle level, interleaved over ``--rounds`` rounds:
1. one-shot: the release ``tfci-enc -v compress --backend cpu MODEL IMAGE OUT`` as a user runs it
   (process start, model read and checksums, packed weights mapped from the cache an earlier call
   kept, PNG decode, compress, write, exit);
   its wall time, and from ``-v`` the model read, the preparation and the per-file time; and the
   same call without ``--backend`` (``auto``, what a user types: it looks for a hardware GPU first);
2. warm: the codec benchmark (``crates/codec-core/benches/codec.rs``, the same compress in a process
   that has already compressed the image ``--warmup`` times: 8-bit RGB to ``.tfci`` bytes, no PNG,
   no file), one process per round, its median over ``--runs``;
3. batch: one ``tfci-enc compress`` of ``--batch`` copies of the image (read, decode, compress and
   write each); its wall minus the same round's one-shot over ``--batch`` - 1 is the CLI's time per
   further image, so the one-shot minus that is the cold-start tax a batch pays once (the PNG
   decode and the file write are in both, not in the warm compress).
4. no cache: the one-shot with ``TFCI_CACHE_DIR=`` (it packs its weights into fresh memory, as the
   first call on a machine does before it keeps them);
5. after idle: the one-shot once more after ``--idle`` seconds of sleep (a user's single call, which
   seldom follows another within a second). On a VM that gives the guest's free memory back to its
   host (the development machine), the memory a call touches first after a pause must be backed by
   the host again: the same page faults cost several times the system time (docs/benchmarks.md).
The binaries' packed-weights cache is one of the run's own, filled by an untimed call per family
first (``benchutil.private_pack_cache``). Every one-shot records its user and system CPU time.
Every sample records the other processes' CPU share (``benchutil``); a contended one is retried and
then flagged. The ratio is the median one-shot over the median warm. Stop training first.

    cd training && python -m tfci_training.bench_oneshot --out ../docs/benchmarks/oneshot.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

from .benchutil import REPO, bench_binary, private_pack_cache, sample, write_report

LOAD = re.compile(r"read in ([0-9.]+) ms, transforms prepared in ([0-9.]+) ms")
FILE = re.compile(r"bpp \([^)]*\), ([0-9.]+) s$", re.M)


def one_shot(exe: str, models: str, name: str, image: str, out: str, backend: str = "cpu",
             cache: bool = True) -> dict:
    """One call; ``backend`` ``default`` gives no ``--backend`` (what a user types: ``auto``, a
    hardware GPU if there is one), as in ``bench_ab``; ``cache`` false: ``TFCI_CACHE_DIR=`` (it
    packs its weights, as a first call does, and keeps none)."""
    pick = [] if backend == "default" else ["--backend", backend]
    env = None if cache else {**os.environ, "TFCI_CACHE_DIR": ""}
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    err = subprocess.run([exe, "-v", "compress", "--model-dir", models, *pick, name, image, out],
                         check=True, capture_output=True, text=True, env=env).stderr
    wall = (time.perf_counter() - t0) * 1e3
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load, per_file = LOAD.search(err), FILE.search(err)
    if not (load and per_file):
        raise SystemExit(f"tfci-enc -v did not say its load and file times:\n{err}")
    return {"wall_ms": wall, "read_ms": float(load.group(1)), "prepare_ms": float(load.group(2)),
            "file_ms": float(per_file.group(1)) * 1e3, "user_ms": (r1.ru_utime - r0.ru_utime) * 1e3,
            "sys_ms": (r1.ru_stime - r0.ru_stime) * 1e3}


def batch(exe: str, models: str, name: str, copies: list, outdir: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([exe, "compress", "--model-dir", models, "--backend", "cpu", "-o", outdir, name, *copies],
                   check=True, capture_output=True)
    return (time.perf_counter() - t0) * 1e3


def warm(bench: str, models: str, image: str, runs: int, warmup: int, threads: int) -> dict:
    out = subprocess.run([bench, "--models", models, "--image", image, "--runs", str(runs), "--warmup",
                          str(warmup), "--threads", str(threads), "--bench"],
                         check=True, capture_output=True, text=True).stdout
    return {r["family"]: r["compress_ms"] for r in json.loads(out)}


def _cpu_model() -> str:
    """The CPU's model name and core count (Linux), for the report's header."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
    except OSError:
        return ""
    return f"{names[0]} x{len(names)}" if names else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=os.path.join(REPO, "..", "shared", "data", "kodak", "kodim01.png"))
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds (7 moved the ratio by up to 0.4 between runs on the 2-core VM)")
    ap.add_argument("--runs", type=int, default=5, help="warm compresses per benchmark process")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=5, help="copies of the image in the batch run (below 2: no batch run)")
    ap.add_argument("--idle", type=float, default=3.0,
                    help="seconds of sleep before the after-idle one-shot of each family and round (0: none)")
    ap.add_argument("--max-other", type=float, default=0.10)
    ap.add_argument("--out", help="JSON report (a .md table beside it)")
    args = ap.parse_args(argv)
    models, image = os.path.abspath(args.models), os.path.abspath(args.image)
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tfci-enc"], cwd=REPO, check=True)
    exe = os.path.join(REPO, "target", "release", "tfci-enc")
    bench = bench_binary(REPO)
    with open(os.path.join(models, "manifest.json")) as f:
        families = json.load(f)["families"]
    shots = {e["family"]: [] for e in families}
    warms = {e["family"]: [] for e in families}
    further = {e["family"]: [] for e in families}
    defaults = {e["family"]: [] for e in families}
    idles = {e["family"]: [] for e in families}
    uncached = {e["family"]: [] for e in families}
    contended = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.tfci")
        copies = [shutil.copyfile(image, os.path.join(tmp, f"copy{i}.png")) for i in range(args.batch)]
        outdir = os.path.join(tmp, "batch")
        private_pack_cache(tmp)
        for e in families:
            one_shot(exe, models, f"{e['family']}-{(e['levels'] + 1) // 2}", image, out)
        for r in range(args.rounds):
            w, _, clean = sample(lambda: warm(bench, models, image, args.runs, args.warmup, args.threads),
                                 args.max_other)
            contended += not clean
            if clean:
                for fam, ms in w.items():
                    if fam in warms:
                        warms[fam].append(ms)
            for e in families:
                name = f"{e['family']}-{(e['levels'] + 1) // 2}"
                s, _, shot_clean = sample(lambda: one_shot(exe, models, name, image, out), args.max_other)
                contended += not shot_clean
                if shot_clean:
                    shots[e["family"]].append(s)
                d, _, clean = sample(lambda: one_shot(exe, models, name, image, out, "default"), args.max_other)
                contended += not clean
                if clean:
                    defaults[e["family"]].append(d["wall_ms"])
                u, _, clean = sample(lambda: one_shot(exe, models, name, image, out, cache=False), args.max_other)
                contended += not clean
                if clean:
                    uncached[e["family"]].append(u["wall_ms"])
                if args.idle > 0:
                    time.sleep(args.idle)
                    i, _, clean = sample(lambda: one_shot(exe, models, name, image, out), args.max_other)
                    contended += not clean
                    if clean:
                        idles[e["family"]].append(i)
                # The batch is set against this round's one-shot, so only a clean one's.
                if args.batch > 1 and shot_clean:
                    b, _, clean = sample(lambda: batch(exe, models, name, copies, outdir), args.max_other)
                    contended += not clean
                    if clean:
                        further[e["family"]].append((b - s["wall_ms"]) / (args.batch - 1))
    rows = []
    for e in families:
        fam, s = e["family"], shots[e["family"]]
        if not s or not warms[fam]:
            print(f"{fam}: every sample contended")
            continue
        med = {k: statistics.median(x[k] for x in s) for k in s[0]}
        w = statistics.median(warms[fam])
        per_image = statistics.median(further[fam]) if further[fam] else None
        idle = {k: statistics.median(x[k] for x in idles[fam]) for k in ("wall_ms", "sys_ms")} if idles[fam] else None
        rows.append({"model": f"{fam}-{(e['levels'] + 1) // 2}", "one_shot_ms": round(med["wall_ms"], 1),
                     "range_ms": [round(min(x["wall_ms"] for x in s), 1), round(max(x["wall_ms"] for x in s), 1)],
                     "read_ms": round(med["read_ms"], 1), "prepare_ms": round(med["prepare_ms"], 1),
                     "file_ms": round(med["file_ms"], 1), "warm_ms": round(w, 1),
                     "ratio": round(med["wall_ms"] / w, 2), "samples": len(s),
                     "cli_per_image_ms": None if per_image is None else round(per_image, 1),
                     "cold_tax_ms": None if per_image is None else round(med["wall_ms"] - per_image, 1),
                     "default_backend_ms": (round(statistics.median(defaults[fam]), 1)
                                            if defaults[fam] else None),
                     "batch_samples": len(further[fam]),
                     "user_ms": round(med["user_ms"], 1), "sys_ms": round(med["sys_ms"], 1),
                     "idle_ms": None if idle is None else round(idle["wall_ms"], 1),
                     "idle_sys_ms": None if idle is None else round(idle["sys_ms"], 1),
                     "idle_ratio": None if idle is None else round(idle["wall_ms"] / w, 2),
                     "idle_samples": len(idles[fam]),
                     "no_cache_ms": (round(statistics.median(uncached[fam]), 1)
                                     if uncached[fam] else None)})
    cpu = _cpu_model()
    lines = [f"{os.path.basename(image)}, {args.rounds} rounds, {contended} contended samples"
             + (f", {cpu}" if cpu else ""),
             "",
             "| model | one-shot wall (range) | model read | prepared | per-file (read, decode, compress, write) "
             f"| warm compress | one-shot / warm | CLI per further image (batch of {args.batch}) | cold-start tax "
             f"| one-shot, default backend | one-shot CPU user / sys | after {args.idle:g} s idle: wall, sys, / warm "
             "| one-shot, no cache |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per, tax = (("-", "-") if r["cli_per_image_ms"] is None
                    else (f"{r['cli_per_image_ms']} ms", f"{r['cold_tax_ms']} ms"))
        default = "-" if r["default_backend_ms"] is None else f"{r['default_backend_ms']} ms"
        idle = ("-" if r["idle_ms"] is None
                else f"{r['idle_ms']} ms, {r['idle_sys_ms']} ms, {r['idle_ratio']}x")
        lines.append(f"| {r['model']} | {r['one_shot_ms']} ms ({r['range_ms'][0]}-{r['range_ms'][1]}) | "
                     f"{r['read_ms']} ms | {r['prepare_ms']} ms | {r['file_ms']} ms | {r['warm_ms']} ms | "
                     f"{r['ratio']}x | {per} | {tax} | {default} | {r['user_ms']} / {r['sys_ms']} ms | {idle} | "
                     f"{'-' if r['no_cache_ms'] is None else str(r['no_cache_ms']) + ' ms'} |")
    write_report(args.out, {"image": os.path.basename(image), "rounds": args.rounds, "batch": args.batch,
                            "idle_s": args.idle, "contended": contended, "cpu": cpu, "rows": rows}, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
