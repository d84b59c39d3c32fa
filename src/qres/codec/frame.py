"""Frames: a few to a few hundred rows coded with a shared model, each decodable on its own.

A radio frame may be lost, so nothing carries over between frames: coding starts from the model's
trained tables every time. Layout:
  byte h: bit 7 = patches present; bits 0..6 = row count 1..127, or 0 when a uvarint count follows
  [patches (see rows.py) when bit 7 is set]
  rANS words (uint16 little-endian) to the end of the frame
A frame names its model implicitly: the coder starts from a 16-bit tag of the model id and must end
on it, so decoding with another model raises QresModelMismatch (a false match has odds 2^-16, and
the word count must also come out exact).
"""

from __future__ import annotations

import numpy as np

from ..errors import QresFormatError
from .model import Model, as_2d
from .rows import MAX_BLOCK_VALUES, decode_rows, encode_rows, stack
from .varint import Reader, put_uvarint

MAX_FRAME_ROWS = 1 << 16


class Codec:
    """Frame codec bound to one model: `encode_frame(values) -> bytes`, `decode_frame(data) -> ndarray`.

    A model with one channel takes and returns 1-D frames; otherwise (rows, channels).
    """

    codec_id = "qres-frame"

    def __init__(self, model: Model):
        if not isinstance(model, Model):
            raise TypeError(f"Codec needs a qres.Model, got {type(model).__name__}")
        self.model = model

    def encode_frame(self, values: np.ndarray) -> bytes:
        """Code one frame of up to 65,536 rows (lossless)."""
        arr = as_2d(values)
        n = arr.shape[0]
        if n > MAX_FRAME_ROWS:
            raise ValueError(f"a frame holds at most {MAX_FRAME_ROWS} rows, got {n}: split the data")
        body, _ = encode_rows(self.model, [arr[:, c] for c in range(arr.shape[1])])
        has_patches = body[0] != 0
        if not has_patches:
            body = body[1:]
        head = bytearray([(0x80 if has_patches else 0) | (n if 0 < n < 128 else 0)])
        if not 0 < n < 128:
            put_uvarint(head, n)
        return bytes(head) + body

    def decode_frame(self, data: bytes) -> np.ndarray:
        """Decode one frame. Raises QresModelMismatch for a frame of another model, QresFormatError if malformed."""
        r = Reader(data, what="frame")
        h = r.u8()
        n = h & 0x7F
        if n == 0:
            n = r.uvarint(MAX_FRAME_ROWS)
        if n * self.model.n_channels > MAX_BLOCK_VALUES:
            raise QresFormatError(f"frame: {n} rows exceed the block limit")
        if not h & 0x80:
            # no patch section on the wire: present an empty one to the row decoder
            r = Reader(b"\x00" + r.take(r.remaining()), what="frame")
        cols = decode_rows(self.model, r, n, what="frame", names_model=True)
        return cols[0] if self.model.n_channels == 1 else stack(cols)

    def get_config(self) -> dict:
        return {"id": self.codec_id, "model": self.model.to_bytes().hex()}


__all__ = ["Codec"]
