"""docs/models.md tables come from the evaluation, including the monotonicity verdict."""

import pytest

from tfci_training import record_kodak as rk


def rows(bpps, psnrs):
    return [{"level": i + 1, "bpp": b, "psnr": p, "msssim_db": 10.0 + i, "ssim": 0.5 + i / 100}
            for i, (b, p) in enumerate(zip(bpps, psnrs))]


def test_monotone_sentence_names_every_break():
    assert rk.monotone_sentence(rows([0.1, 0.2, 0.3], [25, 26, 27])).startswith("Levels are monotone")
    s = rk.monotone_sentence(rows([0.2, 0.1, 0.3], [25, 26, 26]))
    assert "bpp does not rise at 1->2 (0.2 -> 0.1)" in s and "PSNR does not rise at 2->3" in s


def test_blocks_are_replaced_between_markers(tmp_path):
    manifest = {"families": [{"family": "b2018-gdn-128", "kodak": {
        "levels": rows([0.1, 0.2], [27, 28]), "bd_rate_vs_pil_jpeg": {"psnr": -40.0, "msssim_db": None}}}]}
    md = tmp_path / "models.md"
    md.write_text("# M\n<!-- kodak:b2018-gdn-128 -->\nold\n<!-- /kodak:b2018-gdn-128 -->\ntail\n"
                  "<!-- targets -->\n<!-- /targets -->\n")
    rk.write_models_md(str(md), manifest)
    text = md.read_text()
    assert "old" not in text and "| 2 | 0.2000 | 28.000 |" in text and text.count("tail") == 1
    assert "| `b2018-gdn-128` | <= -35 % on PSNR | Ballé 2017: -44.0 % | -40.00 % | yes |" in text
    md.write_text("no markers")
    with pytest.raises(SystemExit):
        rk.write_models_md(str(md), manifest)
