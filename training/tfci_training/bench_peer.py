"""Speed of tfci-rs against CompressAI/PyTorch, in one run, on one image: CPU against CPU
(``just bench-cpu``) or a wgpu adapter against CUDA (``just bench-cuda``, ``--device cuda --backend gpu``).

For each architecture at CompressAI's zoo widths this script
1. builds a random-init model of our architecture and exports it (f32) into a scratch model folder,
2. runs the Rust benchmark (``cargo bench -p codec-core --bench codec``) on that folder, on the CPU
   backend or (``--backend gpu``) on the wgpu adapter ``--adapter`` names,
3. times the same architecture in PyTorch with CompressAI's entropy coders (2 threads, inference mode):
   ``compressai.models.FactorizedPrior`` / ``MeanScaleHyperprior`` ``compress``/``decompress`` for the
   bmshj2018 and mbt2018 rows (as ``../shared/anchors/peer/compressai_speed.py`` does), and our
   ``Bls2017Gain`` with CompressAI's EntropyBottleneck coder for b2018-gdn (CompressAI has no bls2017),
4. writes the table with the ratios (JSON and Markdown).

The two sides are interleaved: ``--rounds`` times per architecture, one Rust benchmark process
(median of ``--runs`` after ``--warmup``) and one PyTorch sample (the same, in a fresh Python process
too: one long-lived PyTorch process kept whatever it settled into for all its rounds, and two runs
of the harness 15 minutes apart differed by up to 35 % on the PyTorch side alone), alternating which
goes first. For each sample the harness records how much of the CPUs other processes used meanwhile
(``benchutil.OtherLoad``); a sample over ``--max-other`` (10 %) is retried up to 3 times and, if it
stays contended, rejected. The speed-up is the median of the per-round ratios, with their range.

Random weights do not code every latent to zero: the factorized configs code about 200 kB
(bmshj2018) and 133 kB (b2018) on both sides, so the figures time the transforms plus a real but
small entropy-coding share (docs/benchmarks.md).

    cd training && python -m tfci_training.bench_peer --image ../../shared/data/kodak/kodim01.png \\
        --out ../docs/benchmarks/cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

from .benchutil import bench_binary, median_ms, sample, write_report
from .export import export
from .models import build_model

CONFIGS = [
    # name, architecture, N, M, CompressAI class (None: our module + CompressAI's coder)
    ("bmshj2018-factorized", "bmshj2018-factorized", 128, 192, "FactorizedPrior"),
    ("b2018-gdn-128", "b2018-gdn", 128, 128, None),
    ("mbt2018-mean", "mbt2018-mean", 128, 192, "MeanScaleHyperprior"),
    ("mbt2018-mean-q5", "mbt2018-mean", 192, 320, "MeanScaleHyperprior"),
]
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def peer_calls(arch: str, N: int, M: int, cls: str | None, x: torch.Tensor):
    """The peer's compress and decompress of ``x``; on CUDA each call ends with a synchronize (the
    strings come back to the host anyway; the reconstruction is waited for, not copied)."""
    import compressai.models as cm

    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    if cls is not None:
        net = getattr(cm, cls)(N, M).to(x.device).eval()
        net.update(force=True)
        out = net.compress(x)

        def comp():
            return net.compress(x)

        def dec():
            r = net.decompress(out["strings"], out["shape"])
            sync()
            return r
    else:
        net = build_model(arch, N, M, 4).to(x.device).eval()
        net.update(force=True, update_quantiles=True)
        eb = net.entropy_bottlenecks[1]
        g, gi = net.gains(2)

        def comp():
            y = net.g_a(x) * g
            return eb.compress(y), y.shape[-2:]

        strings, shape = comp()

        def dec():
            r = net.g_s(eb.decompress(strings, shape) * gi).clamp(0, 1)
            sync()
            return r

    return comp, dec


def peer_sample(name: str, args) -> tuple[float, float]:
    """One PyTorch sample of config ``name`` in a fresh process (``--peer-sample``): the medians
    of its compress and decompress calls, in ms."""
    cmd = [sys.executable, "-m", "tfci_training.bench_peer", "--peer-sample", name, "--image",
           os.path.abspath(args.image), "--runs", str(args.runs), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--device", args.device]
    run = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         cwd=os.path.join(REPO, "training"))
    out = json.loads(run.stdout)
    return out["compress_ms"], out["decompress_ms"]


def load_image(path: str, device: str) -> torch.Tensor:
    img = np.asarray(Image.open(path).convert("RGB"))
    return (torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255.0).to(device)


def peer_sample_main(name: str, args) -> None:
    """The body of ``--peer-sample``: prints one sample's JSON."""
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(0)
    _, arch, N, M, cls = next(c for c in CONFIGS if c[0] == name)
    with torch.inference_mode():
        comp, dec = peer_calls(arch, N, M, cls, load_image(args.image, args.device))
        c, d = median_ms(comp, args.warmup, args.runs), median_ms(dec, args.warmup, args.runs)
    print(json.dumps({"compress_ms": c, "decompress_ms": d}))


def rust_sample(exe: str, models: str, args) -> dict:
    """One Rust benchmark process on the one model in ``models``: its JSON row."""
    cmd = [exe, "--models", models, "--image", os.path.abspath(args.image), "--runs", str(args.runs),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--backend", args.backend]
    if args.adapter:
        cmd += ["--adapter", args.adapter]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)[0]


def interleaved(exe: str, models: str, name: str, args) -> dict:
    """``--rounds`` Rust and PyTorch samples, alternating which goes first; the clean ones' medians
    and the per-round ratios' median and range."""
    kept, rejected, shares = [], 0, []
    for k in range(args.rounds):
        order = ["rust", "peer"] if k % 2 == 0 else ["peer", "rust"]
        got = {}
        for side in order:
            if side == "rust":
                fn = lambda: rust_sample(exe, models, args)  # noqa: E731
            else:
                fn = lambda: peer_sample(name, args)  # noqa: E731
            got[side] = sample(fn, args.max_other)
            shares.append(got[side][1])
        if got["rust"][2] and got["peer"][2]:
            r, (pc, pd) = got["rust"][0], got["peer"][0]
            kept.append((r, r["compress_ms"], r["decompress_ms"], pc, pd))
        else:
            rejected += 1
    if not kept:
        raise SystemExit(f"{models}: every round was contended (other load up to "
                         f"{100 * max(shares):.0f} %); stop the other work and rerun")
    med = lambda i: statistics.median(s[i] for s in kept)  # noqa: E731
    ratio = lambda p, r: [s[p] / s[r] for s in kept]  # noqa: E731
    rc, rd = ratio(3, 1), ratio(4, 2)
    return {"row": kept[0][0], "rust_compress_ms": round(med(1), 3), "rust_decompress_ms": round(med(2), 3),
            "pytorch_compress_ms": round(med(3), 3), "pytorch_decompress_ms": round(med(4), 3),
            "speedup_compress": round(statistics.median(rc), 3),
            "speedup_compress_range": [round(min(rc), 3), round(max(rc), 3)],
            "speedup_decompress": round(statistics.median(rd), 3),
            "speedup_decompress_range": [round(min(rd), 3), round(max(rd), 3)],
            "rounds_kept": len(kept), "rounds_rejected": rejected,
            "other_load_max": round(max(shares), 4)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--out", default=None, help="JSON output; a .md table is written beside it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved Rust/PyTorch samples per config")
    ap.add_argument("--runs", type=int, default=3, help="timed calls per sample (their median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before a sample")
    ap.add_argument("--max-other", type=float, default=0.10,
                    help="largest share of the CPUs other processes may use during a sample")
    ap.add_argument("--configs", nargs="*", default=[c[0] for c in CONFIGS])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where PyTorch runs")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "gpu"], help="where tfci-rs runs")
    ap.add_argument("--adapter", default="", help="wgpu adapter name substring (--backend gpu)")
    ap.add_argument("--peer-sample", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peer_sample:
        peer_sample_main(args.peer_sample, args)
        return
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(0)
    configs = [c for c in CONFIGS if c[0] in args.configs]

    exe = bench_binary()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for name, arch, N, M, cls in configs:
            models = os.path.join(tmp, name)
            export(build_model(arch, N, M, 4), f"bench-{name}", models, dtype="f32", update_tables=True)
            m = interleaved(exe, models, name, args)
            r = m.pop("row")
            rows.append({
                "config": name, "N": N, "M": M, "image": os.path.basename(args.image),
                "width": r["width"], "height": r["height"], **m,
                "peer": f"compressai.models.{cls}" if cls else "tfci_training Bls2017Gain + compressai EntropyBottleneck",
            })
            print(f"{name}: rust {m['rust_compress_ms']:.1f}/{m['rust_decompress_ms']:.1f} ms, pytorch "
                  f"{m['pytorch_compress_ms']:.1f}/{m['pytorch_decompress_ms']:.1f} ms, speed-up "
                  f"{m['speedup_compress']:.2f}x/{m['speedup_decompress']:.2f}x "
                  f"({m['rounds_kept']} rounds kept, {m['rounds_rejected']} rejected)", flush=True)
        backend = r["backend"] if rows else args.backend

    env = {"threads": args.threads, "rounds": args.rounds, "runs": args.runs, "warmup": args.warmup,
           "max_other": args.max_other, "torch": torch.__version__,
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "pytorch_device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
           "rust_backend": backend}
    table = ["| config | N | M | image | Rust compress ms | PyTorch compress ms | speed-up (range) | "
             "Rust decompress ms | PyTorch decompress ms | speed-up (range) | rounds kept / rejected |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        (c0, c1), (d0, d1) = r["speedup_compress_range"], r["speedup_decompress_range"]
        table.append(f"| {r['config']} | {r['N']} | {r['M']} | {r['image']} {r['width']}x{r['height']} | "
                     f"{r['rust_compress_ms']:.1f} | {r['pytorch_compress_ms']:.1f} | "
                     f"{r['speedup_compress']:.2f}x ({c0:.2f}-{c1:.2f}) | "
                     f"{r['rust_decompress_ms']:.1f} | {r['pytorch_decompress_ms']:.1f} | "
                     f"{r['speedup_decompress']:.2f}x ({d0:.2f}-{d1:.2f}) | "
                     f"{r['rounds_kept']} / {r['rounds_rejected']} |")
    write_report(args.out, {"env": env, "rows": rows}, table, indent=2)


if __name__ == "__main__":
    main()
