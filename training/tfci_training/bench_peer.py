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

Random weights code every latent to zero on both sides, so the figures time the transforms plus a
near-empty entropy coder (the transforms are 86-100% of the time either way, see PEER.md).

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
import tempfile
import time

import numpy as np
import torch
from PIL import Image

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


def median_ms(fn, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def peer_times(arch: str, N: int, M: int, cls: str | None, x: torch.Tensor, warmup: int, runs: int):
    """Median compress and decompress ms; on CUDA each call ends with a synchronize (the strings
    come back to the host anyway; the reconstruction is waited for, not copied)."""
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

    return median_ms(comp, warmup, runs), median_ms(dec, warmup, runs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--out", default=None, help="JSON output; a .md table is written beside it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--configs", nargs="*", default=[c[0] for c in CONFIGS])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where PyTorch runs")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "gpu"], help="where tfci-rs runs")
    ap.add_argument("--adapter", default="", help="wgpu adapter name substring (--backend gpu)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(0)
    configs = [c for c in CONFIGS if c[0] in args.configs]

    img = np.asarray(Image.open(args.image).convert("RGB"))
    x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0).to(args.device)

    with tempfile.TemporaryDirectory() as models:
        for name, arch, N, M, _ in configs:
            export(build_model(arch, N, M, 4), f"bench-{name}", models, dtype="f32", update_tables=True)
        cmd = ["cargo", "bench", "-q", "-p", "codec-core", "--bench", "codec", "--", "--models", models,
               "--image", os.path.abspath(args.image), "--runs", str(args.runs), "--warmup",
               str(args.warmup), "--threads", str(args.threads), "--backend", args.backend]
        if args.adapter:
            cmd += ["--adapter", args.adapter]
        rust = json.loads(subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout)

    rows = []
    with torch.inference_mode():
        for (name, arch, N, M, cls), r in zip(configs, rust):
            pc, pd = peer_times(arch, N, M, cls, x, args.warmup, args.runs)
            rows.append({
                "config": name, "N": N, "M": M, "image": os.path.basename(args.image),
                "width": r["width"], "height": r["height"],
                "rust_compress_ms": r["compress_ms"], "rust_decompress_ms": r["decompress_ms"],
                "pytorch_compress_ms": round(pc, 3), "pytorch_decompress_ms": round(pd, 3),
                "speedup_compress": round(pc / r["compress_ms"], 3),
                "speedup_decompress": round(pd / r["decompress_ms"], 3),
                "peer": f"compressai.models.{cls}" if cls else "tfci_training Bls2017Gain + compressai EntropyBottleneck",
            })
            print(f"{name}: rust {r['compress_ms']:.1f}/{r['decompress_ms']:.1f} ms, "
                  f"pytorch {pc:.1f}/{pd:.1f} ms", flush=True)

    env = {"threads": args.threads, "runs": args.runs, "warmup": args.warmup, "torch": torch.__version__,
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "pytorch_device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
           "rust_backend": rust[0]["backend"] if rust else args.backend}
    table = ["| config | N | M | image | Rust compress ms | PyTorch compress ms | speed-up | "
             "Rust decompress ms | PyTorch decompress ms | speed-up |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['config']} | {r['N']} | {r['M']} | {r['image']} {r['width']}x{r['height']} | "
                     f"{r['rust_compress_ms']:.1f} | {r['pytorch_compress_ms']:.1f} | {r['speedup_compress']:.2f}x | "
                     f"{r['rust_decompress_ms']:.1f} | {r['pytorch_decompress_ms']:.1f} | {r['speedup_decompress']:.2f}x |")
    print("\n".join(table))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=2)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
