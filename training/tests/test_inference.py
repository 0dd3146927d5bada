import torch

from tfci_training.models import MeanScaleGain, to_input
from tfci_training.reference import run as reference_run


def test_symbols_decode_back(small_model, image_u8):
    m = small_model
    for level in range(1, m.levels + 1):
        out = m.inference(image_u8, level)
        g = m.y_gain[level - 1].detach().view(-1, 1, 1)
        gi = m.y_gain_inv[level - 1].detach().view(-1, 1, 1)
        assert torch.equal(out["y_gained"], out["y"] * g)
        assert int(out["y_symbols"].abs().max()) > 0, "degenerate latents"
        if isinstance(m, MeanScaleGain):
            mz = m.z_medians().view(-1, 1, 1)
            assert torch.equal(out["z_symbols"].float(), torch.round(out["z"] - mz))
            assert torch.equal(out["z_hat"], out["z_symbols"] + mz)
            means = out["means"]
            assert torch.equal(out["y_hat"], (out["y_symbols"] + means) * gi)
            # scale index: smallest k with max(s, 0.11) <= table[k], else 63
            table = m.gaussian_conditional.scale_table
            s = out["scales"].clamp_min(0.11).reshape(-1)
            idx = out["scale_indexes"].reshape(-1)
            for si, ii in zip(s.tolist(), idx.tolist()):
                ks = [k for k in range(64) if torch.tensor(si) <= table[k]]
                assert ii == (ks[0] if ks else 63)
        else:
            med = m.y_medians(level).view(-1, 1, 1)
            assert torch.equal(out["y_symbols"].float(), torch.round(out["y_gained"] - med))
            assert torch.equal(out["y_hat"], (out["y_symbols"] + med) * gi)


def test_eval_forward_matches_inference(small_model, image_u8):
    """CompressAI's eval-mode quantization (dequantize with medians/means) gives the same x_hat."""
    m = small_model.eval()
    x = to_input(image_u8)
    with torch.no_grad():
        fwd = m(x, 2)["x_hat"][0].clamp(0, 1)
    out = m.inference(image_u8, 2)
    assert torch.allclose(fwd, out["x_hat"], atol=1e-5)


def test_uint8_input_is_div_255(small_model, image_u8):
    a = small_model.inference(image_u8, 1)
    x = image_u8.permute(2, 0, 1).float() / 255.0
    b = small_model.inference(x, 1)
    assert torch.equal(a["x"], x)
    assert torch.equal(a["y_symbols"], b["y_symbols"])


def test_reference_matches_inference(small_model, image_u8, tmp_path):
    from tfci_training.export import export
    from tfci_training.reference import load

    export(small_model, "t", str(tmp_path), dtype="f16")
    t, meta = load(str(tmp_path / "t.safetensors"))
    for level in (1, small_model.levels):
        out = small_model.inference(image_u8, level)
        ref = reference_run(t, meta, image_u8, level)
        for k, v in ref.items():
            if v.dtype == torch.int32:
                assert torch.equal(v, out[k]), k
            else:
                assert torch.allclose(v, out[k], atol=1e-4, rtol=1e-5), k
