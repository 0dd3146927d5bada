import json
import os

import pytest
import torch
from safetensors import safe_open

from tfci_training.export import REQUIRED_METADATA, export, sha256_file
from tfci_training.models import GDN
from tfci_training.reference import expected_tensor_names, load

FLOAT_WEIGHTS = (".weight", ".bias", ".beta", ".gamma")


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_export_round_trip(small_model, image_u8, tmp_path, dtype):
    m = small_model
    fam = f"test-{m.architecture}"
    entry = export(m, fam, str(tmp_path), dtype=dtype, metadata_extra={"note": "x"},
                   manifest_entry_extra={"trained": False, "metric": "mse"})
    path = tmp_path / f"{fam}.safetensors"
    t, meta = load(str(path))
    # names and dtypes exactly as in docs/model-format.md
    assert set(t) == expected_tensor_names(m.architecture)
    for k, v in t.items():
        if k.endswith(FLOAT_WEIGHTS):
            assert v.dtype == (torch.float16 if dtype == "f16" else torch.float32), k
        elif k.endswith(("cdf", "cdf_len", "offset")):
            assert v.dtype == torch.int32, k
        else:
            assert v.dtype == torch.float32, k
    for key in REQUIRED_METADATA:
        assert key in meta
    assert meta["format"] == "tfci-model/1"
    assert meta["architecture"] == m.architecture and meta["family"] == fam
    assert (meta["N"], meta["M"], meta["levels"]) == (str(m.N), str(m.M), str(m.levels))
    assert meta["precision"] == "16" and meta["leaky_relu_slope"] == "0.01"
    assert meta["note"] == "x"
    # values: transforms (f32 view) equal the model's current values, gains exact
    sd = dict(m.named_parameters())
    for name, layer in m.transform_layers():
        if isinstance(layer, GDN):
            beta, gamma = layer.effective()
            assert torch.equal(t[f"{name}.beta"].float(), beta)
            assert torch.equal(t[f"{name}.gamma"].float(), gamma)
            assert (gamma >= 0).all() and (beta > 0).all()
        else:
            assert torch.equal(t[f"{name}.weight"].float(), sd[f"{name}.weight"].detach())
    assert torch.equal(t["y_gain"], m.y_gain.detach())
    assert torch.equal(t["y_gain_inv"], m.y_gain_inv.detach())
    # manifest
    with open(tmp_path / "manifest.json") as f:
        man = json.load(f)
    assert man["format_version"] == 1
    (e,) = [e for e in man["families"] if e["family"] == fam]
    assert e == entry
    assert e["sha256"] == sha256_file(str(path))
    assert e["file"] == f"{fam}.safetensors" and e["architecture"] == m.architecture
    assert e["levels"] == m.levels and e["trained"] is False
    # export again: the entry is replaced, not duplicated; other entries kept
    export(m, "other", str(tmp_path), dtype=dtype)
    export(m, fam, str(tmp_path), dtype=dtype)
    with open(tmp_path / "manifest.json") as f:
        man = json.load(f)
    assert [e["family"] for e in man["families"]] == [fam, "other"]


def test_f16_rounding_is_loaded_back(small_model, image_u8, tmp_path):
    m = small_model
    before = m.inference(image_u8, 1)["x_hat"]
    export(m, "h", str(tmp_path), dtype="f16")
    for name, layer in m.transform_layers():
        if isinstance(layer, GDN):
            for v in layer.effective():
                assert torch.equal(v, v.half().float())
        else:
            assert torch.equal(layer.weight, layer.weight.half().float())
    after = m.inference(image_u8, 1)["x_hat"]
    assert (after - before).abs().max() < 0.05  # rounding changes little


def test_trainable_after_f16_export(small_model, tmp_path):
    m = small_model
    export(m, "tr", str(tmp_path), dtype="f16")
    for _, layer in m.transform_layers():
        if isinstance(layer, GDN):
            layer.clear_effective()  # back to the raw (reparametrized) parameters
            beta, _ = layer.effective()
            assert torch.allclose(beta, beta.half().float(), rtol=1e-3)
    m.train()
    x = torch.rand(1, 3, 20, 20)
    m(x, 1)["x_hat"].sum().backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if n.startswith("g_a"))


def _check_table(cdf, cdf_len, offset):
    assert cdf.shape[0] == cdf_len.shape[0] == offset.shape[0]
    assert cdf.shape[1] == int(cdf_len.max())
    for i in range(cdf.shape[0]):
        n = int(cdf_len[i])
        row = cdf[i]
        assert row[0] == 0 and row[n - 1] == 65536
        assert bool((row[1:n] > row[: n - 1]).all()), f"row {i}: empty bin"
        assert bool((row[n:] == 0).all())
        assert int(offset[i]) <= 0


def test_tables_valid(small_model, tmp_path):
    m = small_model
    export(m, "tb", str(tmp_path), dtype="f32")
    t, _ = load(str(tmp_path / "tb.safetensors"))
    if m.architecture == "mbt2018-mean":
        _check_table(t["z_eb.cdf"], t["z_eb.cdf_len"], t["z_eb.offset"])
        assert t["z_eb.medians"].shape == (m.N,)
        _check_table(t["y_gc.cdf"], t["y_gc.cdf_len"], t["y_gc.offset"])
        st = t["y_gc.scale_table"]
        assert st.shape == (64,) and bool((st[1:] > st[:-1]).all())
        assert float(st[0]) == pytest.approx(0.11) and float(st[-1]) == pytest.approx(256, rel=1e-5)
        assert torch.equal(t["y_gc.offset"], -((t["y_gc.cdf_len"] - 3) // 2))
    else:
        _check_table(t["y_eb.cdf"], t["y_eb.cdf_len"], t["y_eb.offset"])
        assert t["y_eb.cdf"].shape[0] == m.levels * m.M
        assert t["y_eb.medians"].shape == (m.levels * m.M,)
        # row (l-1)*M + c belongs to level l's bottleneck
        eb = m.entropy_bottlenecks[1]
        assert torch.equal(t["y_eb.offset"][m.M: 2 * m.M], eb._offset)
        assert torch.equal(t["y_eb.medians"][m.M: 2 * m.M], eb._get_medians().detach().reshape(-1))


REPO_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "models")


@pytest.mark.skipif(not os.path.exists(os.path.join(REPO_MODELS, "manifest.json")),
                    reason="no models/manifest.json")
def test_repo_models_manifest():
    with open(os.path.join(REPO_MODELS, "manifest.json")) as f:
        man = json.load(f)
    for e in man["families"]:
        path = os.path.join(REPO_MODELS, e["file"])
        assert sha256_file(path) == e["sha256"], e["family"]
        with safe_open(path, framework="pt") as f:
            meta = f.metadata()
            assert set(f.keys()) == expected_tensor_names(e["architecture"])
        assert meta["family"] == e["family"] and meta["levels"] == str(e["levels"])


def test_a_new_export_keeps_the_familys_history(small_model, tmp_path):
    """record_kodak's evaluated stages survive the next export (it lost them once: the 35,569-step
    stage of b2018-gdn-128 vanished from docs/models.md when its next cool-down was exported)."""
    m = small_model
    fam = f"test-{m.architecture}"
    export(m, fam, str(tmp_path), dtype="f32")
    mpath = tmp_path / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["families"][0]["history"] = [{"steps": 10, "bd_rate": -1.0}]
    mpath.write_text(json.dumps(manifest))
    with torch.no_grad():
        next(m.g_s.parameters()).add_(0.01)
    entry = export(m, fam, str(tmp_path), dtype="f32")
    assert entry["version"] == 2
    assert entry["history"] == [{"steps": 10, "bd_rate": -1.0}]
