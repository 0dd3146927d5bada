from ._tfci import Codec as Codec, TfciError as TfciError, compress as compress
from ._tfci import decompress as decompress, models as models, read_image as read_image

__all__ = ["Codec", "TfciError", "compress", "decompress", "models", "read_image"]
