"""Frames: a few to 65,536 rows coded with a shared model, each decodable on its own.

A radio frame may be lost, so nothing carries over between frames: coding starts from the model's
trained tables every time. Layout (see docs/FORMAT.md, Frames):
  [patches, when the header says so]  coded words (rANS words, then raw-bit words from the end)
The header is the first raw bits (read from the end of the frame): 1 bit set for the usual frame
(`frame_rows` rows, no patches); else a 0 bit, a patches bit and the row count in 17 bits.
A frame names its model implicitly and checks itself: the coder starts from a 16-bit check (the
model's tag mixed with a hash of every value the frame decodes, see kernel.encode_block) and must
end on it, so decoding with another model, or a damaged frame, raises QresModelMismatch except with
odds of about 2^-16 (every word and raw bit must also come out exact).
"""

from __future__ import annotations

import numpy as np

from ..errors import QresFormatError
from .model import Model, as_2d
from .rows import MAX_BLOCK_VALUES, decode_rows, encode_rows, stack, to_streams
from .varint import Reader

MAX_FRAME_ROWS = 1 << 16
DEFAULT_FRAME_ROWS = 64
_ROW_BITS = 17  # row counts 0..65536


class Codec:
    """Frame codec bound to one model: `encode_frame(values) -> bytes`, `decode_frame(data) -> ndarray`.

    A model with one channel takes and returns 1-D frames; otherwise (rows, channels). Frames of
    `frame_rows` rows (the usual radio frame; encoder and decoder must agree on it) cost 1 bit of
    header, other sizes 19 bits.
    """

    codec_id = "qres-frame"

    def __init__(self, model: Model, frame_rows: int = DEFAULT_FRAME_ROWS):
        if not isinstance(model, Model):
            raise TypeError(f"Codec needs a qres.Model, got {type(model).__name__}")
        if not 0 <= frame_rows <= MAX_FRAME_ROWS:
            raise ValueError(f"frame_rows must be 0..{MAX_FRAME_ROWS}, got {frame_rows}")
        self.model = model
        self.frame_rows = frame_rows

    def encode_frame(self, values: np.ndarray) -> bytes:
        """Code one frame of up to 65,536 rows (lossless)."""
        arr = as_2d(values)
        n = arr.shape[0]
        if n > MAX_FRAME_ROWS:
            raise ValueError(f"a frame holds at most {MAX_FRAME_ROWS} rows, got {n}: split the data")
        columns = [arr[:, c] for c in range(arr.shape[1])]
        streams = to_streams([ch.transform for ch in self.model.channels], columns)
        has_patches = bool(streams[2])
        usual = n == self.frame_rows and not has_patches
        head = (1, 1) if usual else (int(has_patches) << 1 | n << 2, 2 + _ROW_BITS)
        body, _ = encode_rows(self.model, columns, streams=streams, head=head)
        return body if has_patches else body[1:]  # an empty patch section is left out

    def decode_frame(self, data: bytes) -> np.ndarray:
        """Decode one frame. Raises QresModelMismatch for a frame of another model, QresFormatError if malformed."""
        data = bytes(data)
        if len(data) < 4:
            raise QresFormatError(f"frame: {len(data)} bytes is too short for a frame")
        last = int.from_bytes(data[-2:], "little")
        if last & 1:
            n, has_patches, head_bits = self.frame_rows, False, 1
        else:
            bits = last | int.from_bytes(data[-4:-2], "little") << 16
            has_patches, n, head_bits = bool(bits >> 1 & 1), bits >> 2 & ((1 << _ROW_BITS) - 1), 2 + _ROW_BITS
            if n > MAX_FRAME_ROWS:
                raise QresFormatError(f"frame: {n} rows exceed the frame limit of {MAX_FRAME_ROWS}")
        if n * self.model.n_channels > MAX_BLOCK_VALUES:
            raise QresFormatError(f"frame: {n} rows exceed the block limit")
        # without a patch section on the wire, present an empty one to the row decoder
        r = Reader(data if has_patches else b"\x00" + data, what="frame")
        cols = decode_rows(self.model, r, n, what="frame", names_model=True, head_bits=head_bits)
        return cols[0] if self.model.n_channels == 1 else stack(cols)

    def get_config(self) -> dict:
        return {"id": self.codec_id, "model": self.model.to_bytes().hex(), "frame_rows": self.frame_rows}


__all__ = ["Codec"]
