"""Learned image compression into ``.tfci`` files, as tensorflow-compression's ``tfci.py`` writes them.

The codec is tfci-rs (Rust), called in-process. A file is byte-identical to what ``tfci-enc
compress`` writes for the same image and model, and any ``tfci-dec`` decodes it.

    >>> import numpy as np, tfci
    >>> image = np.zeros((64, 96, 3), np.uint8)
    >>> data = tfci.compress(image, "b2018-gdn-128-4")
    >>> tfci.decompress(data).shape
    (64, 96, 3)

Models are found as the CLI finds them: ``model_dir=``, else ``$TFCI_MODEL_DIR``, else
``./models``, else the models inside this package (when the wheel carries them), else the
``models/`` folder of the source tree it was built from. A :class:`Codec` loads a model once and
may be shared between threads: the GIL is released while it codes.
"""

from pathlib import Path

from ._tfci import Codec, TfciError, compress, decompress, models, read_image, _set_bundled_models

__all__ = ["Codec", "TfciError", "compress", "decompress", "models", "read_image"]

_set_bundled_models(str(Path(__file__).parent / "models"))
