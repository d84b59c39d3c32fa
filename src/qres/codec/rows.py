"""Code a block of rows with a model: transforms, patches, the kernel, and back.

The body of both a stream block and a frame is: patches (values the transforms could not map,
stored exactly), then the coded words (rANS words, then raw-bit words stored from the end). The
caller writes the row count and header, and leaves out an empty patch section when its header
says there is none. Patches: uvarint count, then per patch uvarint channel, uvarint row delta (from
the previous patch of any channel, rows ascending then channels), and the value's bits as u64
little-endian.
"""

from __future__ import annotations

import numpy as np

from ..errors import QresFormatError, QresModelMismatch
from . import kernel as K
from .model import Model
from .transform import Transform
from .rans import NSYM
from .varint import Reader, put_uvarint

MAX_BLOCK_VALUES = 1 << 22  # rows x channels a single block may hold (bounds decoder memory)
# The most values one 16-bit coded word can hold: a value costs at least one symbol of probability
# at most (2^15 - 15) / 2^15, i.e. 6.6e-4 bits; a repeated row at least 2.8e-3 bits. A decoder
# refuses row counts beyond this before allocating anything, so a short hostile block cannot claim
# millions of rows.
VALUES_PER_WORD = 24300
MAX_RATIONAL_VALUES = 1 << 16  # values of rational channels one block may rebuild (a frame's worth)
ROWS_PER_WORD = 5700


def to_streams(transforms: list[Transform], columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    """Apply each channel's transform: (z (n, C) int64, lattice slips (n, C), patches as (row, channel, bits))."""
    n, nch = len(columns[0]), len(columns)
    z = None
    slips = np.zeros((n, nch), np.int64)  # calloc'd: costs nothing unless a lattice writes it
    patches: list[tuple[int, int, int]] = []
    for c, t in enumerate(transforms):
        col = columns[c]
        if col.dtype != np.dtype(t.dtype):
            raise ValueError(f"channel {c} has dtype {col.dtype}, the model expects {np.dtype(t.dtype)}")
        zc, pos, bits, sl = t.forward(np.ascontiguousarray(col))
        if nch == 1:
            z = zc.reshape(n, 1)
        else:
            if z is None:
                z = np.empty((n, nch), np.int64)
            z[:, c] = zc
        if t.shift:
            slips[:, c] = sl
        if len(pos):
            patches.extend(zip(pos.tolist(), [c] * len(pos), bits.tolist()))
    patches.sort()
    return z, slips, patches


def write_patches(out: bytearray, patches: list[tuple[int, int, int]]) -> None:
    put_uvarint(out, len(patches))
    prev = 0
    for row, c, bits in patches:
        put_uvarint(out, c)
        put_uvarint(out, row - prev)
        prev = row
        out += int(bits).to_bytes(8, "little")


def read_patches(r: Reader, n: int, nch: int) -> list[tuple[int, int, int]]:
    count = r.uvarint(n * nch)
    if count * 10 > r.remaining() * 10 and count > r.remaining():
        raise r.fail(f"{count} patches cannot fit in {r.remaining()} bytes")
    out = []
    row = 0
    for _ in range(count):
        c = r.uvarint(nch - 1)
        row += r.uvarint(n)
        if row >= n:
            raise r.fail(f"patch row {row} beyond the block's {n} rows")
        out.append((row, c, int.from_bytes(r.take(8), "little")))
    return out


def crc16(data: bytes, start: int = K.CRC16_INIT) -> int:
    """CRC-16/CCITT of `data`, continued from `start` (the coder's 16-bit check; see kernel.encode_block)."""
    return int(K.crc16(np.frombuffer(data, np.uint8), start))


def encode_rows(
    model: Model,
    columns: list[np.ndarray],
    bounds: np.ndarray | None = None,
    streams: tuple | None = None,
    head: tuple[int, int] = (0, 0),
    check: int = K.CRC16_INIT,
) -> tuple[bytes, list[np.ndarray]]:
    """Body bytes (patches + words) for equal-length columns, and the columns a decoder will rebuild.

    `streams` may pass to_streams' result for these columns when the caller has it already;
    `head` = (value, bits) starts the raw-bit stream (a frame's header). The body's 16-bit check
    covers the patch section and the coded words, continuing `check`: the CRC-16 (see `crc16`) of
    what the caller wants covered with them (a stream's manifest and block head).
    """
    nch = len(columns)
    if nch != model.n_channels:
        raise ValueError(f"the model codes {model.n_channels} channels, the values have {nch}")
    n = len(columns[0])
    if n * nch > MAX_BLOCK_VALUES:
        raise ValueError(f"a block holds at most {MAX_BLOCK_VALUES} values")
    z, slips, patches = streams or to_streams([ch.transform for ch in model.channels], columns)
    lossless = bounds is None or not np.any(bounds)
    y = z if lossless else np.empty_like(z)  # lossless: the rebuilt values are the values
    hist = np.zeros((nch, K.NCTX + 2, NSYM), np.int64)
    body = bytearray()
    write_patches(body, patches)
    words = K.encode(z, slips, model.kernel_params(bounds), model.repeat_rows, model.tag, y, hist, *head, crc16(bytes(body), check))
    body += pack_words(words)
    return bytes(body), (list(columns) if lossless else from_streams(model, y, slips, patches))


def pack_words(words: np.ndarray) -> bytes:
    """Coded words as bytes: uint16 little-endian, except that a coder state below 2^24 (its
    high word below 256) takes 3 bytes instead of 4, which the odd length tells a decoder."""
    if words[0] < 256:
        return bytes([int(words[0])]) + words[1:].astype("<u2").tobytes()
    return words.astype("<u2").tobytes()


def unpack_words(data: bytes) -> np.ndarray | None:
    """Inverse of pack_words; None for a non-canonical packing (a short state written in 4 bytes)."""
    if len(data) % 2:
        head = np.array([data[0]], np.uint16)
        if head[0] == 0:
            return None
        return np.concatenate([head, np.frombuffer(data[1:], dtype="<u2").astype(np.uint16)])
    words = np.frombuffer(data, dtype="<u2").astype(np.uint16)
    return None if len(words) and words[0] < 256 else words


def from_streams(model: Model, y: np.ndarray, slips: np.ndarray, patches: list[tuple[int, int, int]]) -> list[np.ndarray]:
    """Inverse transforms of decoded streams y (n, C) with their slips and patches -> one array per channel."""
    cols = []
    for c, ch in enumerate(model.channels):
        pos = np.array([p[0] for p in patches if p[1] == c], np.int64)
        bits = np.array([p[2] for p in patches if p[1] == c], np.uint64)
        cols.append(ch.transform.inverse(np.ascontiguousarray(y[:, c]), pos, bits, slips[:, c], overwrite=True))
    return cols


def stack(columns: list[np.ndarray]) -> np.ndarray:
    """Columns -> (n, C) array of their common dtype."""
    if len(columns) == 1:
        return columns[0].reshape(-1, 1)
    dtype = np.result_type(*[col.dtype for col in columns])
    out = np.empty((len(columns[0]), len(columns)), dtype)
    for c, col in enumerate(columns):
        out[:, c] = col
    return out


def decode_rows(
    model: Model,
    r: Reader,
    n: int,
    bounds: np.ndarray | None = None,
    *,
    what: str = "block",
    names_model: bool = False,
    head_bits: int = 0,
    check: int | None = K.CRC16_INIT,
) -> list[np.ndarray]:
    """Decode n rows from the rest of reader `r` (patches then words, to the end); `check` as the
    encoder's (see encode_rows), or None for a block of array format version 1, whose coder
    checked the model's tag alone.

    Coded words that do not decode raise QresFormatError, or with `names_model` (frames, whose
    coder is all that names their model) QresModelMismatch: such a frame was coded with another
    model, or damaged, and nothing in it can tell the two apart.
    """
    nch = model.n_channels
    if n * nch > MAX_BLOCK_VALUES:
        raise r.fail(f"{n} rows x {nch} channels exceed the {MAX_BLOCK_VALUES}-value block limit")
    averaged = sum(ch.transform.kind == "rational" for ch in model.channels)
    if n * averaged > MAX_RATIONAL_VALUES:  # their values are rebuilt with big-integer arithmetic
        raise r.fail(f"{n} rows of averaged readings exceed the {MAX_RATIONAL_VALUES}-value limit")
    start = r.pos
    patches = read_patches(r, n, nch)
    seed = 0 if check is None else crc16(r.data[start : r.pos], check)
    rest = r.take(r.remaining())
    most = (ROWS_PER_WORD if model.repeat_rows else VALUES_PER_WORD // nch) * (len(rest) // 2 + 2)
    if n > most:
        raise QresFormatError(f"{what}: {n} rows x {nch} channels cannot fit in {len(rest)} bytes of coded data")
    words = unpack_words(rest)
    y = np.zeros((n, nch), np.int64)
    slips = np.zeros((n, nch), np.int64)
    status = -4 if words is None else K.decode_block(words, n, *model.kernel_params(bounds), model.repeat_rows, model.tag, seed, check is not None, y, slips, head_bits)
    if status < 0:
        if names_model:
            raise QresModelMismatch(f"{what}: does not decode with model {model.id} (coded with another model, or damaged)")
        raise QresFormatError(f"{what}: {K.ERRORS[int(status)]}")
    return from_streams(model, y, slips, patches)
