"""What the speed harnesses share: building the Rust end-to-end benchmark, and measuring how busy
the machine was with other work while a sample ran, so that contended samples can be rejected
instead of silently skewing a ratio (on a 2-core machine one busy neighbour doubles a time).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = ["cargo", "bench", "--no-run", "--message-format=json", "-p", "codec-core", "--bench", "codec"]


def has_internals(checkout: str) -> bool:
    """Whether the checkout gates its benchmarks behind codec-core's ``internals`` feature."""
    with open(os.path.join(checkout, "crates", "codec-core", "Cargo.toml")) as f:
        return "internals" in f.read()


def bench_binary(checkout: str = REPO) -> str:
    """Builds the codec benchmark (``crates/codec-core/benches/codec.rs``) in ``checkout`` and
    returns its executable, so that timing runs never wait for cargo."""
    cmd = BENCH + (["--features", "internals"] if has_internals(checkout) else [])
    out = subprocess.run(cmd, cwd=checkout, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and \
                msg["target"]["name"] == "codec":
            return msg["executable"]
    raise SystemExit(f"{checkout}: no codec benchmark executable in cargo's output")


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot (Linux ``/proc/stat``)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _own_seconds() -> float:
    """CPU seconds of this process (every thread) and of its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class OtherLoad:
    """``with OtherLoad() as load: ...`` then ``load.share``: the share of all CPUs that other
    processes used during the block (machine-wide busy time minus this process's and its
    children's), 0 on an idle machine, 1 when others held every core."""

    def __enter__(self):
        self._busy, self._total = _busy_jiffies()
        self._own = _own_seconds()
        self._t = time.perf_counter()
        self.share = 0.0
        return self

    def __exit__(self, *exc):
        busy, total = _busy_jiffies()
        own = (_own_seconds() - self._own) * os.sysconf("SC_CLK_TCK")
        self.share = max(0.0, (busy - self._busy) - own) / max(1, total - self._total)
        self.seconds = time.perf_counter() - self._t
        return False


def sample(fn, max_other: float, attempts: int = 3):
    """Runs ``fn`` until other processes used at most ``max_other`` of the CPUs meanwhile (at most
    ``attempts`` times): ``(result, share, clean)``; ``clean`` is False when every attempt was
    contended (the caller drops or flags the sample)."""
    for _ in range(attempts):
        with OtherLoad() as load:
            result = fn()
        if load.share <= max_other:
            return result, load.share, True
    return result, load.share, False


def median_ms(fn, warmup: int, runs: int) -> float:
    """Median wall time of ``runs`` calls after ``warmup`` untimed ones, in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def write_report(out: str | None, data: dict, lines: list, indent: int = 1) -> None:
    """Prints a benchmark's Markdown ``lines``; with ``out``, writes ``data`` there as JSON and the
    lines beside it as ``.md`` (``cpu.json`` and ``cpu.md``)."""
    print("\n".join(lines))
    if out:
        with open(out, "w") as f:
            json.dump(data, f, indent=indent)
        with open(os.path.splitext(out)[0] + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")


def private_pack_cache(tmp: str) -> str:
    """Points the ``tfci-enc``/``tfci-dec`` this process starts at a packed-weights cache of its own
    under ``tmp`` (``TFCI_CACHE_DIR``; the binaries keep packed weights between calls,
    ``crates/tfci-cli/src/pack_cache.rs``), so that a harness neither reads nor fills the user's;
    its first call per model fills it, as a user's first call does. Returns the folder."""
    folder = os.path.join(tmp, "pack-cache")
    os.environ["TFCI_CACHE_DIR"] = folder
    return folder
