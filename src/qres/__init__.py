"""QRES: predictive fixed-point compression of sensor streams, for swarms of small nodes.

The common case is one call each way::

    import qres
    data = qres.compress(values)            # lossless; or max_error=...
    values = qres.decompress(data)

Frames for radios: fit a model once, then code short frames that decode on their own::

    model = qres.Model.fit(history)
    codec = qres.Codec(model)
    frame = codec.encode_frame(values[:64])
"""

from .codec.frame import Codec
from .codec.model import Model
from .codec.stream import compress, decompress
from .errors import QresAuthError, QresError, QresFormatError, QresModelMismatch

__version__ = "0.2.0"

__all__ = [
    "Codec",
    "Model",
    "QresAuthError",
    "QresError",
    "QresFormatError",
    "QresModelMismatch",
    "compress",
    "decompress",
]
