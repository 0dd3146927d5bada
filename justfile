# tfci-rs developer recipes. `just --list` shows them. Python recipes need the training venv:
#   python3 -m venv ../venv && ../venv/bin/pip install -r training/requirements.txt
python := env_var_or_default("TFCI_PYTHON", justfile_directory() / ".." / "venv" / "bin" / "python")

default:
    @just --list

# Format every crate.
fmt:
    cargo fmt --all

# Lints as CI would want them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The README's test command.
test:
    cargo test --workspace

# Only the GPU tests (skipped without a wgpu adapter unless CI=true); `adapter` = name substring.
test-gpu adapter="":
    TFCI_TEST_ADAPTER="{{adapter}}" cargo test -p codec-core --lib gpu::
    TFCI_TEST_ADAPTER="{{adapter}}" cargo test -p tfci-tests --test gpu

# GPU vs CPU backend timings, per kernel and end to end (JSON on stdout, also written to `out`); `peak` = the adapter's FP32 TFLOP/s.
bench out="target/bench-gpu.json" adapter="" peak="":
    cargo bench -p codec-core --bench gpu -- --out {{out}} --adapter "{{adapter}}" {{ if peak != "" { "--peak-tflops " + peak } else { "" } }}

# Compress and decompress one Kodak image with a shipped model.
demo model="b2018-gdn-128-3" image="../shared/data/kodak/kodim01.png":
    cargo run --release -q -p tfci-enc -- compress {{model}} {{image}} target/demo.tfci
    cargo run --release -q -p tfci-dec -- decompress target/demo.tfci target/demo.png
    ls -l target/demo.tfci target/demo.png

# This checkout's CPU compress/decompress against revision `rev`'s on the Kodak images, interleaved in one run (writes docs/benchmarks/cpu-vs-REV.json and .md); stop other work first.
bench-vs rev images="../shared/data/kodak" rounds="2":
    cd training && {{python}} -m tfci_training.bench_revs --rev {{rev}} --images ../{{images}} --rounds {{rounds}} --runs 5 --warmup 1 --out ../docs/benchmarks/cpu-vs-{{rev}}.json

# Seconds per Kodak image of tfci-enc -e 0/1/2 per shipped family, with PyTorch's time for one search iteration in the same run (writes docs/benchmarks/effort.json and .md); stop other work first.
bench-effort images="2" efforts="0,1,2":
    cd training && {{python}} -m tfci_training.bench_effort --images {{images}} --efforts {{efforts}} --out ../docs/benchmarks/effort.json

# Per-op CPU kernel timings (criterion).
bench-ops:
    cargo bench -p codec-core --features internals --bench ops

# A one-shot tfci-enc compress per shipped family against the warm in-process compress, interleaved in one run (writes docs/benchmarks/oneshot.json and .md); stop other work first.
bench-oneshot image="../shared/data/kodak/kodim01.png":
    cd training && {{python}} -m tfci_training.bench_oneshot --image ../{{image}} --out ../docs/benchmarks/oneshot.json

# Where a one-shot compress spends what a warm process does not: every stage cold and warm, per family (a tfci-enc with stage marks, built in target/anatomy; writes docs/benchmarks/anatomy.json and .md); stop other work first.
bench-anatomy image="../shared/data/kodak/kodim01.png":
    cd training && {{python}} -m tfci_training.bench_anatomy --image ../{{image}} --out ../docs/benchmarks/anatomy.json

# CPU compress/decompress per family vs CompressAI/PyTorch, interleaved in one run, contended samples rejected (writes docs/benchmarks/cpu.json and .md).
bench-cpu image="../shared/data/kodak/kodim01.png":
    cd training && {{python}} -m tfci_training.bench_peer --image ../{{image}} --out ../docs/benchmarks/cpu.json

# On a machine with an NVIDIA GPU: tfci-rs on the wgpu adapter vs CompressAI/PyTorch on CUDA, same run (writes docs/benchmarks/cuda.json).
bench-cuda adapter="NVIDIA" image="../shared/data/kodak/kodim01.png":
    cd training && {{python}} -m tfci_training.bench_peer --image ../{{image}} --device cuda --backend gpu --adapter {{adapter}} --out ../docs/benchmarks/cuda.json

# Regenerate the golden fixtures from the PyTorch reference (never done by tests).
fixtures:
    cd training && {{python}} -m tfci_training.fixtures --out ../tests/fixtures
    cd training && {{python}} -m tfci_training.grad_fixtures --fixtures ../tests/fixtures

# Write random-init placeholder models (for experiments; models/ ships trained weights).
untrained out="target/untrained-models":
    cd training && {{python}} -m tfci_training.make_untrained --out ../{{out}}

# Python tests of the training package.
test-python:
    cd training && {{python}} -m pytest -q tests

# The tfci Python package, installed into the venv for development (editable; native module in release).
py-develop:
    cd crates/tfci-py && VIRTUAL_ENV={{justfile_directory()}}/../venv PATH={{justfile_directory()}}/../venv/bin:$PATH maturin develop --release --locked

# Its tests (against the release tfci-enc/tfci-dec of this checkout).
test-py: py-develop
    cargo build --release --locked -p tfci-enc -p tfci-dec
    {{python}} -m pytest -q crates/tfci-py/tests

# A wheel that carries the shipped models (into target/wheels; ~11 MB, 3.5 MB without the models).
wheel:
    rm -rf crates/tfci-py/python/tfci/models && cp -r models crates/tfci-py/python/tfci/models
    cd crates/tfci-py && maturin build --release --locked -o ../../target/wheels; status=$?; rm -rf python/tfci/models; exit $status

# Kodak RD evaluation: our models vs JPEG (and WebP/AVIF/JPEG XL if installed); writes docs/eval/.
eval:
    cargo run --release -q -p tfci-eval -- run --images ../shared/data/kodak --out docs/eval

# Copy the Kodak figures of `just eval` (docs/eval) into each family's manifest record and docs/models.md.
record-kodak:
    cd training && {{python}} -m tfci_training.record_kodak --eval ../docs/eval --manifest ../models/manifest.json --models-md ../docs/models.md

# The curve of BD-rate against training steps per family (docs/models-history.png) and the steps its
# log-linear trend needs to reach the stage-1 targets (from the manifest's history and docs/branches.csv).
plot-history:
    cd training && {{python}} -m tfci_training.plot_history --manifest ../models/manifest.json --branches ../docs/branches.csv --out ../docs/models-history.png

# Every figure of docs/models.md from the shipped models: Kodak evaluation, manifest records, tables, history plot.
models-report: eval record-kodak plot-history

# Resume a family's trunk from training/checkpoints/FAMILY.pt (its recipe comes from the file): one
# 1-thread process, passive OpenMP waits, nice 10; stops cleanly (trunk saved) on Ctrl-C / SIGTERM or after `minutes`.
trunk family minutes="0":
    cd training && OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 {{python}} -m tfci_training.train --trunk checkpoints/{{family}}.pt --out runs/trunk-{{family}} --time-limit {{minutes}}

# Cool-down branch off the trunk: `steps` steps of cosine lr decay, then export into models/ (the trunk is untouched).
# mbt2018-mean-msssim's must run on 256 px crops (docs/models.md): `just cooldown mbt2018-mean-msssim 300 --crop 256 --batch 4`.
cooldown family steps="600" *args="":
    rm -rf training/runs/cool-{{family}}
    cd training && OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 {{python}} -m tfci_training.train --trunk checkpoints/{{family}}.pt --cooldown {{steps}} --out runs/cool-{{family}} {{args}}

# Quick PyTorch look at run folders or trunks on six colourful Kodak images (bpp estimate, PSNR, MS-SSIM dB, Cb/Cr).
proxy +paths:
    cd training && OMP_NUM_THREADS=1 {{python}} -m tfci_training.proxy_eval {{paths}}

# Mean-colour shift (CIELAB) of every installed model on a chart of saturated patches, against JPEG q50.
colour:
    cargo run --release -q -p tfci-eval -- colour

# Train a family (e.g. `just train mbt2018-mean-msssim 60000 --bf16 --time-limit 8.5`); rerun to resume.
train family steps="60000" *args="":
    cd training && {{python}} -m tfci_training.train --family {{family}} --data ../../shared/data/train ../../shared/data/train_extra --steps {{steps}} --out runs/{{family}} {{args}}
