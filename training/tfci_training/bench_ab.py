"""Two ``tfci-enc`` builds against each other, one-shot ``compress`` calls interleaved in one run.

Why: on the 2-core VM a one-shot's median moves by 10-20 % between runs, so a change to the cold
path shows only when the old and the new binary alternate within one run (docs/benchmarks.md).
``--pause`` sleeps before every call: a user's single call after a few idle seconds, whose fresh
memory costs this VM several times what it costs back to back (the balloon device takes freed
pages back), so the footprint shows there. Build the old binary from a worktree first, e.g.

    git worktree add /tmp/old REV && (cd /tmp/old && cargo build --release -p tfci-enc)
    cd training && python -m tfci_training.bench_ab /tmp/old/target/release/tfci-enc \\
        ../target/release/tfci-enc --models bmshj2018-factorized-msssim-4,mbt2018-mean-msssim-4 --pause 3

Each binary keeps packed weights in a cache of its own in this run (``benchutil.private_pack_cache``),
filled by the untimed first round. Every call records the other processes' CPU share (``benchutil``); contended calls are retried,
then dropped. Stop training first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time

from .benchutil import REPO, private_pack_cache, sample


def call(exe: str, model: str, image: str, out: str, pause: float, backend: str = "cpu",
         cache: str | None = None) -> float:
    """Wall time of one ``compress`` in ms, after ``pause`` seconds of sleep; ``backend``
    ``default`` gives no ``--backend`` (what a user types); ``cache`` the packed-weights folder
    (``TFCI_CACHE_DIR``) of this binary."""
    time.sleep(pause)
    pick = [] if backend == "default" else ["--backend", backend]
    env = None if cache is None else {**os.environ, "TFCI_CACHE_DIR": cache}
    t0 = time.perf_counter()
    subprocess.run([exe, "compress", *pick, model, image, out], check=True, cwd=REPO, capture_output=True,
                   env=env)
    return (time.perf_counter() - t0) * 1e3


def summary(a: list, b: list) -> dict:
    """Medians, ranges and the ratio of the medians (B over A)."""
    ma, mb = statistics.median(a), statistics.median(b)
    return {"a_ms": round(ma, 1), "a_range": [round(min(a), 1), round(max(a), 1)],
            "b_ms": round(mb, 1), "b_range": [round(min(b), 1), round(max(b), 1)],
            "b_over_a": round(mb / ma, 3), "samples": [len(a), len(b)]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="the first tfci-enc (the old build)")
    ap.add_argument("b", help="the second tfci-enc (the new build)")
    ap.add_argument("--models", default="bmshj2018-factorized-msssim-4,b2018-gdn-128-2,mbt2018-mean-msssim-4")
    ap.add_argument("--image", default=os.path.join(REPO, "..", "shared", "data", "kodak", "kodim01.png"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--pause", type=float, default=0.0, help="seconds of sleep before every call")
    ap.add_argument("--backend", default="cpu", help="cpu, gpu, auto, or default (no --backend flag)")
    ap.add_argument("--max-other", type=float, default=0.10)
    args = ap.parse_args(argv)
    exes = [os.path.abspath(args.a), os.path.abspath(args.b)]
    image = os.path.abspath(args.image)
    models = args.models.split(",")
    times = {(m, i): [] for m in models for i in (0, 1)}
    dropped = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.tfci")
        # One packed-weights cache per binary: builds whose packing code differs replace each
        # other's files (tagged with a hash of that code), so a shared one is packed afresh and
        # written at every call.
        caches = [private_pack_cache(os.path.join(tmp, name)) for name in ("a", "b")]
        for r in range(args.rounds + 1):
            for m in models:
                # Alternate which binary goes first; round 0 only warms the page cache (and fills
                # the packed-weights cache of a build that keeps one).
                for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                    ms, _, clean = sample(lambda: call(exes[i], m, image, out, args.pause, args.backend,
                                                       caches[i]), args.max_other)
                    if r > 0 and clean:
                        times[(m, i)].append(ms)
                    dropped += r > 0 and not clean
    print(f"{os.path.basename(image)}, {args.rounds} rounds, pause {args.pause} s, backend {args.backend}, "
          f"{dropped} contended calls dropped")
    print(f"A = {args.a}\nB = {args.b}\n")
    print("| model | A (range) | B (range) | B / A |\n|---|---|---|---|")
    for m in models:
        if not times[(m, 0)] or not times[(m, 1)]:
            print(f"| {m} | every call contended | | |")
            continue
        s = summary(times[(m, 0)], times[(m, 1)])
        print(f"| {m} | {s['a_ms']} ms ({s['a_range'][0]}-{s['a_range'][1]}) | "
              f"{s['b_ms']} ms ({s['b_range'][0]}-{s['b_range'][1]}) | {s['b_over_a']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
