"""The tfci package against the CLI: same bytes, same images, the same refusals, and threads.

Needs the package installed (`maturin develop --release` in crates/tfci-py) and the release or debug
`tfci-enc`/`tfci-dec` of this checkout (`$TFCI_BIN_DIR`, else target/release, else target/debug).
"""

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tfci

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "models"
PHOTO = ROOT / "examples" / "astronaut.png"


def _bin(name):
    dirs = [os.environ.get("TFCI_BIN_DIR"), ROOT / "target" / "release", ROOT / "target" / "debug"]
    for d in dirs:
        if d and (ROOT / d / name).is_file():
            return str(ROOT / d / name)
    pytest.fail(f"{name} not built (cargo build --release, or set TFCI_BIN_DIR)")


@pytest.fixture(scope="module")
def photo():
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def _cli_compress(tmp_path, model, image_path, *flags):
    out = tmp_path / "cli.tfci"
    subprocess.run([_bin("tfci-enc"), "--model-dir", str(MODELS), "--backend", "cpu", "compress",
                    model, str(image_path), str(out), *flags], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("model", ["bmshj2018-factorized-msssim-3", "b2018-gdn-128-2",
                                   "mbt2018-mean-msssim-5"])
def test_same_file_as_tfci_enc_and_same_image_as_tfci_dec(tmp_path, photo, model):
    data = tfci.compress(photo, model, model_dir=MODELS)
    assert data == _cli_compress(tmp_path, model, PHOTO)
    assert tfci.compress(PHOTO, model, model_dir=MODELS) == data  # a path works as the array
    png = tmp_path / "cli.png"
    subprocess.run([_bin("tfci-dec"), "--model-dir", str(MODELS), "--backend", "cpu",
                    "decompress", str(tmp_path / "cli.tfci"), str(png)], check=True)
    got = tfci.decompress(data, model_dir=MODELS)
    assert got.dtype == np.uint8 and got.shape == photo.shape
    assert np.array_equal(got, np.asarray(Image.open(png).convert("RGB")))


def test_effort_gives_tfci_encs_file(tmp_path, photo):
    data = tfci.compress(photo, "b2018-gdn-128-2", effort=1, model_dir=MODELS)
    assert data == _cli_compress(tmp_path, "b2018-gdn-128-2", PHOTO, "-e", "1")
    codec = tfci.Codec("b2018-gdn-128-2", model_dir=MODELS)
    assert codec.compress(photo, effort=1) == data
    assert tfci.decompress(data, model_dir=MODELS).shape == photo.shape


def test_file_bytes_and_read_image_use_tfci_encs_decoder(photo):
    data = PHOTO.read_bytes()
    assert np.array_equal(tfci.read_image(data), photo)
    assert np.array_equal(tfci.read_image(PHOTO), photo)
    assert tfci.compress(data, "b2018-gdn-128-2", model_dir=MODELS) == \
        tfci.compress(photo, "b2018-gdn-128-2", model_dir=MODELS)
    with pytest.raises(tfci.TfciError, match="not a readable"):
        tfci.read_image(data[:3000])
    with pytest.raises(TypeError, match="not an array"):
        tfci.read_image(photo)


def test_search_and_rate_parameter_as_tfci_enc(tmp_path, photo):
    data = tfci.compress(photo, "mbt2018-mean-msssim", target_bpp=0.4, model_dir=MODELS)
    assert data == _cli_compress(tmp_path, "mbt2018-mean-msssim", PHOTO, "--target_bpp", "0.4")
    data = tfci.compress(photo, "mbt2018-mean-msssim", rd_parameter=4.5, model_dir=MODELS)
    assert data == _cli_compress(tmp_path, "mbt2018-mean-msssim", PHOTO, "--rd_parameter", "4.5")
    codec = tfci.Codec("mbt2018-mean-msssim", model_dir=MODELS)
    assert codec.compress(photo, rd_parameter=4.5) == data


def test_models_as_tfci_enc_lists_them():
    names = tfci.models(model_dir=MODELS)
    listing = subprocess.run([_bin("tfci-enc"), "--model-dir", str(MODELS), "models"],
                             check=True, capture_output=True, text=True).stdout
    families = {n.rsplit("-", 1)[0] for n in names}
    assert families and all(f in listing for f in families)
    assert "b2018-gdn-128-1" in names and "b2018-gdn-128-0" not in names


@pytest.mark.parametrize("bad, error", [
    (np.zeros((8, 8, 3), np.float32), TypeError),
    (np.zeros((8, 8, 3), np.uint16), TypeError),
    (np.zeros((8, 8), np.uint8), TypeError),
    (np.zeros((8, 8, 4), np.uint8), ValueError),
    (np.zeros((0, 8, 3), np.uint8), ValueError),
    ([[[0, 0, 0]]], TypeError),
])
def test_arrays_of_other_dtypes_and_shapes_are_refused(bad, error):
    with pytest.raises(error, match="height, width, 3"):
        tfci.compress(bad, "b2018-gdn-128-1", model_dir=MODELS)


def test_a_strided_view_codes_as_its_copy(photo):
    view = photo[::2, ::3]
    assert not view.flags["C_CONTIGUOUS"]
    assert tfci.compress(view, "b2018-gdn-128-1", model_dir=MODELS) == \
        tfci.compress(np.ascontiguousarray(view), "b2018-gdn-128-1", model_dir=MODELS)


def test_errors_carry_the_cli_messages(photo, tmp_path):
    with pytest.raises(tfci.TfciError, match="did you mean.*mbt2018-mean-msssim"):
        tfci.compress(photo, "mbt2018-mean-msssim-x", model_dir=MODELS)
    with pytest.raises(tfci.TfciError, match="is a family: name one of its models"):
        tfci.compress(photo, "b2018-gdn-128", model_dir=MODELS)
    with pytest.raises(tfci.TfciError, match="not a .tfci file"):
        tfci.decompress(b"not a tfci file", model_dir=MODELS)
    data = bytearray(tfci.compress(photo, "mbt2018-mean-msssim-2", model_dir=MODELS))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(tfci.TfciError, match="corrupted"):
        tfci.decompress(bytes(data), model_dir=MODELS)
    with pytest.raises(tfci.TfciError, match="memory limit"):
        tfci.compress(photo, "b2018-gdn-128-1", model_dir=MODELS, max_memory=1024)
    other = tfci.Codec("b2018-gdn-128", model_dir=MODELS)
    with pytest.raises(tfci.TfciError, match="not with this codec's b2018-gdn-128"):
        other.decompress(tfci.compress(photo, "mbt2018-mean-msssim-2", model_dir=MODELS))
    with pytest.raises(ValueError, match=r"effort 4 is not in 0\.\.=3"):
        tfci.compress(photo, "b2018-gdn-128-1", effort=4, model_dir=MODELS)
    with pytest.raises(ValueError, match="not both"):
        other.compress(photo, level=2, target_bpp=0.5)
    with pytest.raises(tfci.TfciError, match="no models found"):
        tfci.models(model_dir=tmp_path)


def test_a_shared_codec_under_threads_gives_the_serial_results(photo):
    codec = tfci.Codec("bmshj2018-factorized-msssim", model_dir=MODELS)
    crops = [np.ascontiguousarray(photo[i * 16:i * 16 + 160, i * 8:i * 8 + 200]) for i in range(8)]
    jobs = [(c, 1 + i % codec.levels) for i, c in enumerate(crops)]
    serial = [codec.compress(c, level=l) for c, l in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda job: codec.compress(job[0], level=job[1]), jobs))
        images = list(pool.map(codec.decompress, parallel))
    assert parallel == serial
    for (c, _), img in zip(jobs, images):
        assert img.shape == c.shape
