"""Training pipeline (CPU, tiny): runs, resumes bit-exactly, refuses Kodak, honours --time-limit, exports."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from tfci_training import train
from tfci_training.data import CropSampler, KodakError, find_images
from tfci_training.export import _check_tables, verify_file
from tfci_training.reference import expected_tensor_names

TINY = ["--widths", "8", "12", "--crop", "64", "--batch", "2", "--log-every", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Three small generated JPEGs (one in a subfolder), a PNG too small for a 64 crop, a text file and
    a "JPEG" that is not an image (both skipped)."""
    d = tmp_path_factory.mktemp("data")
    (d / "sub").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:96]
    for i, path in enumerate([d / "a.jpg", d / "b.jpeg", d / "sub" / "c.JPG"]):
        img = np.stack([(xx * (i + 1) * 2) % 256, (yy * 3 + 40 * i) % 256, (xx + yy) % 256], -1)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img[: 72 + 4 * i]).save(path, quality=90)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(d / "small.png")
    (d / "notes.txt").write_text("not an image")
    (d / "broken.jpg").write_text('{"not": "a jpeg"}')
    return str(d)


def run(args):
    assert train.main([str(a) for a in args]) == 0


def params(run_dir, family):
    ck = torch.load(os.path.join(run_dir, "checkpoint.pt"), map_location="cpu", weights_only=False)
    return ck, ck["families"][family]


def test_find_images_and_sampler(data_dir):
    paths = find_images([data_dir])
    assert [os.path.basename(p) for p in paths] == ["a.jpg", "b.jpeg", "broken.jpg", "small.png",
                                                   "c.JPG"]
    s = CropSampler(paths, 64, torch.device("cpu"), seed=0)
    assert len(s) == 3 and len(s.skipped) == 1 and len(s.unreadable) == 1
    x = s.sample(5)
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # every patch is an exact (possibly flipped) crop of one of the images
    bank = [s.bank[i, :, : int(s.sizes[i, 0]), : int(s.sizes[i, 1])].float() / 255 for i in range(3)]
    for p in x:
        found = False
        for img in bank:
            for cand in (p, p.flip(1), p.flip(2), p.flip(1).flip(2)):
                win = img.unfold(1, 64, 1).unfold(2, 64, 1)  # [3, h, w, 64, 64]
                if (win == cand[:, None, None]).all(0).all(-1).all(-1).any():
                    found = True
        assert found


def test_refuses_kodak(tmp_path, data_dir):
    kodak = tmp_path / "Kodak"
    kodak.mkdir()
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(kodak / "kodim01.png")
    with pytest.raises(KodakError):
        find_images([data_dir, str(kodak)])
    with pytest.raises(KodakError):
        run(["--family", "b2018-gdn-128", "--data", str(kodak), "--steps", "2",
             "--out", tmp_path / "run", *TINY])
    assert not (tmp_path / "run").exists()
    # a kodak file inside an innocent folder is refused too
    (tmp_path / "mixed").mkdir()
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(tmp_path / "mixed" / "kodak_01.png")
    with pytest.raises(KodakError):
        find_images([str(tmp_path / "mixed")])


def test_resume_is_bit_exact(tmp_path, data_dir):
    fam = "bmshj2018-factorized-msssim"  # MS-SSIM loss (window narrowed for the 64 px crop)
    common = ["--family", fam, "--data", data_dir, "--steps", 4, "--no-export", *TINY]
    run([*common, "--out", tmp_path / "a"])
    run([*common, "--out", tmp_path / "b", "--run-steps", 2])
    ck_b, _ = params(tmp_path / "b", fam)
    assert ck_b["step"] == 2
    run([*common, "--out", tmp_path / "b"])
    ck_a, a = params(tmp_path / "a", fam)
    ck_b, b = params(tmp_path / "b", fam)
    assert ck_a["step"] == ck_b["step"] == 4
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for opt in ("opt", "aux_opt"):
        sa, sb = a[opt]["state"], b[opt]["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            for k in sa[i]:
                assert torch.equal(sa[i][k], sb[i][k]), (opt, i, k)
    # the parameters did move
    torch.manual_seed(0)
    fresh = train.FamilyTrainer(fam, train.parse_args(
        ["--family", fam, "--steps", "1", "--out", str(tmp_path / "x"), *TINY]), torch.device("cpu"))
    assert not torch.equal(fresh.model.g_a[0].weight, a["model"]["g_a.0.weight"])
    log = [json.loads(line) for line in open(tmp_path / "b" / "log.jsonl")]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == [1, 2, 3, 4]
    assert all(1 <= r["level"] <= 8 for r in log if "loss" in r)


def test_time_limit_writes_checkpoint_then_export(tmp_path, data_dir):
    fam = "mbt2018-mean-msssim"
    out, exp = tmp_path / "run", tmp_path / "models"
    common = ["--family", fam, "--data", data_dir, "--steps", 3, "--out", out, "--export-dir", exp, *TINY]
    run([*common, "--time-limit", 0.001, "--time-reserve", 0])
    ck, _ = params(out, fam)
    assert ck["step"] < 3 and ck["minutes"] > 0
    assert not exp.exists()  # unfinished: nothing exported
    run(common)  # same command without the limit continues and exports
    ck, _ = params(out, fam)
    assert ck["step"] == 3
    path = exp / f"{fam}.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta, t = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    verify_file(str(path), t, meta)
    _check_tables(t)
    assert set(t) == expected_tensor_names("mbt2018-mean")
    assert meta["trained"] == "true" and meta["family"] == fam and meta["N"] == "8"
    assert t["g_a.0.weight"].dtype == torch.float16
    man = json.load(open(exp / "manifest.json"))
    (e,) = man["families"]
    assert e["family"] == fam and e["trained"] is True and e["kodak"] is None
    assert e["metric"] == "ms-ssim" and len(e["lambdas"]) == 8
    tr = e["training"]
    assert tr["images"] == 3 and tr["steps"] == 3 and tr["device"] == "cpu" and tr["batch"] == 2
    assert tr["data"] == [data_dir] and tr["minutes"] >= 0 and "note" in tr
    # --export-only re-exports the same weights (deterministic writer -> same sha256)
    run(["--out", out, "--export-only", "--export-dir", exp])
    assert json.load(open(exp / "manifest.json"))["families"][0]["sha256"] == e["sha256"]


def test_two_families_interleaved_mse_bf16(tmp_path, data_dir):
    fams = ["b2018-gdn-128", "bmshj2018-factorized-msssim"]
    out = tmp_path / "run"
    run(["--family", *fams, "--data", data_dir, "--steps", 2, "--out", out, "--no-export", "--bf16",
         "--channels-last", *TINY])
    ck = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert list(ck["families"]) == fams and ck["step"] == 2
    recs = [json.loads(line) for line in open(out / "log.jsonl")]
    assert {r["family"] for r in recs if "loss" in r} == set(fams)
    assert all(np.isfinite(r["loss"]) for r in recs if "loss" in r)


def test_lr_schedule():
    lrs = [train.lr_at(s, 100, 1e-4, 1e-5, 0.15) for s in range(100)]
    assert lrs[0] == lrs[84] == 1e-4 and lrs[85] < 1e-4
    assert abs(lrs[99] - 1e-5) < 1e-12 and all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert train.msssim_window(256) == 11 and train.msssim_window(128) == 7
    assert train.msssim_window(64) == 3


def test_cli_entry_point(tmp_path, data_dir):
    training_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-m", "tfci_training.train", "--family", "b2018-gdn-128",
                        "--data", os.path.join(data_dir, "kodak"), "--steps", "1",
                        "--out", str(tmp_path / "r")],
                       cwd=training_dir, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Kodak is evaluation-only" in r.stderr


def test_msssim_families_warm_up_on_mse(tmp_path, data_dir):
    fam = "bmshj2018-factorized-msssim"
    out = tmp_path / "run"
    run(["--family", fam, "b2018-gdn-128", "--data", data_dir, "--steps", 4, "--mse-warmup", 2,
         "--out", out, "--no-export", *TINY])
    recs = [json.loads(line) for line in open(out / "log.jsonl") if "loss" in line]
    warm = [(r["family"], r["step"], r["mse_warmup"]) for r in recs]
    assert warm == [(f, s, f == fam and s <= 2) for s in (1, 2, 3, 4) for f in (fam, "b2018-gdn-128")]
    # Both losses stay finite across the switch.
    assert all(np.isfinite(r["dist"]) for r in recs)


def test_every_level_density_trains_only_densities(tmp_path, data_dir):
    """The other levels' densities move at every step; gains and transforms get no gradient from them."""
    from tfci_training.models import build_model

    torch.manual_seed(0)
    m = build_model("bmshj2018-factorized", 8, 12, 3)
    y = torch.randn(2, 12, 4, 4, requires_grad=True)
    bits = m.density_bits(y, skip_level=2)
    bits.backward()
    assert float(bits) > 0 and y.grad is None
    assert m.y_gain.grad is None and all(p.grad is None for p in m.g_a.parameters())
    moved = [any(p.grad is not None and bool(p.grad.abs().sum() > 0)
                 for n, p in eb.named_parameters() if not n.endswith("quantiles"))
             for eb in m.entropy_bottlenecks]
    assert moved == [True, False, True]


def test_resume_from_one_group_optimizer(tmp_path, data_dir):
    """A checkpoint whose Adam has one group (before the density group) resumes with its moments."""
    out = tmp_path / "run"
    run(["--family", "b2018-gdn-128", "--data", data_dir, "--steps", "2", "--out", out, "--no-export",
         *TINY])
    ck, st = params(out, "b2018-gdn-128")
    tr = train.FamilyTrainer("b2018-gdn-128", train.parse_args(
        ["--family", "b2018-gdn-128", "--steps", "2", "--out", str(out), *TINY]), torch.device("cpu"))
    flat = [i for g in st["opt"]["param_groups"] for i in g["params"]]
    old = {"state": {flat.index(i): v for i, v in st["opt"]["state"].items()},
           "param_groups": [dict(st["opt"]["param_groups"][0], params=list(range(len(flat))))]}
    st = dict(st, opt=old)
    tr.load_state(st)
    by_name = dict(tr.model.named_parameters())
    for names, group in zip(tr.group_names, tr.opt.param_groups):
        for n, p in zip(names, group["params"]):
            assert p is by_name[n]
            i = tr.net_names.index(n)
            assert torch.equal(tr.opt.state[p]["exp_avg"], old["state"][i]["exp_avg"])
    assert len(tr.opt.param_groups) == 2 and tr.group_names[1]


def test_lowpass_loss_sees_only_block_means():
    x = torch.rand(2, 3, 32, 32)
    # Zero-mean detail inside each 8x8 block leaves it at zero; a colour shift does not.
    detail = torch.randn(2, 3, 32, 32)
    detail = detail - torch.nn.functional.avg_pool2d(detail, 8).repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert train.lowpass_loss(x + 0.1 * detail, x, 4, 8).item() < 1e-9
    shifted = x + torch.tensor([0.02, 0.0, -0.02]).view(1, 3, 1, 1)
    assert train.lowpass_loss(shifted, x, 4, 8).item() > 0.01


def test_colour_aug_rotates_chroma_and_keeps_the_rest():
    from tfci_training.data import colour_aug
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (4, 3, 16, 16), generator=g).float() / 255
    u = torch.tensor([[0.9, 0.3, 0.5], [0.1, 0.0, 0.0], [0.1, 0.5, 0.0], [0.1, 0.25, 1.0]])
    y = colour_aug(x, u, 0.5, 1.5)
    assert torch.equal(y[0], x[0])  # not chosen
    assert (y[1] - x[1]).abs().max() <= 1 / 255 + 1e-6  # angle 0, gain 1: the identity up to rounding
    assert torch.equal(torch.round(y * 255), y * 255)  # 8-bit values
    # 180 degrees swaps the chroma's sign: luma stays where nothing was clamped.
    w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    free = ((y[2] > 0) & (y[2] < 1)).all(0)
    assert ((y[2] * w).sum(0) - (x[2] * w).sum(0))[free].abs().max() < 2 / 255
    assert (y[2] - x[2]).abs().max() > 0.1
    assert torch.equal(colour_aug(x, u, 0.0, 1.5), x)


def test_colour_aug_run_resumes_bit_exactly(tmp_path, data_dir):
    fam = "bmshj2018-factorized-msssim"
    common = ["--family", fam, "--data", data_dir, "--steps", 3, "--no-export", "--colour-aug", "0.5",
              "--lowpass-term", "1", "--mse-warmup", "0", *TINY]
    run([*common, "--out", tmp_path / "a"])
    run([*common, "--out", tmp_path / "b", "--run-steps", 1])
    run([*common, "--out", tmp_path / "b"])
    _, a = params(tmp_path / "a", fam)
    _, b = params(tmp_path / "b", fam)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
