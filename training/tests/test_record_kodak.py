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
                  "<!-- targets -->\n<!-- /targets -->\n<!-- history -->\n<!-- /history -->\n")
    rk.write_models_md(str(md), manifest)
    text = md.read_text()
    assert "old" not in text and "| 2 | 0.2000 | 28.000 |" in text and text.count("tail") == 1
    assert "| `b2018-gdn-128` | <= -35 % on PSNR | Ballé 2017: -44.0 % | -40.00 % | yes |" in text
    md.write_text("no markers")
    with pytest.raises(SystemExit):
        rk.write_models_md(str(md), manifest)


def test_colour_and_jpeg_parity_targets(tmp_path):
    assert rk.jpeg_msssim_at([(0.2, 10.0), (0.8, 16.0)], 0.4) == 13.0
    assert rk.jpeg_msssim_at([(0.2, 10.0), (0.8, 16.0)], 0.9) is None
    lv = [{"level": i + 1, "bpp": 0.2 * (i + 1), "psnr": 25 + i, "msssim_db": 11.0 + i, "ssim": 0.8,
           "psnr_y": 26.0, "psnr_cb": 36.0, "psnr_cr": 33.0 if i == 2 else 35.0,
           "jpeg_msssim_db": 10.0 + i + (2 if i == 1 else 0)} for i in range(3)]
    manifest = {"families": [{"family": "mbt2018-mean-msssim", "kodak": {
        "levels": lv, "bd_rate_vs_pil_jpeg": {"psnr": None, "msssim_db": -45.0}}}]}
    text = rk.targets_section(manifest)
    assert "| `mbt2018-mean-msssim` | <= -50 % on MS-SSIM dB | Minnen 2018: -68.3 % | -45.00 % | no |" in text
    assert "lowest 33.00 dB | no |" in text
    assert "worst -1.00 dB (below at levels 2) | no |" in text
    assert "| 3 | 0.6000 | 27.000 | 13.000 | 0.8000 | 26.00 | 36.00 | 33.00 | 12.000 |" in \
        rk.family_section("mbt2018-mean-msssim", manifest["families"][0]["kodak"])


def test_history_grows_by_stage():
    fam = {"family": "b2018-gdn-128", "version": 2, "training": {"steps": 30000, "cpu_minutes": 55.0},
           "kodak": {"levels": rows([0.1, 0.2], [27, 28]), "bd_rate_vs_pil_jpeg": {"psnr": -30.0, "msssim_db": None}}}
    for r in fam["kodak"]["levels"]:
        r.update(psnr_cb=38.0, psnr_cr=37.5 + r["level"])
    h = rk.update_history(fam)
    assert [x["steps"] for x in h] == [17000, 26000, 30000] and h[-1]["bd_rate"] == -30.0
    assert h[-1]["min_cr"] == 39.5  # only levels >= 2 count
    fam["kodak"]["bd_rate_vs_pil_jpeg"]["psnr"] = -31.0  # the same stage evaluated again: replaced
    assert [x["bd_rate"] for x in rk.update_history(fam)] == [-9.78, -27.01, -31.0]
    text = rk.history_section({"families": [fam]})
    assert "| `b2018-gdn-128` | 30,000 | 55 | -31.00 % on PSNR | 38.00 / 39.50 dB | version 2 |" in text
    assert "| `b2018-gdn-128` | 17,000 | n/a | -9.78 % on PSNR | n/a | commit 91fefa3 |" in text
