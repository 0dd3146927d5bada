import math

import pytest
import torch

from tfci_training.models import FAMILIES, build_family


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_shapes(family):
    torch.manual_seed(0)
    f = FAMILIES[family]
    m = build_family(family).eval()
    assert (m.N, m.M, m.levels) == (f["N"], f["M"], f["levels"])
    assert len(f["lambdas"]) == f["levels"]
    assert m.y_gain.shape == m.y_gain_inv.shape == (f["levels"], f["M"])
    H, W = 35, 50
    x = torch.rand(1, 3, H, W)
    out = m.inference(x, f["levels"])
    yh, yw = math.ceil(H / 16), math.ceil(W / 16)
    assert out["y"].shape == (f["M"], yh, yw)
    assert out["y_symbols"].shape == out["y_hat"].shape == (f["M"], yh, yw)
    assert out["y_symbols"].dtype == torch.int32
    assert out["x_hat"].shape == (3, H, W)
    if f["architecture"] == "mbt2018-mean":
        assert out["z"].shape == (f["N"], math.ceil(yh / 4), math.ceil(yw / 4))
        for k in ("scales", "means", "scale_indexes"):
            assert out[k].shape == (f["M"], yh, yw)


@pytest.mark.parametrize("hw", [(1, 1), (16, 16), (17, 33), (27, 40), (64, 65)])
def test_any_size(small_model, hw):
    H, W = hw
    x = torch.rand(1, 3, H, W)
    out = small_model.inference(x, 2)
    yh, yw = math.ceil(H / 16), math.ceil(W / 16)
    assert out["y"].shape[-2:] == (yh, yw)
    assert out["x_hat"].shape == (3, H, W)
    assert float(out["x_hat"].min()) >= 0 and float(out["x_hat"].max()) <= 1
    if "z" in out:
        assert out["z"].shape[-2:] == (math.ceil(yh / 4), math.ceil(yw / 4))
    # training forward: same shapes, differentiable
    small_model.train()
    res = small_model(x, 2)
    assert res["x_hat"].shape == x.shape
    assert res["likelihoods"]["y"].shape[-2:] == (yh, yw)
    loss = sum(torch.log(l).sum() for l in res["likelihoods"].values()) + res["x_hat"].sum()
    loss.backward()
    assert small_model.y_gain.grad is not None
    small_model.eval()


def test_level_range(small_model):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError):
        small_model.inference(x, 0)
    with pytest.raises(ValueError):
        small_model.inference(x, small_model.levels + 1)
