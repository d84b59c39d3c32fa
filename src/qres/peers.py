"""Peer codecs that QRES is benchmarked against (see src/qres/data/README.md for the reference figures).

Every peer measures *bits per value* = 8 * compressed bytes / number of values, and every peer can
decode what it encoded, so a benchmark can check the round trip instead of trusting the size.

Three kinds, matching the three benchmark modes:

* **Lossless stream peers** (`LOSSLESS_PEERS`): one channel at a time, on its exact integers
  (value * 10^d) in the integer view `int_view` gives: int32 when every value fits, else int64.
  That is the convention src/qres/data/README.md's table was measured with (it reproduces every figure there
  to the printed precision); pcodec's `try_conv1` only exists for <= 32-bit types, so on an int64
  channel that peer falls back to pcodec's default configuration, as the README figures did.
* **Stronger lossless peers** (`strong_peers()`, issue #10): bzip2 -9, xz -9e on deltas, ZPAQ -5 and
  PPMd order 6 (raw or deltas: context mixing / PPM, found stronger than those on some channels), FLAC
  (libsndfile via soundfile), Rice (cfitsio's ricecomp) and CCSDS-121 (libaec) via imagecodecs,
  JPEG-LS (CharLS via imagecodecs), Parquet (dictionary or DELTA_BINARY_PACKED, zstd) via pyarrow,
  blosc2 shuffle + bytedelta + zstd, pcodec level 12 with try_lookback / try_consecutive / try_conv1,
  and on a float column's float64 values zstd -19 and pcodec. Each may decline a channel it cannot
  take (`measure` returns None: FLAC beyond 24 bits, JPEG-LS a range beyond 16 bits, Rice, CCSDS-121
  and conv1 beyond int32, float peers on integer columns). `per_channel_best` sums each channel's
  smallest verified size: the figure QRES has to beat.
* **Frame peers** (`FRAME_PEERS`): `fit(train)` on the first part of a channel gives a fitted coder
  with `encode_frame(frame) -> bytes` / `decode_frame(bytes) -> ndarray`; each frame decodes alone
  given the fitted state (a zstd dictionary; nothing for the others).
* **Lossy peers** (`LOSSY_PEERS`): `compress(x, bound)` / `decompress(bytes)` on a float64 channel
  with an absolute error bound; `measure` checks the bound on the decoded values. `QuantInt32Peer`
  quantises to int32 (None when that does not fit) and codes with a stronger lossless peer.

`QresRaasPeer` runs the original QRES package (qres-raas 21.0.0, whose import name `qres` clashes
with this package) in another interpreter named by the QRES_RAAS_PYTHON environment variable.
`pcodec_speed` times pcodec on one core.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import struct
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def bits_per_value(nbytes: int, n_values: int) -> float:
    """8 * compressed bytes / number of values."""
    if n_values <= 0:
        raise ValueError("no values")
    return 8.0 * nbytes / n_values


def int_view(exact_integers: np.ndarray) -> np.ndarray:
    """The integers as the peers store them: int32 if every value fits, else int64 (contiguous)."""
    a = np.asarray(exact_integers)
    if a.dtype.kind not in "iu":
        raise TypeError(f"expected integers, got {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size == 0 or (a.min() >= INT32_MIN and a.max() <= INT32_MAX):
        return np.ascontiguousarray(a, dtype=np.int32)
    return np.ascontiguousarray(a)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except Exception:
        return False
    return True


def _deltas(a: np.ndarray) -> np.ndarray:
    """First value kept, then successive differences (wrapping in the array's own width)."""
    out = np.empty_like(a)
    if a.size:
        out[0] = a[0]
        np.subtract(a[1:], a[:-1], out=out[1:])
    return out


def _undelta(d: np.ndarray) -> np.ndarray:
    return np.cumsum(d, dtype=d.dtype)


@dataclass
class Measure:
    """What one peer did on some values: sizes, bits per value and the checks it passed."""

    nbytes: int
    n_values: int
    bits_per_value: float
    roundtrip_ok: bool | None = None
    max_error: float | None = None  # lossy: max |x - x'|
    bound: float | None = None  # lossy: the absolute bound asked for
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error_ratio(self) -> float | None:
        """Max error / bound (lossy); <= 1 means the bound held."""
        if self.max_error is None or not self.bound:
            return None
        return self.max_error / self.bound

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["error_ratio"] = self.error_ratio
        return d


# --------------------------------------------------------------------------------------------
# Lossless stream peers
# --------------------------------------------------------------------------------------------


class LosslessPeer:
    """Compresses one channel of integers (the `int_view` of its exact integers) on its own."""

    name: str = "?"
    module: str = ""

    def available(self) -> bool:
        return _has(self.module) if self.module else True

    def compress(self, ints: np.ndarray) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def decompress(self, data: bytes, dtype: np.dtype, n: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def measure(self, ints: np.ndarray, *, verify: bool = True) -> Measure:
        ints = np.ascontiguousarray(ints)
        blob = self.compress(ints)
        ok = None
        if verify:
            back = self.decompress(blob, ints.dtype, ints.size)
            ok = bool(back.dtype == ints.dtype and back.shape == ints.shape and np.array_equal(back, ints))
        return Measure(len(blob), ints.size, bits_per_value(len(blob), ints.size), ok)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ZstdPeer(LosslessPeer):
    """zstd at a level on the raw little-endian integer bytes, or on their deltas."""

    module = "zstandard"

    def __init__(self, level: int = 19, deltas: bool = False):
        self.level = level
        self.deltas = deltas
        self.name = f"zstd -{level}" + (" on deltas" if deltas else "")

    def compress(self, ints: np.ndarray) -> bytes:
        import zstandard

        a = _deltas(ints) if self.deltas else ints
        return zstandard.ZstdCompressor(level=self.level).compress(a.astype(a.dtype.newbyteorder("<")).tobytes())

    def decompress(self, data: bytes, dtype: np.dtype, n: int) -> np.ndarray:
        import zstandard

        raw = zstandard.ZstdDecompressor().decompress(data)
        a = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
        return _undelta(a) if self.deltas else a


class XzPeer(LosslessPeer):
    """xz (lzma) -9e on the raw integer bytes."""

    name = "xz -9e"

    def compress(self, ints: np.ndarray) -> bytes:
        return lzma.compress(ints.astype(ints.dtype.newbyteorder("<")).tobytes(), preset=9 | lzma.PRESET_EXTREME)

    def decompress(self, data: bytes, dtype: np.dtype, n: int) -> np.ndarray:
        return np.frombuffer(lzma.decompress(data), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


class PcodecPeer(LosslessPeer):
    """pcodec standalone (`pcodec.standalone.simple_compress`) with one ChunkConfig.

    `config` is a function returning the `pcodec.ChunkConfig` (built lazily so this module imports
    without pcodec). If pcodec refuses the config for a dtype (try_conv1 on 64-bit integers), the
    default config is used instead and `Measure.extra["fallback"]` says so.
    """

    module = "pcodec"

    def __init__(self, name: str, config: Callable[[], Any] | None = None):
        self.name = name
        self._config = config

    def config(self):
        import pcodec

        return self._config() if self._config else pcodec.ChunkConfig()

    def compress_ex(self, ints: np.ndarray) -> tuple[bytes, bool]:
        """(compressed bytes, whether it fell back to the default config)."""
        import pcodec
        from pcodec import standalone

        a = np.ascontiguousarray(ints)
        try:
            return standalone.simple_compress(a, self.config()), False
        except RuntimeError:
            return standalone.simple_compress(a, pcodec.ChunkConfig()), True

    def compress(self, ints: np.ndarray) -> bytes:
        return self.compress_ex(ints)[0]

    def decompress(self, data: bytes, dtype: np.dtype | None = None, n: int | None = None) -> np.ndarray:
        from pcodec import standalone

        out = standalone.simple_decompress(data)
        if out is None:  # an empty array with no dtype recorded
            return np.zeros(0, dtype=dtype or np.int64)
        return out

    def measure(self, ints: np.ndarray, *, verify: bool = True) -> Measure:
        ints = np.ascontiguousarray(ints)
        blob, fell_back = self.compress_ex(ints)
        ok = None
        if verify:
            back = self.decompress(blob, ints.dtype, ints.size)
            ok = bool(back.dtype == ints.dtype and back.shape == ints.shape and np.array_equal(back, ints))
        m = Measure(len(blob), ints.size, bits_per_value(len(blob), ints.size), ok)
        if fell_back:
            m.extra["fallback"] = "default config"
        return m


def _pco_level(level: int):
    def make():
        import pcodec

        return pcodec.ChunkConfig(compression_level=level)

    return make


def _pco_conv1(order: int):
    def make():
        import pcodec

        return pcodec.ChunkConfig(delta_spec=pcodec.DeltaSpec.try_conv1(order))

    return make


def lossless_peers() -> list[LosslessPeer]:
    """The peers of src/qres/data/README.md's table, in its column order (available or not)."""
    return [
        ZstdPeer(19),
        ZstdPeer(19, deltas=True),
        XzPeer(),
        PcodecPeer("pcodec default"),
        PcodecPeer("pcodec level 12", _pco_level(12)),
        PcodecPeer("pcodec try_conv1(8)", _pco_conv1(8)),
    ]


LOSSLESS_PEERS = lossless_peers()

# src/qres/data/README.md's lossless table, for checks and for the report.
README_LOSSLESS: dict[str, dict[str, float]] = {
    "daphnet_accel": {"zstd -19": 8.87, "zstd -19 on deltas": 9.45, "xz -9e": 8.05, "pcodec default": 7.65, "pcodec level 12": 7.61, "pcodec try_conv1(8)": 9.49},
    "heartpy_ppg": {"zstd -19": 9.42, "zstd -19 on deltas": 6.66, "xz -9e": 7.11, "pcodec default": 4.25, "pcodec level 12": 4.24, "pcodec try_conv1(8)": 3.86},
    "seattle_temps": {"zstd -19": 7.80, "zstd -19 on deltas": 3.18, "xz -9e": 5.79, "pcodec default": 4.26, "pcodec level 12": 4.27, "pcodec try_conv1(8)": 3.92},
    "occupancy": {"zstd -19": 25.01, "zstd -19 on deltas": 23.36, "xz -9e": 24.66, "pcodec default": 12.86, "pcodec level 12": 12.21, "pcodec try_conv1(8)": 12.86},
    "waterflow": {"zstd -19": 10.05, "zstd -19 on deltas": 10.39, "xz -9e": 10.17, "pcodec default": 7.91, "pcodec level 12": 7.91, "pcodec try_conv1(8)": 8.45},
    "basicmotions": {"zstd -19": 21.80, "zstd -19 on deltas": 22.64, "xz -9e": 20.12, "pcodec default": 20.94, "pcodec level 12": 20.17, "pcodec try_conv1(8)": 22.98},
    "taylor_electricity": {"zstd -19": 20.98, "zstd -19 on deltas": 18.87, "xz -9e": 16.96, "pcodec default": 11.14, "pcodec level 12": 11.12, "pcodec try_conv1(8)": 10.94},
}
# src/qres/data/README.md's frame figures (best frame peer, bits per value).
README_FRAMES: dict[str, float] = {
    "daphnet_accel": 14.10,
    "heartpy_ppg": 8.65,
    "seattle_temps": 8.79,
    "taylor_electricity": 17.48,
    "basicmotions": 26.20,
}


# --------------------------------------------------------------------------------------------
# Stronger lossless peers (issue #10): each may decline a channel (`accepts` False -> measure None)
# --------------------------------------------------------------------------------------------

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT24_MIN, INT24_MAX = -(2**23), 2**23 - 1


def _fits(a: np.ndarray, lo: int, hi: int) -> bool:
    return a.size == 0 or (int(a.min()) >= lo and int(a.max()) <= hi)


def _le(a: np.ndarray) -> bytes:
    return a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def _from_le(raw: bytes, dtype: np.dtype) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


class StrongPeer(LosslessPeer):
    """A lossless peer that may decline a channel: `accepts(ints)` False makes `measure` return None.

    `measure` returns None (not a crash) when the codec cannot take the channel (FLAC needs values
    within 24 bits, JPEG-LS a range within 16 bits, Rice and CCSDS-121 32-bit integers, ...).
    """

    def accepts(self, ints: np.ndarray) -> bool:
        return ints.size > 0

    def measure(self, ints: np.ndarray, *, verify: bool = True) -> Measure | None:  # type: ignore[override]
        ints = np.ascontiguousarray(ints)
        if not self.accepts(ints):
            return None
        return super().measure(ints, verify=verify)


class Bz2Peer(StrongPeer):
    """bzip2 -9 (Python's bz2) on the raw little-endian integer bytes, or on their deltas."""

    def __init__(self, deltas: bool = False):
        self.deltas = deltas
        self.name = "bzip2 -9" + (" on deltas" if deltas else "")

    def compress(self, ints):
        import bz2

        return bz2.compress(_le(_deltas(ints) if self.deltas else ints), 9)

    def decompress(self, data, dtype, n):
        import bz2

        a = _from_le(bz2.decompress(data), dtype)
        return _undelta(a) if self.deltas else a


class ZpaqPeer(StrongPeer):
    """ZPAQ (libzpaq via the zpaq package) at level 5, one thread, on the raw integer bytes or their deltas."""

    module = "zpaq"

    def __init__(self, deltas: bool = False):
        self.deltas = deltas
        self.name = "zpaq -5" + (" on deltas" if deltas else "")

    def compress(self, ints):
        import zpaq

        return zpaq.compress(_le(_deltas(ints) if self.deltas else ints), 5, threads=1)

    def decompress(self, data, dtype, n):
        import zpaq

        a = _from_le(zpaq.decompress(data), dtype)
        return _undelta(a) if self.deltas else a


class PpmdPeer(StrongPeer):
    """PPMd (variant H, pyppmd) order 6 with 16 MiB of model memory, on the raw integer bytes or their deltas."""

    module = "pyppmd"

    def __init__(self, deltas: bool = False, order: int = 6):
        self.deltas = deltas
        self.order = order
        self.name = f"PPMd order {order}" + (" on deltas" if deltas else "")

    def compress(self, ints):
        import pyppmd

        return pyppmd.compress(_le(_deltas(ints) if self.deltas else ints), max_order=self.order, mem_size=16 << 20)

    def decompress(self, data, dtype, n):
        import pyppmd

        a = _from_le(pyppmd.decompress(data, max_order=self.order, mem_size=16 << 20), dtype)
        return _undelta(a) if self.deltas else a


class XzDeltaPeer(StrongPeer):
    """xz (lzma) -9e on the deltas' little-endian bytes."""

    name = "xz -9e on deltas"

    def compress(self, ints):
        return lzma.compress(_le(_deltas(ints)), preset=9 | lzma.PRESET_EXTREME)

    def decompress(self, data, dtype, n):
        return _undelta(_from_le(lzma.decompress(data), dtype))


class FlacPeer(StrongPeer):
    """FLAC through libsndfile (soundfile), compression level 1.0 (libFLAC's -8), mono.

    Values within 16 bits are written as PCM_16; within 24 bits as PCM_24 (int32 samples shifted
    left 8, as libsndfile takes 24-bit samples from the top of an int32). Wider channels: None.
    """

    name = "FLAC -8 (libsndfile)"
    module = "soundfile"

    def accepts(self, ints):
        return ints.size > 0 and _fits(ints, INT24_MIN, INT24_MAX)

    def compress(self, ints):
        import io

        import soundfile

        bio = io.BytesIO()
        if _fits(ints, INT16_MIN, INT16_MAX):
            soundfile.write(bio, ints.astype(np.int16), 8000, format="FLAC", subtype="PCM_16", compression_level=1.0)
        else:
            soundfile.write(bio, ints.astype(np.int32) << 8, 8000, format="FLAC", subtype="PCM_24", compression_level=1.0)
        return bio.getvalue()

    def decompress(self, data, dtype, n):
        import io

        import soundfile

        with soundfile.SoundFile(io.BytesIO(data)) as f:
            if f.subtype == "PCM_16":
                a = f.read(dtype="int16").astype(dtype)
            else:
                a = (f.read(dtype="int32") >> 8).astype(dtype)
        return a.reshape(-1)


class RicePeer(StrongPeer):
    """Rice coding of FITS (cfitsio's ricecomp, via imagecodecs.rcomp_encode) on int32 channels.

    The stream has no header: the decoder is told n and the dtype, as a FITS tile header would.
    """

    name = "Rice (imagecodecs rcomp)"
    module = "imagecodecs"

    def accepts(self, ints):
        return ints.size > 0 and ints.dtype == np.int32

    def compress(self, ints):
        import imagecodecs

        return bytes(imagecodecs.rcomp_encode(np.ascontiguousarray(ints, dtype=np.int32)))

    def decompress(self, data, dtype, n):
        import imagecodecs

        return np.asarray(imagecodecs.rcomp_decode(data, shape=(n,), dtype=np.int32)).astype(dtype).reshape(-1)


AEC_BLOCK_SIZES = (8, 16, 32, 64)


class AecPeer(StrongPeer):
    """CCSDS-121 (libaec via imagecodecs.aec_encode): signed samples, the standard's unit-delay
    preprocessor, the narrowest of 8/16/32 bits per sample that holds the values, the best of block
    sizes 8/16/32/64 (one header byte says which). int32 channels only."""

    name = "CCSDS-121 (libaec)"
    module = "imagecodecs"

    def accepts(self, ints):
        return ints.size > 0 and ints.dtype == np.int32

    @staticmethod
    def _flags():
        import imagecodecs

        return imagecodecs.AEC.FLAG.DATA_SIGNED | imagecodecs.AEC.FLAG.DATA_PREPROCESS

    @staticmethod
    def _width(ints):
        if _fits(ints, -128, 127):
            return 8, np.int8
        if _fits(ints, INT16_MIN, INT16_MAX):
            return 16, np.int16
        return 32, np.int32

    def compress(self, ints):
        import imagecodecs

        bps, dt = self._width(ints)
        a = np.ascontiguousarray(ints, dtype=dt)
        best = None
        for i, bs in enumerate(AEC_BLOCK_SIZES):
            blob = bytes(imagecodecs.aec_encode(a, bitspersample=bps, flags=self._flags(), blocksize=bs))
            if best is None or len(blob) < len(best) - 1:
                best = bytes([i * 4 + bps // 8 - (1 if bps == 32 else 0)]) + blob
        return best

    def decompress(self, data, dtype, n):
        import imagecodecs

        bs = AEC_BLOCK_SIZES[data[0] // 4]
        bps = {1: 8, 2: 16, 3: 32}[data[0] % 4]
        dt = {8: np.int8, 16: np.int16, 32: np.int32}[bps]
        size = n * np.dtype(dt).itemsize
        raw = imagecodecs.aec_decode(data[1:], bitspersample=bps, flags=self._flags(), blocksize=bs, out=size + 64)
        return np.frombuffer(raw, dtype=dt)[:n].astype(dtype)


class JpeglsPeer(StrongPeer):
    """JPEG-LS (CharLS via imagecodecs.jpegls_encode), lossless, on the channel minus its minimum
    as an (n, 1) image of uint8 or uint16 (8 bytes of the minimum first). Channels whose range
    exceeds 16 bits: None."""

    name = "JPEG-LS (CharLS)"
    module = "imagecodecs"

    def accepts(self, ints):
        return ints.size > 0 and int(ints.max()) - int(ints.min()) <= 0xFFFF

    def compress(self, ints):
        import imagecodecs

        lo = int(ints.min())
        u = ints.astype(np.int64) - lo
        u = u.astype(np.uint8 if int(u.max()) <= 0xFF else np.uint16)
        return struct.pack("<q", lo) + bytes(imagecodecs.jpegls_encode(u.reshape(-1, 1)))

    def decompress(self, data, dtype, n):
        import imagecodecs

        (lo,) = struct.unpack("<q", data[:8])
        u = np.asarray(imagecodecs.jpegls_decode(data[8:])).reshape(-1)
        return (u.astype(np.int64) + lo).astype(dtype)


class ParquetPeer(StrongPeer):
    """A one-column Parquet file (pyarrow) with zstd -19: dictionary encoding, or DELTA_BINARY_PACKED."""

    module = "pyarrow"

    def __init__(self, encoding: str = "dictionary"):
        self.encoding = encoding
        self.name = f"parquet {encoding} + zstd -19"

    def compress(self, ints):
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"x": ints})
        bio = io.BytesIO()
        kw: dict[str, Any] = {"use_dictionary": True} if self.encoding == "dictionary" else {"use_dictionary": False, "column_encoding": {"x": "DELTA_BINARY_PACKED"}}
        pq.write_table(table, bio, compression="zstd", compression_level=19, write_statistics=False, **kw)
        return bio.getvalue()

    def decompress(self, data, dtype, n):
        import io

        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).column("x").to_numpy().astype(dtype)


class Blosc2Peer(StrongPeer):
    """blosc2 with the bytedelta filter after byte shuffle, zstd at clevel 9 (blosc2.compress2)."""

    module = "blosc2"
    name = "blosc2 shuffle+bytedelta zstd -9"

    def compress(self, ints):
        import blosc2

        return bytes(blosc2.compress2(np.ascontiguousarray(ints), typesize=ints.itemsize, clevel=9, codec=blosc2.Codec.ZSTD,
                                      filters=[blosc2.Filter.SHUFFLE, blosc2.Filter.BYTEDELTA], filters_meta=[0, 0]))

    def decompress(self, data, dtype, n):
        import blosc2

        return np.frombuffer(blosc2.decompress2(data), dtype=dtype).copy()


class StrictPcodecPeer(StrongPeer):
    """pcodec standalone with a ChunkConfig and no fallback: a config pcodec refuses for a channel
    (try_conv1 on 64-bit integers) makes the measure None."""

    module = "pcodec"

    def __init__(self, name: str, config: Callable[[], Any]):
        self.name = name
        self._config = config

    def accepts(self, ints):
        if ints.size == 0:
            return False
        try:
            self.compress(ints)
        except RuntimeError:
            return False
        return True

    def compress(self, ints):
        from pcodec import standalone

        return standalone.simple_compress(np.ascontiguousarray(ints), self._config())

    def decompress(self, data, dtype, n):
        from pcodec import standalone

        return standalone.simple_decompress(data)


def _pco(level: int = 12, delta: str | None = None, arg: int | None = None):
    def make():
        import pcodec

        if delta is None:
            return pcodec.ChunkConfig(compression_level=level)
        spec = getattr(pcodec.DeltaSpec, delta)
        return pcodec.ChunkConfig(compression_level=level, delta_spec=spec() if arg is None else spec(arg))

    return make


class FloatPeer(StrongPeer):
    """A peer on a float column's raw float64 values (not its integers); checked bit for bit.

    `on_floats` tells the benchmark to hand it the float64 values; integer columns (d == 0) are
    given as integers and declined.
    """

    on_floats = True

    def accepts(self, x):
        return x.size > 0 and x.dtype == np.float64

    def measure(self, x, *, verify=True):
        x = np.ascontiguousarray(x)
        if not self.accepts(x):
            return None
        blob = self.compress(x)
        ok = None
        if verify:
            back = self.decompress(blob, x.dtype, x.size)
            ok = bool(back.dtype == x.dtype and back.shape == x.shape and back.tobytes() == x.tobytes())
        return Measure(len(blob), x.size, bits_per_value(len(blob), x.size), ok)


class ZstdFloatPeer(FloatPeer):
    """zstd -19 on the float64 column's raw little-endian bytes."""

    module = "zstandard"
    name = "zstd -19 on float64 bytes"

    def compress(self, x):
        import zstandard

        return zstandard.ZstdCompressor(level=19).compress(_le(x))

    def decompress(self, data, dtype, n):
        import zstandard

        return _from_le(zstandard.ZstdDecompressor().decompress(data), dtype)


class PcodecFloatPeer(FloatPeer):
    """pcodec level 12 on the float64 column itself (its float-multiplier mode finds decimal grids)."""

    module = "pcodec"
    name = "pcodec level 12 on float64"

    def compress(self, x):
        from pcodec import standalone

        return standalone.simple_compress(x, _pco(12)())

    def decompress(self, data, dtype, n):
        from pcodec import standalone

        return standalone.simple_decompress(data)


def strong_peers() -> list[LosslessPeer]:
    """The stronger peers of issue #10 (beside `lossless_peers`); each may decline a channel."""
    return [
        Bz2Peer(),
        Bz2Peer(deltas=True),
        XzDeltaPeer(),
        ZpaqPeer(),
        ZpaqPeer(deltas=True),
        PpmdPeer(),
        PpmdPeer(deltas=True),
        FlacPeer(),
        RicePeer(),
        AecPeer(),
        JpeglsPeer(),
        ParquetPeer("dictionary"),
        ParquetPeer("DELTA_BINARY_PACKED"),
        Blosc2Peer(),
        StrictPcodecPeer("pcodec level 12 try_lookback", _pco(12, "try_lookback")),
        StrictPcodecPeer("pcodec level 12 try_consecutive(1)", _pco(12, "try_consecutive", 1)),
        StrictPcodecPeer("pcodec level 12 try_consecutive(2)", _pco(12, "try_consecutive", 2)),
        StrictPcodecPeer("pcodec level 12 try_conv1(4)", _pco(12, "try_conv1", 4)),
        StrictPcodecPeer("pcodec level 12 try_conv1(8)", _pco(12, "try_conv1", 8)),
        StrictPcodecPeer("pcodec level 12 try_conv1(16)", _pco(12, "try_conv1", 16)),
        ZstdFloatPeer(),
        PcodecFloatPeer(),
    ]


def per_channel_best(sizes: dict[str, dict[str, int | None]], ok: dict[str, dict[str, bool | None]] | None = None) -> tuple[int | None, dict[str, str | None]]:
    """Each channel's smallest verified size, summed: (total bytes, {channel: winning peer}).

    `sizes[channel][peer]` is a peer's size for a channel, None where the peer declined it;
    `ok[channel][peer]` False drops a size whose round trip failed. None when a channel has no size.
    """
    total = 0
    missing = False
    winners: dict[str, str | None] = {}
    for ch, by_peer in sizes.items():
        good = [(s, p) for p, s in by_peer.items() if s is not None and (ok is None or ok.get(ch, {}).get(p) is not False)]
        if not good:
            winners[ch] = None
            missing = True
            continue
        s, p = min(good)
        total += s
        winners[ch] = p
    return (None if missing else total), winners


# --------------------------------------------------------------------------------------------
# Frame peers
# --------------------------------------------------------------------------------------------

FRAME_SIZE = 64
TRAIN_FRACTION = 0.2
DICT_SIZE = 4096


def split_train(n: int, train_fraction: float = TRAIN_FRACTION) -> int:
    """Index where the measured part starts: int(train_fraction * n) (src/qres/data/README.md's split)."""
    return int(train_fraction * n)


def frames_of(a: np.ndarray, frame: int = FRAME_SIZE, *, whole_only: bool = True) -> list[np.ndarray]:
    """Consecutive `frame`-sample slices of `a` (along axis 0); a short tail is dropped if whole_only.

    src/qres/data/README.md's frame figures count whole frames only (they reproduce exactly that way).
    """
    out = [a[i : i + frame] for i in range(0, len(a), frame)]
    if whole_only and out and len(out[-1]) < frame:
        out.pop()
    return out


class FittedFrameCoder:
    """A frame peer after `fit`: encodes and decodes frames alone given its shared state."""

    def __init__(self, encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray], state_bytes: int = 0):
        self._encode = encode
        self._decode = decode
        self.state_bytes = state_bytes  # size of the state shared in advance (not counted per frame)

    def encode_frame(self, frame: np.ndarray) -> bytes:
        return self._encode(np.ascontiguousarray(frame))

    def decode_frame(self, data: bytes) -> np.ndarray:
        return self._decode(data)


class FramePeer:
    """Frames of one channel's integers; `fit(train)` gets the state shared in advance."""

    name: str = "?"
    module: str = ""

    def available(self) -> bool:
        return _has(self.module) if self.module else True

    def fit(self, train: np.ndarray, dtype: np.dtype | None = None) -> FittedFrameCoder:  # pragma: no cover
        raise NotImplementedError

    def measure(
        self,
        ints: np.ndarray,
        *,
        frame: int = FRAME_SIZE,
        train_fraction: float = TRAIN_FRACTION,
        verify: bool = True,
    ) -> Measure:
        """Fit on the first `train_fraction` of `ints`, encode every whole frame of the rest."""
        ints = np.ascontiguousarray(ints)
        cut = split_train(len(ints), train_fraction)
        coder = self.fit(ints[:cut], ints.dtype)
        nbytes = n = 0
        ok = True
        frames = frames_of(ints[cut:], frame)
        for f in frames:
            blob = coder.encode_frame(f)
            nbytes += len(blob)
            n += len(f)
            if verify:
                back = coder.decode_frame(blob)
                ok = ok and bool(back.dtype == f.dtype and np.array_equal(back, f))
        if n == 0:
            raise ValueError(f"no whole {frame}-value frame after the first {cut} values")
        return Measure(nbytes, n, bits_per_value(nbytes, n), ok if verify else None, extra={"frames": len(frames), "state_bytes": coder.state_bytes})


class ZstdFramePeer(FramePeer):
    """zstd -19 on each frame alone (raw bytes), no shared state but the dtype."""

    module = "zstandard"

    def __init__(self, level: int = 19):
        self.level = level
        self.name = f"zstd -{level}"

    def fit(self, train, dtype=None):
        import zstandard

        dt = np.dtype(dtype or train.dtype)
        c = zstandard.ZstdCompressor(level=self.level)
        d = zstandard.ZstdDecompressor()
        return FittedFrameCoder(lambda f: c.compress(f.tobytes()), lambda b: np.frombuffer(d.decompress(b), dt).copy())


class ZstdDictFramePeer(FramePeer):
    """zstd -19 with a 4 KiB dictionary trained (`zstandard.train_dictionary`) on the training part.

    The training samples are the frames of the training part (raw bytes or deltas within each
    frame). Training fails when the part is too small (a few frames): `fit` raises ValueError.
    """

    module = "zstandard"

    def __init__(self, level: int = 19, deltas: bool = False, dict_size: int = DICT_SIZE, frame: int = FRAME_SIZE):
        self.level = level
        self.deltas = deltas
        self.dict_size = dict_size
        self.frame = frame
        self.name = f"zstd -{level} + {dict_size // 1024} KiB dict" + (" (deltas)" if deltas else " (raw)")

    def fit(self, train, dtype=None):
        import zstandard

        dt = np.dtype(dtype or train.dtype)
        train = np.ascontiguousarray(train, dtype=dt)
        prep = _deltas if self.deltas else (lambda a: a)
        samples = [prep(f).tobytes() for f in frames_of(train, self.frame, whole_only=False)]
        try:
            zd = zstandard.train_dictionary(self.dict_size, samples)
        except zstandard.ZstdError as e:
            raise ValueError(f"cannot train a zstd dictionary on {len(train)} values: {e}") from e
        c = zstandard.ZstdCompressor(level=self.level, dict_data=zd)
        d = zstandard.ZstdDecompressor(dict_data=zd)

        def enc(f):
            return c.compress(prep(f).tobytes())

        def dec(b):
            a = np.frombuffer(d.decompress(b), dt).copy()
            return _undelta(a) if self.deltas else a

        return FittedFrameCoder(enc, dec, state_bytes=len(zd.as_bytes()))


class PcodecFramePeer(FramePeer):
    """pcodec standalone (default config) on each frame alone."""

    module = "pcodec"
    name = "pcodec"

    def fit(self, train, dtype=None):
        import pcodec
        from pcodec import standalone

        dt = np.dtype(dtype or train.dtype)

        def enc(f):
            return standalone.simple_compress(np.ascontiguousarray(f, dtype=dt), pcodec.ChunkConfig())

        def dec(b):
            out = standalone.simple_decompress(b)
            return np.zeros(0, dt) if out is None else out

        return FittedFrameCoder(enc, dec)


class StreamFramePeer(FramePeer):
    """A header-light stream peer (Rice, CCSDS-121) on each frame alone; the decoder knows the frame
    length and dtype (the shared state). A frame the peer declines raises ValueError."""

    def __init__(self, inner: StrongPeer):
        self.inner = inner
        self.name = inner.name
        self.module = inner.module

    def fit(self, train, dtype=None):
        dt = np.dtype(dtype or train.dtype)
        inner = self.inner
        lengths: dict[int, int] = {}

        def enc(f):
            f = np.ascontiguousarray(f, dtype=dt)
            if not inner.accepts(f):
                raise ValueError(f"{inner.name} cannot take {dt} values in [{f.min()}, {f.max()}]")
            blob = inner.compress(f)
            lengths[id(blob)] = len(f)
            return blob

        def dec(b):
            return inner.decompress(b, dt, lengths.pop(id(b), FRAME_SIZE))

        return FittedFrameCoder(enc, dec)


def frame_peers() -> list[FramePeer]:
    return [ZstdFramePeer(19), ZstdDictFramePeer(19, deltas=False), ZstdDictFramePeer(19, deltas=True), PcodecFramePeer(),
            StreamFramePeer(RicePeer()), StreamFramePeer(AecPeer())]


FRAME_PEERS = frame_peers()


# --------------------------------------------------------------------------------------------
# Lossy peers
# --------------------------------------------------------------------------------------------


def max_abs_error(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        return math.inf
    return float(np.max(np.abs(x - y))) if x.size else 0.0


class LossyPeer:
    """Compresses one float64 channel so every decoded value is within an absolute `bound`."""

    name: str = "?"
    module: str = ""

    def available(self) -> bool:
        return _has(self.module) if self.module else True

    def compress(self, x: np.ndarray, bound: float) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def decompress(self, data: bytes, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def measure(self, x: np.ndarray, bound: float) -> Measure:
        x = np.ascontiguousarray(x, dtype=np.float64)
        blob = self.compress(x, bound)
        back = self.decompress(blob, x.size)
        err = max_abs_error(x, back)
        return Measure(len(blob), x.size, bits_per_value(len(blob), x.size), err <= bound, max_error=err, bound=bound)


class Sz3Peer(LossyPeer):
    """SZ3 (pysz) on the float64 values, absolute error bound mode, default algorithm."""

    name = "SZ3"
    module = "pysz"

    def compress(self, x, bound):
        import pysz

        if not bound > 0:
            raise ValueError("SZ3 needs a positive bound")
        cfg = pysz.szConfig()
        cfg.errorBoundMode = pysz.szErrorBoundMode.ABS
        cfg.absErrorBound = float(bound)
        comp, _ratio = pysz.sz.compress(np.ascontiguousarray(x, dtype=np.float64), cfg)
        return comp.tobytes()

    def decompress(self, data, n):
        import pysz

        out, _cfg = pysz.sz.decompress(np.frombuffer(data, dtype=np.uint8).copy(), np.float64, (n,))
        return out


class QuantPcodecPeer(LossyPeer):
    """Uniform quantisation then pcodec: q = round(x / step) with step = 2 * bound, x' = q * step.

    The stream is 8 bytes of step (float64) then pcodec's standalone bytes of q (int32 if it fits,
    else int64). Floating rounding can put |x - x'| a hair over the bound at a half-step; then the
    step is shrunk by a relative 2^-44, 2^-40, ... until the bound holds (`last_shrink` records it;
    on the bundled data it has never been needed).
    """

    name = "quantise + pcodec"
    module = "pcodec"

    def __init__(self):
        self.last_shrink = 0.0

    def quantise(self, x: np.ndarray, bound: float) -> tuple[np.ndarray, float]:
        if not bound > 0:
            raise ValueError("quantisation needs a positive bound")
        x = np.asarray(x, dtype=np.float64)
        for shrink in (0.0, 2.0**-44, 2.0**-40, 2.0**-36, 2.0**-32, 2.0**-28, 2.0**-24, 2.0**-20):
            step = 2.0 * bound * (1.0 - shrink)
            q = np.round(x / step)
            if x.size and np.max(np.abs(q)) >= 2**62:
                raise ValueError("bound too small for the values' range")
            if max_abs_error(x, q * step) <= bound:
                self.last_shrink = shrink
                return q.astype(np.int64), step
        raise ArithmeticError("could not meet the bound by quantisation")

    def compress(self, x, bound):
        import pcodec
        from pcodec import standalone

        q, step = self.quantise(x, bound)
        return struct.pack("<d", step) + standalone.simple_compress(int_view(q), pcodec.ChunkConfig())

    def decompress(self, data, n):
        from pcodec import standalone

        (step,) = struct.unpack("<d", data[:8])
        q = standalone.simple_decompress(data[8:])
        if q is None:
            return np.zeros(0)
        return q.astype(np.float64) * step

    def measure(self, x, bound):
        m = super().measure(x, bound)
        m.extra["step_shrink"] = self.last_shrink
        return m


class QuantInt32Peer(LossyPeer):
    """Quantisation as `QuantPcodecPeer` (q = round(x / 2e)), then q as int32 through a lossless
    integer peer (pcodec level 12 and its delta specs, FLAC, CCSDS-121, ...): 8 bytes of step, then
    the inner peer's bytes. None when q does not fit int32 or the inner peer declines it."""

    def __init__(self, inner: StrongPeer):
        self.inner = inner
        self.module = inner.module
        self.name = f"quantise to int32 + {inner.name}"
        self._q = QuantPcodecPeer()

    def compress(self, x, bound):
        q, step = self._q.quantise(x, bound)
        if not _fits(q, INT32_MIN, INT32_MAX) or not self.inner.accepts(q.astype(np.int32)):
            raise ValueError(f"{self.inner.name} cannot take the quantised values")
        return struct.pack("<d", step) + self.inner.compress(np.ascontiguousarray(q, dtype=np.int32))

    def decompress(self, data, n):
        (step,) = struct.unpack("<d", data[:8])
        return self.inner.decompress(data[8:], np.int32, n).astype(np.float64) * step

    def measure(self, x, bound):
        x = np.ascontiguousarray(x, dtype=np.float64)
        q, _ = self._q.quantise(x, bound)
        if not (q.size and _fits(q, INT32_MIN, INT32_MAX) and self.inner.accepts(q.astype(np.int32))):
            return None
        m = super().measure(x, bound)
        m.extra["step_shrink"] = self._q.last_shrink
        return m


def lossy_peers() -> list[LossyPeer]:
    return [Sz3Peer(), QuantPcodecPeer()] + [QuantInt32Peer(p) for p in _lossy_inner()]


def _lossy_inner() -> list[StrongPeer]:
    return [
        StrictPcodecPeer("pcodec level 12", _pco(12)),
        StrictPcodecPeer("pcodec level 12 try_consecutive(2)", _pco(12, "try_consecutive", 2)),
        StrictPcodecPeer("pcodec level 12 try_conv1(8)", _pco(12, "try_conv1", 8)),
        FlacPeer(),
        AecPeer(),
        XzDeltaPeer(),
    ]


LOSSY_PEERS = lossy_peers()


# --------------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------------


class one_core:
    """Context manager pinning this process to one CPU (where the OS allows it), then restoring."""

    def __enter__(self):
        self.saved = None
        if hasattr(os, "sched_getaffinity"):
            try:
                self.saved = os.sched_getaffinity(0)
                os.sched_setaffinity(0, {min(self.saved)})
            except OSError:
                self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.sched_setaffinity(0, self.saved)
        return False


def best_time(fn: Callable[[], Any], repeats: int = 5, min_time: float = 0.0) -> float:
    """Best wall time (time.perf_counter) of `repeats` calls of fn (at least one call)."""
    best = math.inf
    start = time.perf_counter()
    i = 0
    while i < max(1, repeats) or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        i += 1
    return best


def pcodec_speed(x: np.ndarray, *, repeats: int = 5, config: Any = None, pin: bool = True) -> dict[str, float]:
    """pcodec standalone encode/decode speed on int32 `x`, in MB/s counting 4 bytes per sample.

    Best of `repeats` runs each way, on one core when `pin`. Also bits per value.
    """
    import pcodec
    from pcodec import standalone

    a = np.ascontiguousarray(x, dtype=np.int32)
    cfg = config if config is not None else pcodec.ChunkConfig()
    mb = 4 * a.size / 1e6
    with one_core() if pin else _null():
        blob = standalone.simple_compress(a, cfg)
        t_enc = best_time(lambda: standalone.simple_compress(a, cfg), repeats)
        back = standalone.simple_decompress(blob)
        t_dec = best_time(lambda: standalone.simple_decompress(blob), repeats)
    if not np.array_equal(back, a):
        raise AssertionError("pcodec round trip failed")
    return {
        "encode_MBps": mb / t_enc,
        "decode_MBps": mb / t_dec,
        "encode_s": t_enc,
        "decode_s": t_dec,
        "bits_per_value": bits_per_value(len(blob), a.size),
        "samples": int(a.size),
    }


def pcodec_frame_speed(x: np.ndarray, *, frame: int = FRAME_SIZE, repeats: int = 3, pin: bool = True) -> dict[str, float]:
    """pcodec per-frame encode/decode rate (frames/s) on the whole frames of int32 `x`."""
    coder = PcodecFramePeer().fit(np.zeros(0, np.int32), np.int32)
    frames = frames_of(np.ascontiguousarray(x, dtype=np.int32), frame)
    with one_core() if pin else _null():
        blobs = [coder.encode_frame(f) for f in frames]
        t_enc = best_time(lambda: [coder.encode_frame(f) for f in frames], repeats)
        t_dec = best_time(lambda: [coder.decode_frame(b) for b in blobs], repeats)
    return {"encode_frames_per_s": len(frames) / t_enc, "decode_frames_per_s": len(frames) / t_dec, "frames": len(frames)}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------------------------
# qres-raas (the original QRES package), in another interpreter
# --------------------------------------------------------------------------------------------

_RAAS_SCRIPT = r"""
import json, sys, time
import numpy as np
import qres  # qres-raas 21.0.0
src, predictor, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
arrays = np.load(src)
out = {"version": getattr(qres, "__version__", "?"), "channels": {}}
for key in arrays.files:
    a = np.ascontiguousarray(arrays[key])
    raw = a.tobytes()
    best, blob, error = float("inf"), None, None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        try:
            blob = qres.compress(raw, predictor)
        except Exception as e:  # qres-raas raises "Expansion detected" when it would not shrink
            error = str(e)
        best = min(best, time.perf_counter() - t0)
    rec = {"n": int(a.size), "itemsize": int(a.itemsize), "ms_per_call": best * 1e3}
    if blob is None:
        rec.update(status="failed", error=error, nbytes=None, roundtrip_ok=None)
    else:
        t0 = time.perf_counter()
        back = qres.decompress(blob, predictor)
        rec["decode_ms"] = (time.perf_counter() - t0) * 1e3
        ok = bytes(back) == raw
        rec.update(status="compressed", nbytes=len(blob), roundtrip_ok=ok)
    out["channels"][key] = rec
print(json.dumps(out))
"""


class QresRaasPeer(LosslessPeer):
    """The original QRES package (qres-raas 21.0.0): `qres.compress(bytes, predictor_id)`.

    It works on bytes, so it gets the channel's `int_view` bytes. When it raises (qres-raas says
    "CompressionError: Expansion detected" on almost every channel) a user has to store the values
    raw, so the measure counts the raw size (itemsize * 8 bits per value) and says so in
    `extra["status"] == "stored raw"`. Runs in the interpreter named by QRES_RAAS_PYTHON (its
    import name `qres` clashes with this package); unavailable when that is not set.
    """

    name = "qres-raas 21.0.0"
    env_var = "QRES_RAAS_PYTHON"

    def __init__(self, python: str | None = None, predictor_id: int = 0, repeats: int = 3, timeout: float = 300.0):
        self._python = python
        self.predictor_id = predictor_id
        self.repeats = repeats
        self.timeout = timeout
        self._available: bool | None = None
        self._available_for: str | None = None

    @property
    def python(self) -> str | None:
        return self._python or os.environ.get(self.env_var) or None

    def available(self) -> bool:
        py = self.python
        if not py:
            return False
        if self._available is None or self._available_for != py:
            self._available_for = py
            try:
                r = subprocess.run(
                    [py, "-c", "import qres, sys; sys.exit(0 if hasattr(qres, 'QRES') and hasattr(qres, 'compress') else 3)"],
                    capture_output=True,
                    timeout=120,
                    cwd=tempfile.gettempdir(),
                )
                self._available = r.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                self._available = False
        return self._available

    def run(self, channels: dict[str, np.ndarray]) -> dict[str, Any]:
        """Run qres-raas on several named integer channels in one subprocess; its JSON answer."""
        py = self.python
        if not py:
            raise RuntimeError(f"{self.env_var} is not set")
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "channels.npz"
            np.savez(src, **{k: np.ascontiguousarray(v) for k, v in channels.items()})
            script = Path(tmp) / "raas_measure.py"
            script.write_text(_RAAS_SCRIPT)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            r = subprocess.run(
                [py, str(script), str(src), str(self.predictor_id), str(self.repeats)],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                cwd=tmp,  # so this package's `qres` is never on that interpreter's path
                env=env,
            )
        if r.returncode != 0:
            raise RuntimeError(f"qres-raas subprocess failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
        # qres-raas prints debug lines ("DEBUG: Running Optimized Encoder"); the JSON is the last line.
        return json.loads(r.stdout.strip().splitlines()[-1])

    @staticmethod
    def to_measure(rec: dict[str, Any]) -> Measure:
        n = rec["n"]
        if rec["status"] == "compressed":
            m = Measure(rec["nbytes"], n, bits_per_value(rec["nbytes"], n), rec["roundtrip_ok"])
            m.extra["status"] = "compressed"
        else:
            raw = n * rec["itemsize"]
            m = Measure(raw, n, bits_per_value(raw, n), True)
            m.extra["status"] = "stored raw"
            m.extra["error"] = rec.get("error")
        m.extra["ms_per_call"] = rec["ms_per_call"]
        return m

    def measure_many(self, channels: dict[str, np.ndarray]) -> dict[str, Measure]:
        out = self.run(channels)
        return {k: self.to_measure(rec) for k, rec in out["channels"].items()}

    def measure(self, ints: np.ndarray, *, verify: bool = True) -> Measure:
        return self.measure_many({"x": np.ascontiguousarray(ints)})["x"]


def available(peers: Sequence[Any]) -> list[Any]:
    """The peers of `peers` whose packages import here."""
    return [p for p in peers if p.available()]
