"""The generic fallback coding of one column: what a file stores for a channel that QRES's own
coding does not make smaller (random bytes, exact repeats that a predictor cannot see, ...).

Payload of a Fallback block (docs/FORMAT.md): uvarint column, u8 method, u16 check (the CRC-16 of
the column and method bytes and of the decoded column's bytes, continuing the manifest's CRC-16,
as the 16-bit check of a coded block does), then the column's bytes (little-endian, row order)
coded by the method:
  0  stored: the bytes as they are
  1  LZMA2 (xz's coder, raw stream: lc 3, lp 0, pb 2, dictionary the column's size clamped to
     4 KiB..64 MiB, which a decoder knows from the manifest)
  2  a byte delta at the item size (xz's delta filter), then LZMA2 as in 1
A decoder never produces more than rows x item size bytes, whatever a payload claims. The encoder
codes with preset 9 extreme (or preset 1 when it only estimates, on a sample).
"""

from __future__ import annotations

import lzma
from collections.abc import Callable

import numpy as np

from ..errors import QresFormatError
from .varint import Reader, put_uvarint

STORED, LZMA2, DELTA_LZMA2 = 0, 1, 2
METHODS = (STORED, LZMA2, DELTA_LZMA2)
BEST, FAST = 9 | lzma.PRESET_EXTREME, 1  # LZMA2 presets: for what is stored, for estimates


def _filters(method: int, itemsize: int, size: int, preset: int = BEST) -> list[dict]:
    """The xz filter chain of `method` for a column of `size` bytes."""
    lz = {"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": min(max(size, 4096), 64 << 20)}
    return [lz] if method == LZMA2 else [{"id": lzma.FILTER_DELTA, "dist": itemsize}, lz]


def column_bytes(col: np.ndarray) -> bytes:
    """A column's values as little-endian bytes, row order."""
    return np.ascontiguousarray(col, col.dtype.newbyteorder("<")).tobytes()


def encode(col: np.ndarray, methods: tuple[int, ...] = METHODS, preset: int = BEST) -> tuple[int, bytes]:
    """(method, coded bytes) of the smallest of `methods` for a 1-D column (stored always counts)."""
    raw = column_bytes(col)
    best = (STORED, raw)
    for method in methods:
        if method != STORED and raw:
            coded = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_filters(method, col.dtype.itemsize, len(raw), preset))
            if len(coded) < len(best[1]):
                best = (method, coded)
    return best


def _head(column: int, method: int) -> bytes:
    out = bytearray()
    put_uvarint(out, column)
    out.append(method)
    return bytes(out)


def payload(column: int, method: int, coded: bytes, raw: bytes, check: Callable[[bytes], int]) -> bytes:
    """A Fallback block's payload; `raw` is the column's bytes, `check` the CRC-16 continuing the manifest's."""
    head = _head(column, method)
    return head + check(head + raw).to_bytes(2, "little") + coded


def read_column(data: bytes, columns: int) -> tuple[int, int, int, bytes]:
    """(column, method, stored check, coded bytes) of a Fallback block's payload; QresFormatError if malformed."""
    r = Reader(data, what="fallback block")
    column = r.uvarint(columns - 1)
    method = r.u8()
    if method not in METHODS:
        raise r.fail(f"unknown method {method}")
    stored = int.from_bytes(r.take(2), "little")
    return column, method, stored, r.take(r.remaining())


def verify(column: int, method: int, stored: int, values: np.ndarray, check: Callable[[bytes], int], what: str) -> None:
    """QresFormatError unless the decoded column's check matches the stored one."""
    if check(_head(column, method) + column_bytes(values)) != stored:
        raise QresFormatError(f"{what}: the fallback column fails its 16-bit check (damaged data)")


def decode(method: int, coded: bytes, dtype: np.dtype, rows: int, what: str) -> np.ndarray:
    """The column a fallback coding holds: exactly `rows` values of `dtype`, or QresFormatError."""
    size = rows * dtype.itemsize
    if method == STORED:
        raw = coded
    else:
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_filters(method, dtype.itemsize, size))
        try:
            raw = dec.decompress(coded, max_length=size + 1)  # never more than the column can hold, plus one to notice
        except lzma.LZMAError as exc:
            raise QresFormatError(f"{what}: damaged LZMA2 data ({exc})") from None
        if not dec.eof or dec.unused_data:
            raise QresFormatError(f"{what}: LZMA2 data does not end where the column does")
    if len(raw) != size:
        raise QresFormatError(f"{what}: {len(raw)} bytes for {rows} values of {dtype} ({size} bytes)")
    return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)
