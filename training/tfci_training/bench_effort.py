"""Seconds per image of ``tfci-enc compress -e N`` for every shipped family, with a PyTorch reference
for one search iteration measured in the same run (``just bench-effort``).

For each family (at ``--level``, default the middle one) and each of the first ``--images`` Kodak
images, interleaved:
1. the release ``tfci-enc compress -e E --backend cpu`` as a user runs it (one process per file:
   model load, PNG decode, analysis, search, coding, write), for every effort in ``--efforts``,
   with ``-v``, whose line for the search gives its iterations and seconds (seconds per iteration);
2. one PyTorch iteration of the same search's core on the same image size: ``g_s`` forward from the
   shipped weights (``reference.py``'s plain ``torch.nn.functional`` ops), the family's distortion
   (MSE, or ``1 - MS-SSIM`` with pytorch_msssim plus the MSE term), and autograd's backward to
   ``y_hat`` (2 threads, median of ``--torch-runs``); for the hyperprior family also ``h_s`` from
   ``z``, whose means shift ``y_hat`` and whose scales enter a stand-in rate term, so the backward
   pass reaches ``z`` through ``h_s`` as the Rust search's does. The table-rate term is left out on
   that side (table lookups per latent in Rust, a few percent of an iteration), so the reference
   is, if anything, fast.
Every sample records the other processes' CPU share (``benchutil``); a contended one is retried and
then flagged. Stop training first.

    cd training && python -m tfci_training.bench_effort --images 2 --out ../docs/benchmarks/effort.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from .benchutil import REPO, median_ms, sample, write_report
from .reference import _run, load

SEARCH = re.compile(r"effort \d+ at [^:]*: (\d+) iterations, .* ([0-9.]+) s$", re.M)


def rust_run(exe: str, models: str, name: str, image: str, effort: int, out: str):
    """One ``tfci-enc`` process: (wall seconds, search iterations, search seconds)."""
    t0 = time.perf_counter()
    err = subprocess.run([exe, "-v", "compress", "--model-dir", models, "--backend", "cpu", "-e", str(effort),
                          name, image, out], check=True, capture_output=True, text=True).stderr
    wall = time.perf_counter() - t0
    found = SEARCH.search(err)
    if effort and not found:
        raise SystemExit(f"tfci-enc -v said no search line:\n{err}")
    return wall, (int(found.group(1)) if found else 0), (float(found.group(2)) if found else 0.0)


def torch_iteration(model, entry: dict, image: str):
    """A closure running one forward + backward of the search's core in PyTorch; ``model`` is
    ``reference.load``'s ``(tensors, metadata)``."""
    from pytorch_msssim import ms_ssim

    t, meta = model
    arch, m = meta["architecture"], int(meta["M"])
    img = np.asarray(Image.open(image).convert("RGB"))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    h, w = x.shape[-2:]
    gen = torch.Generator().manual_seed(0)
    yh, yw = -(-h // 16), -(-w // 16)
    y_hat = torch.randn((1, m, yh, yw), generator=gen) * 2.0
    ms_ssim_family = entry.get("metric") == "ms-ssim"
    hyper = "h_s.0.weight" in t
    z0 = torch.randn((1, int(meta["N"]), -(-yh // 4), -(-yw // 4)), generator=gen) if hyper else None

    def step():
        # The weights of the terms do not change the cost; the terms are the family's.
        v = y_hat.clone().requires_grad_(True)
        inputs, y_in, rate = [v], v, 0.0
        if hyper:
            z = z0.clone().requires_grad_(True)
            hs = _run(t, arch, "h_s", z)[..., :yh, :yw]
            y_in = v + hs[:, m:]
            rate = torch.log(hs[:, :m].abs() + 0.11).mean()
            inputs.append(z)
        x_hat = _run(t, arch, "g_s", y_in)[..., :h, :w].clamp(0, 1)
        loss = torch.mean((x_hat - x) ** 2) + rate
        if ms_ssim_family:
            loss = loss + (1 - ms_ssim(x_hat, x, data_range=1.0))
        return torch.autograd.grad(loss, inputs)

    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", default=os.path.join(REPO, "..", "shared", "data", "kodak"))
    ap.add_argument("--images", type=int, default=2, help="the first N Kodak images")
    ap.add_argument("--efforts", default="0,1,2")
    ap.add_argument("--level", type=int, default=0, help="0: each family's middle level")
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-runs", type=int, default=5)
    ap.add_argument("--max-other", type=float, default=0.10)
    ap.add_argument("--out", help="JSON report (a .md table beside it)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    efforts = [int(e) for e in args.efforts.split(",")]
    if 0 not in efforts:
        efforts.insert(0, 0)
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tfci-enc"], cwd=REPO, check=True)
    exe = os.path.join(REPO, "target", "release", "tfci-enc")
    with open(os.path.join(args.models, "manifest.json")) as f:
        manifest = json.load(f)
    images = sorted(glob.glob(os.path.join(args.kodak, "*.png")))[:args.images]
    rows, contended = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.tfci")
        for entry in manifest["families"]:
            fam = entry["family"]
            level = args.level or (entry["levels"] + 1) // 2
            name = f"{fam}-{level}"
            secs = {e: [] for e in efforts}
            per_it = {e: [] for e in efforts}
            iters = {e: 0 for e in efforts}
            torch_ms = []
            model = load(os.path.join(args.models, entry["file"]))
            for image in images:
                for e in efforts:
                    (wall, n, search_s), _, clean = sample(
                        lambda: rust_run(exe, args.models, name, image, e, out), args.max_other)
                    contended += not clean
                    secs[e].append(wall)
                    iters[e] = n
                    if n:
                        per_it[e].append(search_s / n)
                step = torch_iteration(model, entry, image)
                ms, _, clean = sample(lambda: median_ms(step, 1, args.torch_runs), args.max_other)
                contended += not clean
                torch_ms.append(ms)
            torch_it = statistics.median(torch_ms) / 1e3
            for e in efforts:
                med = statistics.median(secs[e])
                it = statistics.median(per_it[e]) if per_it[e] else None
                rows.append({"family": fam, "level": level, "effort": e, "iterations": iters[e],
                             "seconds_per_image": round(med, 3), "seconds_per_image_all": [round(v, 3) for v in secs[e]],
                             "rust_s_per_iteration": round(it, 4) if it else None,
                             "torch_s_per_iteration": round(torch_it, 4),
                             "rust_over_torch": round(it / torch_it, 3) if it else None})
                print(f"{name} -e {e}: {med:.2f} s per image"
                      + (f", {it:.3f} s per iteration (PyTorch {torch_it:.3f})" if it else ""), flush=True)
    lines = [f"{len(images)} Kodak images, median per family and effort; {contended} contended samples",
             "", "| model | effort | iterations | s per image | Rust s per iteration | PyTorch s per iteration | Rust / PyTorch |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        it = f"{r['rust_s_per_iteration']:.3f}" if r["rust_s_per_iteration"] else "-"
        ratio = f"{r['rust_over_torch']:.2f}" if r["rust_over_torch"] else "-"
        lines.append(f"| {r['family']}-{r['level']} | {r['effort']} | {r['iterations']} | {r['seconds_per_image']:.2f} | "
                     f"{it} | {r['torch_s_per_iteration']:.3f} | {ratio} |")
    write_report(args.out, {"threads": args.threads, "images": [os.path.basename(i) for i in images],
                            "contended": contended, "rows": rows}, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
