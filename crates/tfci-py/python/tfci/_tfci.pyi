"""Type stubs of the native module (tfci-rs through PyO3)."""

import os
from typing import List, Optional, Union

import numpy as np
import numpy.typing as npt

ImageLike = Union[npt.NDArray[np.uint8], str, os.PathLike, bytes]
PathLike = Union[str, os.PathLike]

class TfciError(Exception):
    """A file, image or model the codec refused; the message is the CLI's."""

class Codec:
    """A model loaded once (one family, all its levels); safe to share between threads."""

    def __init__(
        self,
        model: str,
        *,
        model_dir: Optional[PathLike] = None,
        backend: str = "cpu",
        max_memory: Optional[int] = None,
    ) -> None: ...
    @property
    def family(self) -> str: ...
    @property
    def levels(self) -> int: ...
    def compress(
        self,
        image: ImageLike,
        *,
        level: Optional[int] = None,
        target_bpp: Optional[float] = None,
        rd_parameter: Optional[float] = None,
        bpp_strict: bool = False,
        effort: int = 0,
    ) -> bytes: ...
    def decompress(self, data: bytes) -> npt.NDArray[np.uint8]: ...

def compress(
    image: ImageLike,
    model: str,
    effort: int = 0,
    target_bpp: Optional[float] = None,
    rd_parameter: Optional[float] = None,
    *,
    bpp_strict: bool = False,
    model_dir: Optional[PathLike] = None,
    backend: str = "cpu",
    max_memory: Optional[int] = None,
) -> bytes: ...
def decompress(
    data: bytes,
    *,
    model_dir: Optional[PathLike] = None,
    backend: str = "cpu",
    max_memory: Optional[int] = None,
) -> npt.NDArray[np.uint8]: ...
def read_image(image: Union[str, os.PathLike, bytes]) -> npt.NDArray[np.uint8]: ...
def models(*, model_dir: Optional[PathLike] = None) -> List[str]: ...
def _set_bundled_models(dir: PathLike) -> None: ...
