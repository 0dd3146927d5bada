"""Trunks that compound across sessions: slim checkpoints in the repo, one-command resume, cool-down
branches, and a start from an exported model (density re-fit, lr warm-up)."""

import json
import os

import torch
from safetensors import safe_open

from tfci_training import train
from tfci_training.export import decoder_id

from test_train import TINY, data_dir, run  # noqa: F401  (data_dir is a fixture)

FAM = "bmshj2018-factorized-msssim"


def losses(run_dir):
    return {r["step"]: r for r in map(json.loads, open(os.path.join(run_dir, "log.jsonl"))) if "loss" in r}


def test_slim_trunk_resume_continues_the_same_run(tmp_path, data_dir):
    recipe = ["--family", FAM, "--data", data_dir, "--steps", 6, "--decay-frac", 0, "--lr", 1e-4,
              "--mse-warmup", 0, "--mse-term", 0.1, "--no-export", *TINY]
    run([*recipe, "--out", tmp_path / "a", "--trunk", tmp_path / "a.pt"])
    run([*recipe, "--out", tmp_path / "b", "--trunk", tmp_path / "b.pt", "--run-steps", 3])
    slim = os.path.getsize(tmp_path / "b.pt")
    assert 0 < slim < os.path.getsize(tmp_path / "b" / "checkpoint.pt")
    # A fresh machine: only the committed trunk file; the command names nothing of the recipe.
    run(["--trunk", tmp_path / "b.pt", "--out", tmp_path / "c", "--data", data_dir, "--no-export"])
    la, lc = losses(tmp_path / "a"), losses(tmp_path / "c")
    assert sorted(lc) == [4, 5, 6]
    for s in (4, 5, 6):
        assert la[s]["level"] == lc[s]["level"]  # the RNG states came along
    # Step 4's loss is that of the weights saved at step 3, exactly; after it, Adam's first moment
    # (not kept: beta1 = 0.9 rebuilds it in ~20 steps) moves the loss by ~0.1 %, far below the
    # step-to-step noise of the loss (here 2 to 160 between levels).
    assert la[4]["loss"] == lc[4]["loss"]
    for s in (5, 6):
        assert abs(la[s]["loss"] - lc[s]["loss"]) <= 1e-2 * abs(la[s]["loss"]), (s, la[s], lc[s])
    tr = torch.load(tmp_path / "b.pt", weights_only=False)
    assert tr["step"] == 6 and tr["args"]["mse_term"] == 0.1 and tr["cpu_minutes"] > 0
    assert any(k.startswith("entropy_bottlenecks.") for k in tr["model"])  # densities included
    st = next(iter(tr["opt"]["state"].values()))
    assert st["exp_avg_sq"].dtype == torch.bfloat16 and "exp_avg" not in st


def test_cooldown_branch_exports_and_leaves_the_trunk(tmp_path, data_dir):
    recipe = ["--family", FAM, "--data", data_dir, "--steps", 100, "--decay-frac", 0, "--lr", 2e-4,
              "--mse-warmup", 0, "--no-export", *TINY]
    run([*recipe, "--out", tmp_path / "t", "--trunk", tmp_path / "t.pt", "--run-steps", 3])
    before = open(tmp_path / "t.pt", "rb").read()
    exp = tmp_path / "models"
    run(["--trunk", tmp_path / "t.pt", "--cooldown", 3, "--out", tmp_path / "cool", "--data", data_dir,
         "--export-dir", exp])
    assert open(tmp_path / "t.pt", "rb").read() == before
    lrs = [r["lr"] for _, r in sorted(losses(tmp_path / "cool").items())]
    assert len(lrs) == 3 and lrs[0] < 2e-4 and lrs == sorted(lrs, reverse=True)
    assert abs(lrs[-1] - 1e-5) < 1e-12
    (e,) = json.load(open(exp / "manifest.json"))["families"]
    assert e["training"]["steps"] == 6 and "cool-down branch at step 3" in e["training"]["note"]
    assert e["version"] == 1 and e["versions"][0]["weights_id"] == e["decoder_id"]


def test_init_from_export_refits_densities_then_warms_up(tmp_path, data_dir):
    exp = tmp_path / "models"
    run(["--family", FAM, "--data", data_dir, "--steps", 2, "--out", tmp_path / "src",
         "--export-dir", exp, *TINY])
    src = str(exp / f"{FAM}.safetensors")
    with safe_open(src, framework="pt") as f:
        g_s = f.get_tensor("g_s.0.weight").float()
    common = ["--family", FAM, "--data", data_dir, "--steps", 100, "--decay-frac", 0, "--no-export",
              "--init-from", src, "--refit-steps", 2, "--lr-warmup", 2, "--out", tmp_path / "r", *TINY]
    run([*common, "--run-steps", 2])
    ck = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 4 and ck["schedule"]["init_step"] == 2  # the export's step count
    m = ck["families"][FAM]["model"]
    assert torch.equal(m["g_s.0.weight"], g_s)  # frozen during the re-fit
    run([*common, "--run-steps", 3])
    lr = {s: r["lr"] for s, r in losses(tmp_path / "r").items()}
    assert lr[3] == lr[4] == 0.0 and 0 < lr[5] < lr[6] < lr[7] == 1e-4
    ck = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    assert not torch.equal(ck["families"][FAM]["model"]["g_s.0.weight"], g_s)


def test_decoder_id_ignores_the_encoder():
    t = {"g_a.0.weight": torch.ones(2, 2), "g_s.0.weight": torch.ones(2, 2, dtype=torch.float16),
         "y_gain": torch.ones(1, 2), "y_gain_inv": torch.ones(1, 2), "y_eb.cdf": torch.zeros(2, 3, dtype=torch.int32)}
    base = decoder_id(t, "bmshj2018-factorized", 1, "0.01")
    assert len(base) == 16
    assert decoder_id({**t, "g_a.0.weight": torch.zeros(2, 2), "y_gain": torch.zeros(1, 2)},
                      "bmshj2018-factorized", 1, "0.01") == base
    assert decoder_id({**t, "g_s.0.weight": torch.zeros(2, 2, dtype=torch.float16)},
                      "bmshj2018-factorized", 1, "0.01") != base
    assert decoder_id(t, "bmshj2018-factorized", 2, "0.01") != base


def test_mse_term_changes_the_update(tmp_path, data_dir):
    """--mse-term reaches the gradient of both kinds of family (it was once dropped for the
    factorized ones, whose density term replaced the total)."""
    for fam in (FAM, "mbt2018-mean-msssim"):
        common = ["--family", fam, "--data", data_dir, "--steps", 2, "--mse-warmup", 0, "--no-export",
                  *TINY]
        run([*common, "--out", tmp_path / fam / "plain"])
        run([*common, "--out", tmp_path / fam / "mse", "--mse-term", 0.5])
        a = torch.load(tmp_path / fam / "plain" / "checkpoint.pt", weights_only=False)["families"][fam]
        b = torch.load(tmp_path / fam / "mse" / "checkpoint.pt", weights_only=False)["families"][fam]
        assert not torch.equal(a["model"]["g_s.0.weight"], b["model"]["g_s.0.weight"]), fam
