"""QRES as a numcodecs codec (id ``"qres"``), and a thin zarr v3 wrapper.

numcodecs / zarr v2::

    import numcodecs
    codec = numcodecs.get_codec({"id": "qres"})                    # or {"id": "qres", "max_error": 0.01}
    data = codec.encode(chunk)                                     # a .qres file (bytes)
    flat = codec.decode(data)                                      # 1-D, same dtype and bits

The codec is found through the ``numcodecs.codecs`` entry point that ``pip install qres`` declares.
As every numcodecs codec does, it codes a chunk as its values in memory order (C, or Fortran for an
F-contiguous chunk, e.g. of a zarr v2 array with order="F"); a strided view is taken in C order. The
shape is not stored (numcodecs and zarr know the chunk's shape), so `decode` returns a 1-D array,
or fills `out` (C or F order) when it is given. Chunks larger than `max_buffer_size` bytes, encoded
or decoded, raise ValueError.

zarr v3 does not take a plain numcodecs codec: its codecs must be ``zarr.abc.codec`` classes, and
zarr wraps only the numcodecs codecs it knows by name. QRES turns an array into bytes, so it is an
array-to-bytes codec (a *serializer*, in place of zarr's default ``bytes`` codec)::

    import zarr
    from qres.numcodecs import QresZarr
    z = zarr.create_array(store, shape=..., chunks=..., dtype="int16",
                          serializer=QresZarr(), compressors=None)

`QresZarr` is that wrapper: it codes each chunk with `Qres` and is stored in the array metadata as
``{"name": "qres", "configuration": {"max_error": ...}}``. It is registered with zarr when this
module is imported and through the ``zarr.codecs`` entry point, so a reader needs only qres installed.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ensure_ndarray, ndarray_copy

from .codec.container import read_header
from .codec.stream import compress, decompress

__all__ = ["Qres", "QresZarr"]


def _check_max_error(max_error: Any) -> float | None:
    if max_error is None:
        return None
    if isinstance(max_error, bool) or not isinstance(max_error, (int, float)) or not (
        math.isfinite(max_error) and max_error > 0
    ):
        raise ValueError(f"max_error must be None or a positive finite number, got {max_error!r}")
    return float(max_error)


class Qres(Codec):
    """numcodecs codec: `encode` an array chunk to a `.qres` file, `decode` it back (1-D).

    Lossless by default (same dtype and bits back); with `max_error` every decoded value is within
    max_error of the original. Any integer dtype, float32 and float64 are supported.
    """

    codec_id = "qres"
    _max_buffer_size = 2**31 - 1

    def __init__(self, max_error: float | None = None):
        self.max_error = _check_max_error(max_error)

    @property
    def max_buffer_size(self) -> int:
        """Largest chunk in bytes, encoded or decoded (numcodecs' name; not part of the config)."""
        return self._max_buffer_size

    @max_buffer_size.setter
    def max_buffer_size(self, value: int) -> None:
        self._max_buffer_size = value

    def encode(self, buf: Any) -> bytes:
        arr = ensure_ndarray(buf)
        if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            arr = np.ascontiguousarray(arr)
        return compress(ensure_contiguous_ndarray(arr, self.max_buffer_size), max_error=self.max_error)

    def decode(self, buf: Any, out: Any = None) -> Any:
        data = ensure_contiguous_ndarray(buf, self.max_buffer_size)
        size = read_header(data).total_size
        if size > self.max_buffer_size:
            raise ValueError(f"the chunk decodes to {size} bytes, more than max_buffer_size {self.max_buffer_size}")
        if out is None:
            return decompress(data).reshape(-1)
        flat = ensure_contiguous_ndarray(out)  # TypeError for an object array, as numcodecs requires
        if flat.nbytes != size:
            raise ValueError(f"out has {flat.nbytes} bytes, the chunk decodes to {size}")
        ndarray_copy(decompress(data).reshape(-1), flat)
        return out


# -- zarr v3 ------------------------------------------------------------------------------------

try:
    from dataclasses import dataclass

    from zarr.abc.codec import ArrayBytesCodec
    from zarr.core.common import parse_named_configuration
    from zarr.registry import register_codec
except ImportError:  # zarr is an optional extra
    pass
else:

    @dataclass(frozen=True)
    class QresZarr(ArrayBytesCodec):
        """zarr v3 array-to-bytes codec ("serializer") coding each chunk with `Qres`."""

        is_fixed_size = False
        max_error: float | None = None

        def __init__(self, *, max_error: float | None = None) -> None:
            object.__setattr__(self, "max_error", _check_max_error(max_error))

        @classmethod
        def from_dict(cls, data: dict) -> "QresZarr":
            _, config = parse_named_configuration(data, "qres", require_configuration=False)
            return cls(**(config or {}))

        def to_dict(self) -> dict:
            return {"name": "qres", "configuration": {"max_error": self.max_error}}

        async def _encode_single(self, chunk_array, chunk_spec):
            chunk = np.ascontiguousarray(chunk_array.as_numpy_array())  # zarr v3 chunk bytes are in C order
            data = await asyncio.to_thread(Qres(self.max_error).encode, chunk)
            return chunk_spec.prototype.buffer.from_bytes(data)

        async def _decode_single(self, chunk_bytes, chunk_spec):
            arr = await asyncio.to_thread(decompress, chunk_bytes.to_bytes())
            arr = arr.reshape(chunk_spec.shape).astype(chunk_spec.dtype.to_native_dtype(), copy=False)
            return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

        def compute_encoded_size(self, input_byte_length: int, chunk_spec) -> int:
            raise NotImplementedError("QRES output size depends on the data")

    register_codec("qres", QresZarr)
