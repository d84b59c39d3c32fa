"""The model ("gene"): everything encoder and decoder must share to code a set of channels.

Per channel: the transform to integers, the predictor, and the entropy coder's settings; optionally
trained CDF tables, so that a short frame starts from learned statistics instead of a flat prior.
`Model.to_bytes()` is the gene the swarm exchanges and stores; `Model.id` is a stable hash of it.

Gene layout (all integers LEB128 varints unless noted):
  b"QG", version u8 (=1), channel count, flags u8 (bit 0: rows may repeat, bit 1: tables present)
  per channel: u8 dtype code | kind << 4 | lattice << 7,
               decimals (signed), offset (signed), step, [if rational: digits u8],
               [if lattice: u8 shift | complete slip table << 7, slip count, then (index delta, signed slip) pairs],
               predictor id u8, predictor bytes, u8 shift | rate << 4, u8 merge | energy speed << 4,
               energy0, level energy
  if tables: per channel a u32 mask of the contexts stored, then per stored context NSYM-1
             frequencies (the last one is 2^15 minus their sum)
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import QresFormatError
from . import kernel as K
from .predictor import MAX_WARM, PREDICTORS, LinearPredictor, fit_linear
from .rans import CDF_ONE, NSYM, initial_cdf
from .transform import Transform, fit_transform
from .varint import Reader, put_svarint, put_uvarint

def prior_tables(shift: int) -> np.ndarray:
    """Starting CDFs of one channel: NCTX value contexts, then the two slip rows (peaked at no slip)."""
    out = np.empty((K.NCTX + 2, NSYM + 1), np.int32)
    out[: K.NCTX] = initial_cdf(K.NCTX, shift)
    out[K.NCTX :] = initial_cdf(2, 0)
    # slip symbols are 0..2*SLIP_SPAN with SLIP_SPAN meaning "as the table says": move token 0's mass there
    freq = np.diff(out[K.NCTX])
    freq[0], freq[K.SLIP_SPAN] = freq[K.SLIP_SPAN], freq[0]
    out[K.NCTX :, 1:] = np.cumsum(freq)
    return out


GENE_MAGIC = b"QG"
GENE_VERSION = 1
MAX_CHANNELS = 4096
DTYPES = ("<i1", "<i2", "<i4", "<i8", "|u1", "<u1", "<u2", "<u4", "<u8", "<f4", "<f8", "|i1")
_KINDS = ("int", "decimal", "bits", "binary", "rational")
SHIFTS = (2, 3, 4)
RATES = (4, 5, 6)
ESPEEDS = (0, 1, 2)
SMALL_STREAM = 1 << 14  # streams this short afford a wider search of the entropy settings
SHIFTS_SMALL = (1, 2, 3, 4, 5)
RATES_SMALL = (3, 4, 5, 6, 7)
TRIAL_WINDOW = 4096
TRAINED_SEEN = 1 << 12  # trained tables start as settled contexts


@dataclass(frozen=True)
class ChannelModel:
    """One channel's share of a model (see module doc); energies are in units of 1/16 of |residual|."""

    transform: Transform
    predictor: LinearPredictor
    shift: int = 3
    rate: int = 5
    energy0: int = 0
    level_energy: int = 0
    merge: int = 0
    espeed: int = 1


def _dtype_code(dtype: str) -> int:
    return DTYPES.index(np.dtype(dtype).str)


class Model:
    """A fitted model for arrays of a fixed number of channels. Immutable; compare by `id`."""

    def __init__(self, channels: tuple[ChannelModel, ...], *, repeat_rows: bool = False, tables: np.ndarray | None = None):
        if not 1 <= len(channels) <= MAX_CHANNELS:
            raise ValueError(f"a model has 1..{MAX_CHANNELS} channels, got {len(channels)}")
        self.channels = tuple(channels)
        self.repeat_rows = bool(repeat_rows)
        self.tables = tables

    # -- identity ---------------------------------------------------------------------------
    @cached_property
    def _bytes(self) -> bytes:
        out = bytearray(GENE_MAGIC)
        out.append(GENE_VERSION)
        put_uvarint(out, len(self.channels))
        out.append(int(self.repeat_rows) | (2 if self.tables is not None else 0))
        for ch in self.channels:
            t = ch.transform
            # dtype (4 bits), kind (3 bits), lattice (1 bit)
            out.append(_dtype_code(t.dtype) | _KINDS.index(t.kind) << 4 | bool(t.shift) << 7)
            put_svarint(out, t.decimals)
            put_svarint(out, t.offset if t.offset < 2**63 else t.offset - 2**64)
            put_uvarint(out, t.step)
            if t.kind == "rational":
                out.append(t.digits)
            if t.shift:
                out.append(t.shift | t.complete << 7)  # shift <= 36
                put_uvarint(out, len(t.corrections))
                prev = -(2**24)
                for n, c in t.corrections:
                    put_uvarint(out, n - prev)
                    put_svarint(out, c)
                    prev = n
            out.append(ch.predictor.predictor_id)
            out += ch.predictor.to_bytes()
            out += bytes([ch.shift | ch.rate << 4, ch.merge | ch.espeed << 4])
            put_uvarint(out, ch.energy0)
            put_uvarint(out, ch.level_energy)
        if self.tables is not None:
            for c, ch in enumerate(self.channels):
                prior = prior_tables(ch.shift)
                rows = [i for i in range(K.NCTX + 2) if not np.array_equal(self.tables[c, i], prior[i])]
                out += struct.pack("<I", sum(1 << i for i in rows))
                for i in rows:
                    for f in np.diff(self.tables[c, i])[:-1]:
                        put_uvarint(out, int(f))
        return bytes(out)

    def to_bytes(self) -> bytes:
        """The gene: a deterministic byte string (same model, same bytes)."""
        return self._bytes

    @cached_property
    def id(self) -> str:
        """Short stable hash of the gene: 16 lowercase hex digits (the first 8 bytes of its SHA-256)."""
        return hashlib.sha256(self._bytes).hexdigest()[:16]

    @property
    def tag(self) -> int:
        """16-bit check value that frames carry implicitly (their coder ends on it)."""
        return int(self.id[:4], 16)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.to_bytes() == self.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        kinds = ",".join(f"{c.transform.kind}/p{c.predictor.order}" for c in self.channels)
        return f"Model(id={self.id}, channels={len(self.channels)} [{kinds}], {len(self._bytes)} bytes)"

    @classmethod
    def from_bytes(cls, data: bytes) -> "Model":
        """Parse a gene; any malformed input raises QresFormatError."""
        r = Reader(data, what="model")
        if r.take(2) != GENE_MAGIC:
            raise QresFormatError("model: not a QRES model (bad magic) at byte 0")
        version = r.u8()
        if version != GENE_VERSION:
            raise QresFormatError(f"model: version {version} is not supported (this build reads {GENE_VERSION})")
        n = r.uvarint(MAX_CHANNELS)
        if n == 0:
            raise r.fail("model has no channels")
        flags = r.u8()
        if flags & ~3:
            raise r.fail(f"unknown model flags {flags:#x}")
        chans = []
        for _ in range(n):
            head = r.u8()
            code, kind, lattice = head & 15, head >> 4 & 7, head >> 7
            if code >= len(DTYPES) or kind >= len(_KINDS):
                raise r.fail("unknown channel dtype or kind")
            decimals, offset, step = r.svarint(), r.svarint(), r.uvarint()
            digits = r.u8() if _KINDS[kind] == "rational" else 0
            shift = 0
            complete = True
            corrections = []
            if lattice:
                shift = r.u8()
                complete, shift = bool(shift >> 7), shift & 127
                if shift == 0:
                    raise r.fail("a lattice needs a shift")
                prev = -(2**24)
                for _ in range(r.uvarint(2**25)):
                    prev += r.uvarint(2**25)
                    corrections.append((prev, r.svarint()))
            from .transform import transform_from_dict

            t = transform_from_dict(
                {"kind": _KINDS[kind], "dtype": DTYPES[code], "decimals": decimals, "offset": offset, "step": step, "shift": shift, "corrections": corrections, "complete": complete, "digits": digits}
            )
            pid = r.u8()
            if PREDICTORS.get(pid) is not LinearPredictor:  # the kernel runs linear predictors only, so far
                raise r.fail(f"unknown predictor id {pid}" if pid not in PREDICTORS else f"predictor id {pid} has no codec kernel")
            pred = LinearPredictor.read(r)
            a, b = r.u8(), r.u8()
            shift, rate, merge, espeed = a & 15, a >> 4, b & 15, b >> 4
            if not 1 <= rate <= 12 or merge > 8 or espeed > 4:
                raise r.fail("entropy settings out of range")
            e0 = r.uvarint(2**46)
            le = r.uvarint(2**46)
            chans.append(ChannelModel(t, pred, shift, rate, e0, le, merge, espeed))
        tables = None
        if flags & 2:
            tables = np.stack([prior_tables(ch.shift) for ch in chans])
            for c in range(n):
                mask = struct.unpack("<I", r.take(4))[0]
                if mask >> (K.NCTX + 2):
                    raise r.fail("table mask names unknown contexts")
                for i in range(K.NCTX + 2):
                    if mask >> i & 1:
                        f = [r.uvarint(CDF_ONE) for _ in range(NSYM - 1)]
                        last = CDF_ONE - sum(f)
                        if min(f) < 1 or last < 1:
                            raise r.fail("table frequencies do not sum to 2^15")
                        tables[c, i, 1:] = np.cumsum(f + [last])
        if r.remaining():
            raise r.fail("trailing bytes after the model")
        return cls(tuple(chans), repeat_rows=bool(flags & 1), tables=tables)

    # -- kernel inputs ----------------------------------------------------------------------
    def kernel_params(self, bounds: np.ndarray | None = None):
        """(par, lags_a, w_a, lags_b, w_b, w_warm, tab_at, tab_sl, cdf, seen) for the codec kernel.

        The arrays the kernel only reads are built once per model; cdf and seen (which it updates)
        are fresh copies every call, and par is copied when `bounds` are set.
        """
        par, la, wa, lb, wb, ww, tab_at, tab_sl, cdf0, seen0 = self._kernel_static
        if bounds is not None:
            par = par.copy()
            par[:, K.P_BOUND] = bounds
            for i, ch in enumerate(self.channels):
                par[i, K.P_ZMIN], par[i, K.P_ZMAX] = ch.transform.stream_range()
        return par, la, wa, lb, wb, ww, tab_at, tab_sl, cdf0.copy(), seen0.copy()

    @cached_property
    def _kernel_static(self):
        c = len(self.channels)
        par = np.zeros((c, K.NPAR), np.int64)
        la = np.zeros((c, K.MAX_LAGS), np.int64)
        wa = np.zeros_like(la)
        lb = np.zeros_like(la)
        wb = np.zeros_like(la)
        ww = np.zeros((c, MAX_WARM, MAX_WARM), np.int64)
        tsize = max([len(ch.transform.corrections) for ch in self.channels] + [1])
        tab_at = np.zeros((c, tsize), np.int64)
        tab_sl = np.zeros((c, tsize), np.int64)
        for i, ch in enumerate(self.channels):
            tab_at[i], tab_sl[i], par[i, K.P_SLIP] = ch.transform.slip_table(tsize)
            par[i, K.P_TABLEN] = len(ch.transform.corrections)
            p = ch.predictor
            la[i], wa[i], lb[i], wb[i] = p.kernel_arrays(K.MAX_LAGS)
            ww[i] = p.warm_array()
            par[i, K.P_NWARM] = len(p.warm_weights)
            par[i, K.P_NA] = p.order
            par[i, K.P_NB] = len(p.full_lags)
            par[i, K.P_MAXLAG_B] = max(p.full_lags, default=0)
            par[i, K.P_INTW] = int(p.integer_weights)
            par[i, K.P_LEVEL] = p.level
            par[i, K.P_SHIFT] = ch.shift
            par[i, K.P_RATE] = ch.rate
            par[i, K.P_ENERGY0] = ch.energy0
            par[i, K.P_LEVEL_ENERGY] = ch.level_energy
            par[i, K.P_MERGE] = ch.merge
            par[i, K.P_ESPEED] = ch.espeed
        par[:, K.P_ZMIN] = np.iinfo(np.int64).min
        par[:, K.P_ZMAX] = np.iinfo(np.int64).max
        if self.tables is not None:
            cdf = self.tables.copy()
            seen = np.full((c, K.NCTX + 2), TRAINED_SEEN, np.int64)
        else:
            cdf = np.stack([prior_tables(ch.shift) for ch in self.channels])
            seen = np.zeros((c, K.NCTX + 2), np.int64)
        for arr in (par, la, wa, lb, wb, ww, tab_at, tab_sl):
            arr.flags.writeable = False
        return par, la, wa, lb, wb, ww, tab_at, tab_sl, cdf, seen

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, values: np.ndarray, *, tables: bool = True, bounds: np.ndarray | None = None) -> "Model":
        """Fit a model to `values` (1-D, or 2-D (samples, channels)) of an integer dtype, float32 or float64.

        With `tables` the model carries CDF tables trained on `values` (what frames need); without,
        coding starts from a flat prior and adapts (what long streams need). `bounds` (per channel,
        in integer units of each channel's transform) fits for error-bounded coding.
        """
        arr = as_2d(values)
        columns = [np.ascontiguousarray(arr[:, c]) for c in range(arr.shape[1])]
        transforms = [fit_transform(col, complete=not tables, averages=tables) for col in columns]
        return fit_columns(columns, transforms, tables=tables, bounds=bounds)


def as_2d(values: np.ndarray) -> np.ndarray:
    """View a 1-D or 2-D array as (samples, channels); reject other shapes and dtypes clearly."""
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"values must be 1-D or 2-D (samples, channels), got shape {arr.shape}")
    if arr.shape[1] == 0 or arr.shape[1] > MAX_CHANNELS:
        raise ValueError(f"values must have 1..{MAX_CHANNELS} channels, got {arr.shape[1]}")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype in (np.float32, np.float64)) or arr.dtype == np.bool_:
        raise TypeError(f"unsupported dtype {arr.dtype}: use an integer dtype, float32 or float64")
    return arr


def _trial_words(z: np.ndarray, ch: ChannelModel, bound: int) -> int:
    """Bytes to code z with one channel's settings, counting the model's own bytes (they matter for short streams)."""
    m = Model((ch,))
    zz = np.ascontiguousarray(z[:, None])
    y = zz if bound == 0 else np.empty_like(zz)
    hist = np.zeros((1, K.NCTX + 2, NSYM), np.int64)
    return 2 * len(K.encode(zz, np.zeros_like(zz), m.kernel_params(np.array([bound])), False, 0, y, hist)) + len(m.to_bytes())


def _energy(u: np.ndarray) -> int:
    """16 x the mean of u (an array of residual magnitudes), within 0..2^40."""
    m = float(np.mean(u)) if len(u) else 0.0
    return int(min(2.0**40, max(0.0, 16 * m))) if np.isfinite(m) else 2**40


def fit_channel(z: np.ndarray, transform: Transform, *, frame_ready: bool, bound: int = 0) -> ChannelModel:
    """Choose predictor and entropy settings for one int64 stream by trial-coding a window of it."""
    cands = fit_linear(z)
    window = z[:TRIAL_WINDOW]
    best: ChannelModel | None = None
    best_words = None
    # energy (16 x mean zigzagged residual) to start from: typical for frames, the opening's for streams
    head = z if frame_ready else z[:33]
    energy0 = _energy(2 * np.abs(np.diff(head.astype(np.float64)))) if len(head) > 1 else 0
    for pred in cands:
        if not frame_ready and len(z):
            pred = dataclasses.replace(pred, level=int(z[0]), warm_weights=())  # warm-up only pays in frames
        ch = ChannelModel(transform, pred, energy0=energy0)
        words = _trial_words(window, ch, bound)
        if best_words is None or words < best_words:
            best, best_words = ch, words
    assert best is not None
    small = len(z) <= SMALL_STREAM
    merges = (0, 1, 2, 8) if small else (0, 1)
    settings = (
        ("shift", SHIFTS_SMALL if small else SHIFTS),
        ("rate", RATES_SMALL if small else RATES),
        ("merge", merges),
        ("espeed", ESPEEDS),
    )
    for field, options in settings:
        for opt in options:
            cand = ChannelModel(**{**best.__dict__, field: opt})
            words = _trial_words(window, cand, bound)
            if words < best_words:
                best, best_words = cand, words
    if frame_ready and len(z) > 1:
        p = best.predictor
        first = 2 * np.abs(z.astype(np.float64) - p.level)
        settled = _energy(2 * np.abs(short_residual(z, p).astype(np.float64)))
        best = ChannelModel(**{**best.__dict__, "level_energy": _energy(first), "energy0": settled})
    return best


def short_residual(z: np.ndarray, p: LinearPredictor) -> np.ndarray:
    """Residuals of the short part of a linear predictor over z (what a frame's opening sees)."""
    if p.order == 0 or len(z) <= p.order:
        return z - p.level
    acc = np.zeros(len(z) - p.order, np.int64)
    for j, w in enumerate(p.short_weights):
        acc += (np.int64(w) >> (16 if p.integer_weights else 0)) * z[p.order - 1 - j : len(z) - 1 - j]
    pred = acc if p.integer_weights else (acc + 32768) >> 16
    return z[p.order :] - pred


def fit_columns(columns: list[np.ndarray], transforms: list[Transform], *, tables: bool, bounds: np.ndarray | None = None) -> Model:
    """Fit a model to equal-length columns, each mapped to integers by its given transform."""
    from .rows import to_streams

    z, slips, _ = to_streams(transforms, columns)
    return fit_streams(z, slips, transforms, tables=tables, bounds=bounds)


def fit_streams(
    z: np.ndarray, slips: np.ndarray, transforms: list[Transform], *, tables: bool, bounds: np.ndarray | None = None
) -> Model:
    """Fit a model to transformed streams z (n, C) with their lattice slips."""
    nch = z.shape[1]
    bnd = np.zeros(nch, np.int64) if bounds is None else np.asarray(bounds, np.int64)
    chans = tuple(fit_channel(z[:, c], transforms[c], frame_ready=tables, bound=int(bnd[c])) for c in range(nch))
    repeat = False
    if nch > 1 and len(z) > 16:
        same = np.all(np.abs(z[1:] - z[:-1]) <= bnd, axis=1)
        repeat = bool(same.mean() > 0.01)
    model = Model(chans, repeat_rows=repeat)
    if tables and len(z):
        model = Model(chans, repeat_rows=repeat, tables=train_tables(model, z, slips, bnd))
    return model


def train_tables(model: Model, z: np.ndarray, slips: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """CDF tables from the token counts of each context over z, blended with the prior."""
    hist = np.zeros((model.n_channels, K.NCTX + 2, NSYM), np.int64)
    y = np.empty_like(z)
    K.encode(np.ascontiguousarray(z), slips, model.kernel_params(bounds), model.repeat_rows, 0, y, hist)
    out = np.stack([prior_tables(ch.shift) for ch in model.channels])
    for c in range(model.n_channels):
        for i in range(K.NCTX + 2):
            total = int(hist[c, i].sum())
            if total < 16:
                continue
            p = (hist[c, i] + 0.5) / (total + 0.5 * NSYM)
            freq = np.maximum(1, np.floor(p * (CDF_ONE - NSYM)).astype(np.int64))
            freq[int(np.argmax(freq))] += CDF_ONE - int(freq.sum())
            out[c, i, 1:] = np.cumsum(freq)
    return out
