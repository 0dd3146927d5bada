"""examples/ray_compress.py on a local 2-CPU Ray cluster over the 24 Kodak images and one broken file.

Needs examples/requirements-ray.txt and ../shared/data/kodak; without them the test skips and says
why, except under CI=true, where a skip is a failure.
"""

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

import tfci

ROOT = Path(__file__).resolve().parents[3]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
MODELS = ROOT / "models"
MODEL = "b2018-gdn-128-1"


def _need(ok, why):
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI=true: a skip is a failure)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def ray_job():
    _need(importlib.util.find_spec("ray") is not None, "ray is not installed (examples/requirements-ray.txt)")
    _need(KODAK.is_dir(), f"no Kodak images at {KODAK}")
    spec = importlib.util.spec_from_file_location("ray_compress", ROOT / "examples" / "ray_compress.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield job
    ray.shutdown()


def test_kodak_on_a_local_cluster(ray_job, tmp_path):
    from test_tfci import _bin

    src = tmp_path / "in"
    src.mkdir()
    kodak = sorted(KODAK.glob("kodim*.png"))
    assert len(kodak) == 24
    for p in kodak:
        (src / p.name).symlink_to(p)
    (src / "broken.png").write_bytes(kodak[0].read_bytes()[:5000])  # a truncated PNG
    out = tmp_path / "out"
    df = ray_job.run(str(src), str(out), MODEL, model_dir=str(MODELS))
    s = ray_job.summary(df)
    print(s)
    assert (s["images"], s["coded"], s["failed"]) == (25, 24, 1)
    broken = df[df["path"].str.endswith("broken.png")].iloc[0]
    assert "broken.png" not in str(list(out.iterdir())) and broken["error"]
    # tfci-enc over the same files, one process: every Ray output is the same file, and decodes.
    cli = tmp_path / "cli"
    subprocess.run([_bin("tfci-enc"), "--model-dir", str(MODELS), "--backend", "cpu", "-q",
                    "compress", MODEL, "--out-dir", str(cli), *map(str, kodak)], check=True)
    for p in kodak:
        mine = (out / (p.name + ".tfci")).read_bytes()
        assert mine == (cli / (p.name + ".tfci")).read_bytes(), p.name
        assert tfci.decompress(mine, model_dir=MODELS).shape in {(512, 768, 3), (768, 512, 3)}
    assert (out / ray_job.RESULTS).exists()
    assert s["bytes_out"] == sum((out / (p.name + ".tfci")).stat().st_size for p in kodak)
