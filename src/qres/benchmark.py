"""Benchmark runner: QRES against its peers (qres.peers) on sensor datasets, and the reports.

Used by `qres bench` and bench/codec_bench.py. QRES itself is reached only through its public API
(`qres.compress`, `qres.decompress`, `qres.Model.fit`, `qres.Codec(model).encode_frame` /
`.decode_frame`), imported inside the functions, so this module imports even while the codec does
not; a failing or missing codec is recorded in the results (and in `results["checks"]`) instead of
stopping the peers' measurements.

Modes (every figure is bits per value = 8 * compressed bytes / number of values, lower is better):

* lossless: qres.compress on the dataset's 2-D (samples, channels) array of channel values, checked
  bit-exact on the way back; peers each channel on its own, on the exact integers (src/qres/data/README.md),
  float peers on a float column's float64 values. "Best per channel" (the figure to beat) sums each
  channel's smallest verified size among all peers (`peers.per_channel_best`); a peer may decline a
  channel it cannot take (None), then it has no whole-dataset figure but still counts per channel.
* frames: per channel, state fitted on the first 20% (int(0.2 * n) samples), then every whole
  64-sample frame of the rest encoded alone and checked on decode.
* lossy: per channel, absolute bound e = 1% of the channel's standard deviation; qres.compress with
  max_error=e and the lossy peers, each checked against the bound on its decoded values; best per
  channel as in lossless mode, among the sizes that held the bound.
* speed: encode/decode MB/s (4 bytes per sample) on a 1M-sample int32 channel made from a real
  signal, on one core, best of several runs; frames/s for 64-value frames.

Ratios follow the project's goals: qres / best peer per dataset and their geometric mean (lossless,
lossy); qres frame / best frame peer and qres frame / qres stream (frames). Below 1 means qres wins.

Entry points: `run` (everything), `run_lossless`, `run_frames`, `run_lossy`, `run_speed`;
`load_dataset` (a bundled name or a CSV path), `csv_channels`; `render_markdown`, `render_rich`,
`plot`, `save_json`, `update_markdown_section`.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import platform
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import atomic
from . import datasets as _datasets
from . import peers as _peers
from .datasets import Channel

Progress = Callable[[str], None] | None

FRAME = _peers.FRAME_SIZE
TRAIN_FRACTION = _peers.TRAIN_FRACTION
LOSSY_REL_BOUND = 0.01
SPEED_SAMPLES = 1_000_000
MARK_BEGIN = "<!-- codec:begin -->"
MARK_END = "<!-- codec:end -->"


# --------------------------------------------------------------------------------------------
# Datasets: bundled names or CSV paths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A named set of value channels (all the same length)."""

    name: str
    source: str  # "bundled" or the CSV path
    channels: list[Channel]

    @property
    def samples(self) -> int:
        return len(self.channels[0].exact_integers) if self.channels else 0

    def values(self) -> np.ndarray:
        """(samples, channels) array: int64 if every channel is integer, else float64 (as datasets.values)."""
        if all(c.decimals == 0 for c in self.channels):
            return np.stack([c.exact_integers for c in self.channels], axis=1)
        return np.stack([np.asarray(c.values, dtype=np.float64) for c in self.channels], axis=1)


def _exact(cells: Sequence[str]) -> tuple[int, np.ndarray] | None:
    """(d, value * 10^d as int64) if every cell is a finite decimal number that fits, else None."""
    try:
        parsed = [Decimal(c.strip()) for c in cells]
    except (InvalidOperation, AttributeError):
        return None
    if not parsed or not all(d.is_finite() for d in parsed):
        return None
    decimals = max(0, max(-d.as_tuple().exponent for d in parsed))
    try:
        return decimals, np.array([int(d.scaleb(decimals)) for d in parsed], dtype=np.int64)
    except OverflowError:
        return None


def csv_channels(path: str | Path, columns: Sequence[str] | None = None) -> list[Channel]:
    """The numeric columns of a CSV file (header row first) as Channels.

    A column is numeric when every cell is a finite decimal number; its decimals d are the most any
    cell uses and its exact integers are value * 10^d, as datasets.py does for the bundled files.
    Columns that are not numeric (times, labels) or whose integers overflow int64 are left out;
    `columns` picks columns by name instead (an error if one of them is not numeric).
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no data rows")
    names = list(columns) if columns else list(rows[0].keys())
    out = []
    for col in names:
        if col is None:
            continue
        exact = _exact([row.get(col) or "" for row in rows])
        if exact is None:
            if columns:
                raise ValueError(f"{path}: column {col!r} is not numeric")
            continue
        out.append(Channel(col, exact[0], exact[1]))
    if not out:
        raise ValueError(f"{path}: no numeric column")
    return out


def load_dataset(spec: str | Path) -> Dataset:
    """A bundled dataset by name, or a CSV file by path (its numeric columns)."""
    s = str(spec)
    if s in _datasets.names():
        return Dataset(s, "bundled", _datasets.channels(s))
    p = Path(s)
    if p.is_file():
        return Dataset(p.stem, str(p), csv_channels(p))
    raise FileNotFoundError(f"{s!r} is neither a bundled dataset ({', '.join(_datasets.names())}) nor a CSV file")


def _load_all(specs: Iterable[str | Path | Dataset] | None) -> list[Dataset]:
    if specs is None:
        specs = _datasets.names()
    return [d if isinstance(d, Dataset) else load_dataset(d) for d in specs]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _qres_api(api: Any = None) -> Any:
    """The codec's public API: `api` if given (tests, fakes), else the qres package itself."""
    if api is not None:
        return api
    import qres

    for attr in ("compress", "decompress"):
        if not hasattr(qres, attr):
            raise ImportError(f"qres.{attr} is not available yet")
    return qres


def _say(progress: Progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def bit_exact(original: np.ndarray, decoded: Any) -> tuple[bool, str]:
    """(True, "") if `decoded` has the same shape, dtype and bits as `original`, else (False, why)."""
    if not isinstance(decoded, np.ndarray):
        return False, f"decoded a {type(decoded).__name__}, not an ndarray"
    if decoded.shape != original.shape:
        return False, f"shape {decoded.shape} != {original.shape}"
    if decoded.dtype != original.dtype:
        same = decoded.size == original.size and np.array_equal(decoded, original)
        return False, f"dtype {decoded.dtype} != {original.dtype}" + (" (values equal)" if same else "")
    a = np.ascontiguousarray(original)
    b = np.ascontiguousarray(decoded)
    if a.tobytes() != b.tobytes():
        diff = int(np.count_nonzero(a != b)) if a.dtype.kind != "f" else int(np.count_nonzero(a.view(np.uint8) != b.view(np.uint8)))
        return False, f"{diff} values differ"
    return True, ""


def geomean(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    if not vals:
        return None
    return math.exp(sum(math.log(x) for x in vals) / len(vals))


def _bpv(nbytes: int, n: int) -> float:
    return _peers.bits_per_value(nbytes, n)


def _best(d: dict[str, float | None]) -> tuple[str | None, float | None]:
    items = [(v, k) for k, v in d.items() if v is not None]
    if not items:
        return None, None
    v, k = min(items)
    return k, v


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _dataset_meta(ds: Dataset) -> dict[str, Any]:
    return {
        "source": ds.source,
        "samples": ds.samples,
        "channels": [c.name for c in ds.channels],
        "decimals": [c.decimals for c in ds.channels],
    }


# --------------------------------------------------------------------------------------------
# Lossless stream mode
# --------------------------------------------------------------------------------------------


def run_lossless(
    specs: Iterable[str | Path | Dataset] | None = None,
    *,
    qres: bool = True,
    api: Any = None,
    peers: Sequence[_peers.LosslessPeer] | None = None,
    progress: Progress = None,
    checks: list[str] | None = None,
) -> dict[str, Any]:
    """Lossless stream mode: qres on each dataset's 2-D array, peers channel by channel."""
    checks = checks if checks is not None else []
    if peers is not None:
        all_peers = list(peers)
        main = [p.name for p in all_peers]
    else:
        first = _peers.lossless_peers() + [_peers.QresRaasPeer()]
        all_peers = first + _peers.strong_peers()
        main = [p.name for p in first]
    use = [p for p in all_peers if p.available()]
    out: dict[str, Any] = {
        "peers": [p.name for p in use],
        "main_peers": [p.name for p in use if p.name in main],
        "unavailable": [p.name for p in all_peers if p not in use],
        "datasets": {},
    }
    for ds in _load_all(specs):
        _say(progress, f"lossless: {ds.name}")
        n = sum(len(c.exact_integers) for c in ds.channels)
        rec: dict[str, Any] = {"values": n, "peers": {}, "peer_roundtrip_ok": {}, "peer_notes": {}, "channel_bytes": {}}
        ints = {c.name: _peers.int_view(c.exact_integers) for c in ds.channels}
        floats = {c.name: (np.asarray(c.values, dtype=np.float64) if c.decimals > 0 else ints[c.name]) for c in ds.channels}
        sizes: dict[str, dict[str, int | None]] = {c.name: {} for c in ds.channels}
        for p in use:
            t0 = time.perf_counter()
            try:
                if isinstance(p, _peers.QresRaasPeer):
                    msd = p.measure_many(ints)
                    rec["peer_notes"][p.name] = {
                        "status": sorted({m.extra.get("status") for m in msd.values()}),
                        "ms_per_call": {k: m.extra.get("ms_per_call") for k, m in msd.items()},
                    }
                else:
                    src = floats if getattr(p, "on_floats", False) else ints
                    msd = {k: p.measure(a) for k, a in src.items()}
                    falls = [k for k, m in msd.items() if m is not None and m.extra.get("fallback")]
                    if falls:
                        rec["peer_notes"][p.name] = {"fallback to default config": falls}
            except Exception as e:  # a peer that breaks on some data is reported, not fatal
                rec["peers"][p.name] = None
                rec["peer_notes"][p.name] = {"error": _err(e)}
                checks.append(f"lossless {ds.name}: peer {p.name} failed: {_err(e)}")
                continue
            ok = all(m.roundtrip_ok is not False for m in msd.values() if m is not None)
            rec["peer_roundtrip_ok"][p.name] = ok
            if not ok:
                checks.append(f"lossless {ds.name}: peer {p.name} did not round-trip")
            for k, m in msd.items():  # only verified sizes take part in the per-channel best
                sizes[k][p.name] = m.nbytes if m is not None and m.roundtrip_ok is not False else None
            rec["channel_bytes"][p.name] = {k: (None if m is None else m.nbytes) for k, m in msd.items()}
            declined = [k for k, m in msd.items() if m is None]
            if declined:  # a peer that cannot take some channel has no whole-dataset figure
                rec["peers"][p.name] = None
                rec["peer_notes"].setdefault(p.name, {})["declined"] = declined
                _say(progress, f"  {p.name}: declined {len(declined)} of {len(msd)} channels ({time.perf_counter() - t0:.2f} s)")
                continue
            rec["peers"][p.name] = _bpv(sum(m.nbytes for m in msd.values()), n)
            _say(progress, f"  {p.name}: {rec['peers'][p.name]:.2f} bits/value ({time.perf_counter() - t0:.2f} s)")
        rec["best_peer"], rec["best_peer_bpv"] = _best(rec["peers"])
        total, winners = _peers.per_channel_best(sizes)
        rec["best_per_channel_bpv"] = None if total is None else _bpv(total, n)
        rec["best_per_channel_peers"] = winners
        if ds.source == "bundled" and ds.name in _peers.README_LOSSLESS:
            rec["readme_best"] = min(_peers.README_LOSSLESS[ds.name].values())
        rec.update(qres=None, qres_bytes=None, qres_roundtrip_ok=None, qres_error=None)
        if qres:
            try:
                q = _qres_api(api)
                x = ds.values()
                t0 = time.perf_counter()
                blob = q.compress(x)
                t1 = time.perf_counter()
                back = q.decompress(blob)
                t2 = time.perf_counter()
                ok, why = bit_exact(x, back)
                rec.update(qres=_bpv(len(blob), x.size), qres_bytes=len(blob), qres_roundtrip_ok=ok, qres_encode_s=t1 - t0, qres_decode_s=t2 - t1)
                if not ok:
                    rec["qres_error"] = f"round trip not bit-exact: {why}"
                    checks.append(f"lossless {ds.name}: qres round trip not bit-exact: {why}")
                _say(progress, f"  qres: {rec['qres']:.2f} bits/value" + ("" if ok else f"  ROUND TRIP FAILED ({why})"))
            except Exception as e:
                rec["qres_error"] = _err(e)
                checks.append(f"lossless {ds.name}: qres failed: {_err(e)}")
                _say(progress, f"  qres: failed ({_err(e)})")
        rec["ratio"] = _ratio(rec["qres"], rec["best_peer_bpv"])
        rec["ratio_best_per_channel"] = _ratio(rec["qres"], rec["best_per_channel_bpv"])
        out["datasets"][ds.name] = rec
    out["geomean_ratio"] = geomean(r["ratio"] for r in out["datasets"].values())
    out["geomean_ratio_best_per_channel"] = geomean(r["ratio_best_per_channel"] for r in out["datasets"].values())
    return out


# --------------------------------------------------------------------------------------------
# Frame mode
# --------------------------------------------------------------------------------------------


def run_frames(
    specs: Iterable[str | Path | Dataset] | None = None,
    *,
    frame: int = FRAME,
    train_fraction: float = TRAIN_FRACTION,
    qres: bool = True,
    api: Any = None,
    peers: Sequence[_peers.FramePeer] | None = None,
    stream: dict[str, float | None] | None = None,
    progress: Progress = None,
    checks: list[str] | None = None,
) -> dict[str, Any]:
    """Frame mode: per channel, fit on the first `train_fraction`, encode each whole frame of the rest.

    `stream` maps dataset name -> qres stream bits per value (from `run_lossless`) for the
    qres frame / qres stream ratio.
    """
    checks = checks if checks is not None else []
    all_peers = list(peers) if peers is not None else _peers.frame_peers()
    use = [p for p in all_peers if p.available()]
    out: dict[str, Any] = {"frame": frame, "train_fraction": train_fraction, "peers": [p.name for p in use], "datasets": {}}
    for ds in _load_all(specs):
        _say(progress, f"frames: {ds.name}")
        rec: dict[str, Any] = {"peers": {}, "peer_roundtrip_ok": {}, "peer_notes": {}}
        counts = []
        for c in ds.channels:
            cut = _peers.split_train(len(c.exact_integers), train_fraction)
            counts.append(len(_peers.frames_of(c.exact_integers[cut:], frame)) * frame)
        n = sum(counts)
        rec["values"] = n
        rec["frames"] = n // frame
        if n == 0:
            rec["error"] = f"no whole {frame}-sample frame after the training part"
            rec.update(qres=None, best_peer=None, best_peer_bpv=None, ratio_best_peer=None, qres_stream=None, ratio_stream=None)
            out["datasets"][ds.name] = rec
            _say(progress, "  skipped: " + rec["error"])
            continue
        for p in use:
            t0 = time.perf_counter()
            nbytes, ok, failed = 0, True, []
            for c in ds.channels:
                ints = _peers.int_view(c.exact_integers)
                try:
                    m = p.measure(ints, frame=frame, train_fraction=train_fraction)
                except ValueError as e:  # e.g. too little training data for a zstd dictionary
                    failed.append(f"{c.name}: {e}")
                    continue
                nbytes += m.nbytes
                ok = ok and m.roundtrip_ok is not False
            if failed:
                rec["peers"][p.name] = None
                rec["peer_notes"][p.name] = failed
                _say(progress, f"  {p.name}: n/a ({failed[0]})")
                continue
            rec["peers"][p.name] = _bpv(nbytes, n)
            rec["peer_roundtrip_ok"][p.name] = ok
            if not ok:
                checks.append(f"frames {ds.name}: peer {p.name} did not round-trip")
            _say(progress, f"  {p.name}: {rec['peers'][p.name]:.2f} bits/value ({time.perf_counter() - t0:.2f} s)")
        rec["best_peer"], rec["best_peer_bpv"] = _best(rec["peers"])
        if ds.source == "bundled" and ds.name in _peers.README_FRAMES:
            rec["readme_best"] = _peers.README_FRAMES[ds.name]
        rec.update(qres=None, qres_roundtrip_ok=None, qres_error=None)
        if qres:
            try:
                q = _qres_api(api)
                nbytes, bad = 0, []
                t_enc = t_dec = 0.0
                for c in ds.channels:
                    v = c.values
                    cut = _peers.split_train(len(v), train_fraction)
                    codec = q.Codec(q.Model.fit(v[:cut]))
                    for f in _peers.frames_of(v[cut:], frame):
                        f = np.ascontiguousarray(f)
                        t0 = time.perf_counter()
                        blob = codec.encode_frame(f)
                        t1 = time.perf_counter()
                        back = codec.decode_frame(blob)
                        t_dec += time.perf_counter() - t1
                        t_enc += t1 - t0
                        nbytes += len(blob)
                        ok, why = bit_exact(f, back)
                        if not ok and len(bad) < 3:
                            bad.append(f"{c.name}: {why}")
                rec["qres"] = _bpv(nbytes, n)
                rec["qres_roundtrip_ok"] = not bad
                rec["qres_frames_per_s"] = {"encode": rec["frames"] / t_enc if t_enc else None, "decode": rec["frames"] / t_dec if t_dec else None}
                if bad:
                    rec["qres_error"] = "frame not bit-exact: " + "; ".join(bad)
                    checks.append(f"frames {ds.name}: qres frame not bit-exact: {'; '.join(bad)}")
                _say(progress, f"  qres: {rec['qres']:.2f} bits/value" + ("" if not bad else "  ROUND TRIP FAILED"))
            except Exception as e:
                rec["qres_error"] = _err(e)
                checks.append(f"frames {ds.name}: qres failed: {_err(e)}")
                _say(progress, f"  qres: failed ({_err(e)})")
        rec["ratio_best_peer"] = _ratio(rec["qres"], rec["best_peer_bpv"])
        rec["qres_stream"] = (stream or {}).get(ds.name)
        rec["ratio_stream"] = _ratio(rec["qres"], rec["qres_stream"])
        out["datasets"][ds.name] = rec
    out["geomean_ratio_best_peer"] = geomean(r["ratio_best_peer"] for r in out["datasets"].values())
    out["geomean_ratio_stream"] = geomean(r["ratio_stream"] for r in out["datasets"].values())
    return out


# --------------------------------------------------------------------------------------------
# Lossy mode
# --------------------------------------------------------------------------------------------


def run_lossy(
    specs: Iterable[str | Path | Dataset] | None = None,
    *,
    rel_bound: float = LOSSY_REL_BOUND,
    qres: bool = True,
    api: Any = None,
    peers: Sequence[_peers.LossyPeer] | None = None,
    progress: Progress = None,
    checks: list[str] | None = None,
) -> dict[str, Any]:
    """Lossy mode: per channel, absolute bound e = rel_bound * std(values) (constant channels skipped).

    Peers compress each channel on its own; qres compresses the dataset's channels in one file
    with one bound per channel.
    """
    checks = checks if checks is not None else []
    all_peers = list(peers) if peers is not None else _peers.lossy_peers()
    main = [p.name for p in all_peers if not isinstance(p, _peers.QuantInt32Peer)]
    use = [p for p in all_peers if p.available()]
    out: dict[str, Any] = {"rel_bound": rel_bound, "peers": [p.name for p in use], "main_peers": [p.name for p in use if p.name in main], "datasets": {}}
    for ds in _load_all(specs):
        _say(progress, f"lossy: {ds.name}")
        chans = []
        skipped = []
        for c in ds.channels:
            x = np.asarray(c.values, dtype=np.float64)
            e = rel_bound * float(np.std(x))
            if e > 0:
                chans.append((c, x, e))
            else:
                skipped.append(c.name)
        n = sum(x.size for _, x, _ in chans)
        rec: dict[str, Any] = {
            "values": n,
            "bounds": {c.name: e for c, _, e in chans},
            "skipped_constant": skipped,
            "peers": {},
            "peer_error_ratio": {},
            "peer_notes": {},
        }
        if n == 0:
            rec.update(qres=None, best_peer=None, best_peer_bpv=None, ratio=None, best_per_channel_bpv=None, ratio_best_per_channel=None, error="every channel is constant")
            out["datasets"][ds.name] = rec
            continue
        sizes: dict[str, dict[str, int | None]] = {c.name: {} for c, _, _ in chans}
        for p in use:
            try:
                ms = [p.measure(x, e) for _, x, e in chans]
            except Exception as ex:
                rec["peers"][p.name] = None
                rec["peer_notes"][p.name] = _err(ex)
                checks.append(f"lossy {ds.name}: peer {p.name} failed: {_err(ex)}")
                continue
            for (c, _, _), m in zip(chans, ms):  # sizes that held the bound take part in the per-channel best
                sizes[c.name][p.name] = m.nbytes if m is not None and m.roundtrip_ok else None
            declined = [c.name for (c, _, _), m in zip(chans, ms) if m is None]
            ms = [m for m in ms if m is not None]
            if not ms:
                rec["peers"][p.name] = None
                rec["peer_notes"][p.name] = {"declined": declined}
                continue
            worst = max(m.error_ratio for m in ms)
            rec["peer_error_ratio"][p.name] = worst
            if worst > 1:
                checks.append(f"lossy {ds.name}: peer {p.name} exceeded the bound (max error / bound = {worst:.6g})")
            if declined:
                rec["peers"][p.name] = None
                rec["peer_notes"][p.name] = {"declined": declined}
                continue
            rec["peers"][p.name] = _bpv(sum(m.nbytes for m in ms), n)
            shrinks = [m.extra["step_shrink"] for m in ms if m.extra.get("step_shrink")]
            if shrinks:
                rec["peer_notes"][p.name] = f"quantisation step shrunk by up to {max(shrinks):.3g} to meet the bound"
            _say(progress, f"  {p.name}: {rec['peers'][p.name]:.2f} bits/value, max error / bound {worst:.4f}")
        rec["best_peer"], rec["best_peer_bpv"] = _best(rec["peers"])
        total, winners = _peers.per_channel_best(sizes)
        rec["best_per_channel_bpv"] = None if total is None else _bpv(total, n)
        rec["best_per_channel_peers"] = winners
        rec.update(qres=None, qres_error_ratio=None, qres_bound_ok=None, qres_error=None)
        if qres:
            try:
                q = _qres_api(api)
                # one file for the dataset, with each channel's own bound (qres takes a bound per channel)
                values = np.stack([np.asarray(c.values, dtype=np.float64) for c, _, _ in chans], axis=1)
                blob = q.compress(values, max_error=[e for _, _, e in chans])
                back = np.asarray(q.decompress(blob)).reshape(values.shape)
                nbytes = len(blob)
                worst = max(_peers.max_abs_error(x, back[:, i]) / e for i, (_, x, e) in enumerate(chans))
                rec["qres"] = _bpv(nbytes, n)
                rec["qres_error_ratio"] = worst
                rec["qres_bound_ok"] = worst <= 1
                if worst > 1:
                    rec["qres_error"] = f"bound exceeded: max error / bound = {worst:.6g}"
                    checks.append(f"lossy {ds.name}: qres exceeded the bound (max error / bound = {worst:.6g})")
                _say(progress, f"  qres: {rec['qres']:.2f} bits/value, max error / bound {worst:.4f}")
            except Exception as ex:
                rec["qres_error"] = _err(ex)
                checks.append(f"lossy {ds.name}: qres failed: {_err(ex)}")
                _say(progress, f"  qres: failed ({_err(ex)})")
        rec["ratio"] = _ratio(rec["qres"], rec["best_peer_bpv"])
        rec["ratio_best_per_channel"] = _ratio(rec["qres"], rec["best_per_channel_bpv"])
        out["datasets"][ds.name] = rec
    out["geomean_ratio"] = geomean(r["ratio"] for r in out["datasets"].values())
    out["geomean_ratio_best_per_channel"] = geomean(r["ratio_best_per_channel"] for r in out["datasets"].values())
    return out


# --------------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------------


def speed_signal(n: int = SPEED_SAMPLES, *, dataset: str = "heartpy_ppg", seed: int = 0) -> np.ndarray:
    """An n-sample int32 channel from a real bundled signal: its first channel tiled, each copy
    shifted by a small random offset (-16..16) so the whole is not exactly periodic."""
    base = _datasets.channels(dataset)[0].exact_integers
    reps = -(-n // len(base))
    offsets = np.random.default_rng(seed).integers(-16, 17, size=reps)
    x = np.concatenate([base + o for o in offsets])[:n]
    return np.ascontiguousarray(x, dtype=np.int32)


def run_speed(
    *,
    samples: int = SPEED_SAMPLES,
    repeats: int = 5,
    frame: int = FRAME,
    max_frames: int = 2000,
    qres: bool = True,
    api: Any = None,
    progress: Progress = None,
    checks: list[str] | None = None,
) -> dict[str, Any]:
    """Encode/decode MB/s (4 bytes per sample) of qres and pcodec on one core, and frames/s.

    Frames: the model is fitted on the first 20% of the signal, then up to `max_frames` frames of
    `frame` samples from the rest are encoded and decoded one by one.
    """
    checks = checks if checks is not None else []
    x = speed_signal(samples)
    out: dict[str, Any] = {
        "signal": f"heartpy_ppg tiled to {samples:,} samples with small offsets, int32",
        "samples": samples,
        "bytes_per_sample": 4,
        "repeats": repeats,
        "frame": frame,
    }
    if _peers.PcodecPeer("pcodec").available():
        _say(progress, "speed: pcodec")
        out["pcodec"] = _peers.pcodec_speed(x, repeats=repeats)
        cut = _peers.split_train(samples)
        out["pcodec_frames"] = _peers.pcodec_frame_speed(x[cut : cut + max_frames * frame], frame=frame, repeats=max(1, repeats // 2))
        _say(progress, f"  pcodec: encode {out['pcodec']['encode_MBps']:.1f} MB/s, decode {out['pcodec']['decode_MBps']:.1f} MB/s")
    out["qres"] = None
    if qres:
        _say(progress, "speed: qres")
        try:
            q = _qres_api(api)
            mb = 4 * samples / 1e6
            with _peers.one_core():
                blob = q.compress(x)  # also warms up any JIT
                back = q.decompress(blob)
                ok, why = bit_exact(x, back)
                t_enc = _peers.best_time(lambda: q.compress(x), repeats)
                t_dec = _peers.best_time(lambda: q.decompress(blob), repeats)
                rec: dict[str, Any] = {
                    "encode_MBps": mb / t_enc,
                    "decode_MBps": mb / t_dec,
                    "encode_s": t_enc,
                    "decode_s": t_dec,
                    "bits_per_value": _bpv(len(blob), samples),
                    "roundtrip_ok": ok,
                }
                if not ok:
                    checks.append(f"speed: qres round trip not bit-exact: {why}")
                cut = _peers.split_train(samples)
                codec = q.Codec(q.Model.fit(x[:cut]))
                frames = [np.ascontiguousarray(f) for f in _peers.frames_of(x[cut:], frame)[:max_frames]]
                blobs = [codec.encode_frame(f) for f in frames]
                for b in blobs[:1]:
                    codec.decode_frame(b)
                t_fe = _peers.best_time(lambda: [codec.encode_frame(f) for f in frames], max(1, repeats // 2))
                t_fd = _peers.best_time(lambda: [codec.decode_frame(b) for b in blobs], max(1, repeats // 2))
                rec["encode_frames_per_s"] = len(frames) / t_fe
                rec["decode_frames_per_s"] = len(frames) / t_fd
                rec["frames"] = len(frames)
                rec["frame_bits_per_value"] = _bpv(sum(len(b) for b in blobs), len(frames) * frame)
            out["qres"] = rec
            _say(progress, f"  qres: encode {rec['encode_MBps']:.1f} MB/s, decode {rec['decode_MBps']:.1f} MB/s, "
                 f"frames {rec['encode_frames_per_s']:.0f}/s encode, {rec['decode_frames_per_s']:.0f}/s decode")
        except Exception as e:
            out["qres_error"] = _err(e)
            checks.append(f"speed: qres failed: {_err(e)}")
            _say(progress, f"  qres: failed ({_err(e)})")
    if out.get("qres") and out.get("pcodec"):
        out["qres_over_pcodec"] = {
            "encode": out["qres"]["encode_MBps"] / out["pcodec"]["encode_MBps"],
            "decode": out["qres"]["decode_MBps"] / out["pcodec"]["decode_MBps"],
        }
    return out


# --------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("qres", "numpy", "pcodec", "zstandard", "pysz", "numba", "imagecodecs", "soundfile", "pyarrow", "blosc2", "zpaq", "pyppmd"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    out.update(_library_versions())
    return out


def _library_versions() -> dict[str, str | None]:
    """The C libraries behind the peers: libsndfile (FLAC), and libaec, ricecomp, CharLS and
    c-blosc2 as imagecodecs / blosc2 report them; zlib-style stdlib codecs (bz2, lzma) as Python has them."""
    out: dict[str, str | None] = {}
    try:
        import soundfile

        out["libsndfile"] = soundfile.__libsndfile_version__
    except Exception:
        pass
    try:
        import imagecodecs

        libs = dict(item.split("-", 1) for item in imagecodecs.version().split(", ") if "-" in item)
        for k in ("libaec", "ricecomp", "charls"):
            if k in libs:
                out[k] = libs[k]
    except Exception:
        pass
    try:
        import blosc2

        out["c-blosc2"] = blosc2.blosclib_version.split(" ")[0] if hasattr(blosc2, "blosclib_version") else None
    except Exception:
        pass
    try:
        import pyarrow

        out["libparquet (arrow)"] = pyarrow.cpp_version
    except Exception:
        pass
    return {k: v for k, v in out.items() if v}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(
    specs: Iterable[str | Path | Dataset] | None = None,
    *,
    modes: Sequence[str] = ("lossless", "frames", "lossy", "speed"),
    frame: int = FRAME,
    train_fraction: float = TRAIN_FRACTION,
    rel_bound: float = LOSSY_REL_BOUND,
    speed_samples: int = SPEED_SAMPLES,
    repeats: int = 5,
    qres: bool = True,
    api: Any = None,
    progress: Progress = None,
) -> dict[str, Any]:
    """The whole benchmark as a JSON-serialisable dict.

    specs: bundled names and/or CSV paths (default: every bundled dataset). modes: any of
    "lossless", "frames", "lossy", "speed". qres=False measures the peers only; api replaces the
    qres package (an object with compress/decompress/Model/Codec), for tests.
    `results["checks"]` lists every failed check (round trips, bounds, crashes); empty is good.
    """
    unknown = set(modes) - {"lossless", "frames", "lossy", "speed"}
    if unknown:
        raise ValueError(f"unknown modes: {sorted(unknown)}")
    dss = _load_all(specs)
    checks: list[str] = []
    res: dict[str, Any] = {
        "meta": {
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(),
            "platform": platform.platform(),
            "cpu": _cpu(),
            "units": "bits per value = 8 * compressed bytes / values; lower is better; ratios < 1 mean qres wins",
            "qres_measured": bool(qres),
        },
        "datasets": {d.name: _dataset_meta(d) for d in dss},
    }
    t0 = time.perf_counter()
    if "lossless" in modes:
        res["lossless"] = run_lossless(dss, qres=qres, api=api, progress=progress, checks=checks)
    if "frames" in modes:
        stream = {k: v["qres"] for k, v in res.get("lossless", {}).get("datasets", {}).items()}
        res["frames"] = run_frames(dss, frame=frame, train_fraction=train_fraction, qres=qres, api=api, stream=stream, progress=progress, checks=checks)
    if "lossy" in modes:
        res["lossy"] = run_lossy(dss, rel_bound=rel_bound, qres=qres, api=api, progress=progress, checks=checks)
    if "speed" in modes:
        res["speed"] = run_speed(samples=speed_samples, repeats=repeats, frame=frame, qres=qres, api=api, progress=progress, checks=checks)
    res["meta"]["seconds"] = time.perf_counter() - t0
    res["checks"] = checks
    return jsonable(res)


def jsonable(obj: Any) -> Any:
    """Plain Python types only (numpy scalars converted; NaN and infinities become None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return obj


def save_json(results: dict[str, Any], path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(p, json.dumps(jsonable(results), indent=1) + "\n", overwrite=True)


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def _f(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def _tables(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as neutral tables: {title, note, columns, rows, bold (row, col) minima}."""
    tables = []
    ll = results.get("lossless")
    if ll:
        peers = ll.get("main_peers", ll["peers"])
        cols = ["dataset", "qres", *peers, "best peer", "README best", "qres / best peer", "best per channel", "qres / best per channel"]
        rows, bold = [], []
        for name, r in ll["datasets"].items():
            cells = [r["qres"], *[r["peers"].get(p) for p in peers]]
            rows.append([name, *[_f(c) for c in cells], f"{_f(r['best_peer_bpv'])} ({r['best_peer'] or '—'})",
                         _f(r.get("readme_best")), _f(r["ratio"], 3), _f(r.get("best_per_channel_bpv")), _f(r.get("ratio_best_per_channel"), 3)])
            bold.append(_min_cols(cells, offset=1))
        rows.append(["geometric mean", *[""] * (len(cols) - 4), _f(ll.get("geomean_ratio"), 3), "", _f(ll.get("geomean_ratio_best_per_channel"), 3)])
        bold.append([])
        tables.append({
            "title": "Lossless stream",
            "note": "Bits per value, lower is better. qres: `qres.compress` on each dataset's (samples, channels) array, "
            "round trip checked bit-exact. Peers: each channel on its own, on its exact integers value * 10^d "
            "(int32 when they fit, else int64; try_conv1 falls back to pcodec's default on int64), as in src/qres/data/README.md; "
            "README best: the best peer figure src/qres/data/README.md states. Best peer: the best single peer that took every channel "
            "(any peer of the next table). Best per channel: each channel's smallest verified size among all peers of both tables, summed "
            "(the figure to beat).",
            "columns": cols,
            "rows": rows,
            "bold": bold,
        })
        tables.append(_peer_table("Lossless stream, every peer", ll, "Bits per value of every lossless peer (rows) on each dataset; "
                                  "— where the peer declines some channel (FLAC: values beyond 24 bits; JPEG-LS: a range beyond 16 bits; "
                                  "Rice, CCSDS-121 and try_conv1 at level 12: beyond int32; float64 peers: integer columns), and "
                                  "(k) after a figure: the number of channels on which that peer is the per-channel best."))
    fr = results.get("frames")
    if fr:
        peers = fr["peers"]
        cols = ["dataset", "qres frame", *peers, "best peer", "README best", "qres / best peer", "qres stream", "qres frame / stream"]
        rows, bold = [], []
        for name, r in fr["datasets"].items():
            cells = [r.get("qres"), *[r.get("peers", {}).get(p) for p in peers]]
            rows.append([name, *[_f(c) for c in cells], f"{_f(r.get('best_peer_bpv'))} ({r.get('best_peer') or '—'})",
                         _f(r.get("readme_best")), _f(r.get("ratio_best_peer"), 3), _f(r.get("qres_stream")), _f(r.get("ratio_stream"), 3)])
            bold.append(_min_cols(cells, offset=1))
        rows.append(["geometric mean", *[""] * (len(cols) - 4), _f(fr.get("geomean_ratio_best_peer"), 3), "", _f(fr.get("geomean_ratio_stream"), 3)])
        bold.append([])
        tables.append({
            "title": f"Frames of {fr['frame']} samples",
            "note": f"Bits per value over every whole {fr['frame']}-sample frame after the first {fr['train_fraction']:.0%} of each "
            "channel; each frame decodes alone given state fitted on that first part (qres: `Model.fit`; zstd: a 4 KiB "
            "trained dictionary, raw or deltas; — where the training part is too small to train one).",
            "columns": cols,
            "rows": rows,
            "bold": bold,
        })
    lo = results.get("lossy")
    if lo:
        peers = lo.get("main_peers", lo["peers"])
        cols = ["dataset", "qres", *peers, "best peer", "qres / best peer", "best per channel", "qres / best per channel",
                "max error / bound (qres, " + ", ".join(peers) + ")"]
        rows, bold = [], []
        for name, r in lo["datasets"].items():
            cells = [r.get("qres"), *[r.get("peers", {}).get(p) for p in peers]]
            errs = [r.get("qres_error_ratio"), *[r.get("peer_error_ratio", {}).get(p) for p in peers]]
            rows.append([name, *[_f(c) for c in cells], f"{_f(r.get('best_peer_bpv'))} ({r.get('best_peer') or '—'})",
                         _f(r.get("ratio"), 3), _f(r.get("best_per_channel_bpv")), _f(r.get("ratio_best_per_channel"), 3),
                         ", ".join(_f(e, 4) for e in errs)])
            bold.append(_min_cols(cells, offset=1))
        rows.append(["geometric mean", *[""] * (len(cols) - 5), _f(lo.get("geomean_ratio"), 3), "", _f(lo.get("geomean_ratio_best_per_channel"), 3), ""])
        bold.append([])
        tables.append({
            "title": f"Lossy, absolute bound {lo['rel_bound']:.0%} of each channel's standard deviation",
            "note": "Bits per value. qres: one `qres.compress(values, max_error=[e1, e2, ...])` per dataset, a bound per channel. SZ3: pysz, ABS mode on float64, per channel. "
            "Quantise + pcodec: q = round(x / 2e) compressed by pcodec, plus 8 bytes for the step. "
            "Every decoded value is checked against the bound. Best peer: the best single peer of the next table that took every channel; "
            "best per channel: each channel's smallest size among all of them that held the bound, summed (the figure to beat).",
            "columns": cols,
            "rows": rows,
            "bold": bold,
        })
        tables.append(_peer_table("Lossy, every peer", lo, "Bits per value of every error-bounded peer (rows); quantise to int32 + X: "
                                  "q = round(x / 2e) as int32 (when it fits), coded by lossless peer X, plus 8 bytes for the step; "
                                  "— where the peer declines some channel; (k): channels on which it is the per-channel best."))
    sp = results.get("speed")
    if sp:
        rows = []
        q = sp.get("qres") or {}
        pc = sp.get("pcodec") or {}
        pf = sp.get("pcodec_frames") or {}
        rows.append(["qres", _f(q.get("encode_MBps"), 1), _f(q.get("decode_MBps"), 1), _f(q.get("bits_per_value")),
                     _f(q.get("encode_frames_per_s"), 0), _f(q.get("decode_frames_per_s"), 0)])
        rows.append(["pcodec (default)", _f(pc.get("encode_MBps"), 1), _f(pc.get("decode_MBps"), 1), _f(pc.get("bits_per_value")),
                     _f(pf.get("encode_frames_per_s"), 0), _f(pf.get("decode_frames_per_s"), 0)])
        tables.append({
            "title": "Speed",
            "note": f"{sp['signal']}; MB/s counts 4 bytes per sample; one core, best of {sp['repeats']} runs. "
            f"Frames: {sp['frame']} samples each, encoded and decoded one at a time.",
            "columns": ["codec", "encode MB/s", "decode MB/s", "bits/value", "frames/s encode", "frames/s decode"],
            "rows": rows,
            "bold": [[], []],
        })
    return tables


def _peer_table(title: str, sec: dict[str, Any], note: str) -> dict[str, Any]:
    """Every peer of a mode as a row, datasets as columns (bits per value, best per column in bold)."""
    names = list(sec["datasets"])
    rows, bold = [], []
    cols_best: dict[str, str] = {}
    for d in names:
        vals = [sec["datasets"][d].get("peers", {}).get(p) for p in sec["peers"]]
        ok = [v for v in vals if v is not None]
        cols_best[d] = _f(min(ok)) if ok else ""
    for p in sec["peers"]:
        cells, b = [p], []
        for j, d in enumerate(names):
            r = sec["datasets"][d]
            wins = sum(1 for w in (r.get("best_per_channel_peers") or {}).values() if w == p)
            v = r.get("peers", {}).get(p)
            cells.append(_f(v) + (f" ({wins})" if wins else ""))
            if v is not None and _f(v) == cols_best[d]:
                b.append(j + 1)
        rows.append(cells)
        bold.append(b)
    rows.append(["best per channel", *[_f(sec["datasets"][d].get("best_per_channel_bpv")) for d in names]])
    bold.append([])
    return {"title": title, "note": note, "columns": ["peer", *names], "rows": rows, "bold": bold}


def _min_cols(cells: Sequence[float | None], offset: int) -> list[int]:
    vals = [c for c in cells if c is not None]
    if not vals:
        return []
    m = _f(min(vals))
    return [i + offset for i, c in enumerate(cells) if c is not None and _f(c) == m]


def render_markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables (best figure in each row in bold), with failed checks listed."""
    lines: list[str] = []
    meta = results.get("meta", {})
    v = meta.get("versions", {})
    if v:
        lines.append("Measured with " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + (f" on {meta['cpu']}" if meta.get("cpu") else "") + ".")
        lines.append("")
    if meta.get("qres_measured") is False:
        lines.append("QRES itself was not measured in this run (peers only).")
        lines.append("")
    for t in _tables(results):
        lines.append(f"### {t['title']}")
        lines.append("")
        lines.append(t["note"])
        lines.append("")
        lines.append("| " + " | ".join(t["columns"]) + " |")
        lines.append("| " + " | ".join(["---"] + ["---:"] * (len(t["columns"]) - 1)) + " |")
        for row, bold in zip(t["rows"], t["bold"]):
            cells = [f"**{c}**" if i in bold and c not in ("", "—") else c for i, c in enumerate(row)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    checks = results.get("checks") or []
    if checks:
        lines.append("### Failed checks")
        lines.append("")
        lines.extend(f"- {c}" for c in checks)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_rich(results: dict[str, Any]):
    """The results as rich Tables in a `rich.console.Group` (print it with a rich Console)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for t in _tables(results):
        table = Table(title=t["title"], caption=t["note"], caption_justify="left", show_lines=False)
        for i, c in enumerate(t["columns"]):
            table.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
        for row, bold in zip(t["rows"], t["bold"]):
            table.add_row(*[Text(c, style="bold green") if i in bold and c not in ("", "—") else Text(c) for i, c in enumerate(row)])
        parts.append(table)
    checks = results.get("checks") or []
    if checks:
        parts.append(Text("Failed checks:\n" + "\n".join(f"  - {c}" for c in checks), style="bold red"))
    return Group(*parts)


def plot(results: dict[str, Any], path: str | Path) -> None:
    """Grouped bar charts of bits per value per dataset (qres and each peer), one panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    if results.get("lossless"):
        panels.append(("Lossless stream", results["lossless"], "qres"))
    if results.get("frames"):
        panels.append((f"Frames of {results['frames']['frame']} samples", results["frames"], "qres"))
    if results.get("lossy"):
        panels.append((f"Lossy, bound {results['lossy']['rel_bound']:.0%} of std", results["lossy"], "qres"))
    if not panels:
        raise ValueError("nothing to plot")
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 3.6 * len(panels)), squeeze=False)
    for ax, (title, sec, _) in zip(axes[:, 0], panels):
        names = list(sec["datasets"])
        series = [("qres", [sec["datasets"][n].get("qres") for n in names])]
        series += [(p, [sec["datasets"][n].get("peers", {}).get(p) for n in names]) for p in sec.get("main_peers", sec["peers"])]
        if any(sec["datasets"][n].get("best_per_channel_bpv") is not None for n in names):
            series.append(("best per channel", [sec["datasets"][n].get("best_per_channel_bpv") for n in names]))
        k = len(series)
        width = 0.8 / k
        xs = np.arange(len(names))
        cmap = plt.get_cmap("tab10")
        for i, (label, vals) in enumerate(series):
            h = [np.nan if v is None else v for v in vals]
            ax.bar(xs - 0.4 + width * (i + 0.5), h, width, label=label, color="black" if label == "qres" else cmap(i % 10),
                   edgecolor="none")
        ax.set_xticks(xs, names, rotation=0, fontsize=8)
        ax.set_ylabel("bits per value")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=min(k, 5), loc="upper left")
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(p, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def update_markdown_section(path: str | Path, body: str, *, intro: str = "", begin: str = MARK_BEGIN, end: str = MARK_END) -> None:
    """Put `body` between the `begin` and `end` markers of a Markdown file.

    A missing file is created with `intro` then the markers; a file without the markers gets them
    appended; the text outside the markers is kept.
    """
    p = Path(path)
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(p, (intro.rstrip() + "\n\n" if intro else "") + block + "\n")
        return
    text = p.read_text()
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = text[:i] + block + text[j + len(end) :]
    atomic.write_text(p, text, overwrite=True)


# --------------------------------------------------------------------------------------------
# A corpus of CSV recordings in a folder (bench/codec_bench.py --corpus DIR)
# --------------------------------------------------------------------------------------------

CORPUS_BEGIN = "<!-- corpus:begin -->"
CORPUS_END = "<!-- corpus:end -->"


def corpus_splits(folder: str | Path) -> dict[str, str]:
    """{CSV file stem: "dev" or "eval"} from folder/PROVENANCE.json, where it states a "split".

    Takes a mapping {name: {"split": ...}}, the same under a "recordings" key, or a list of records
    with "split" and one of "file", "path", "name", "csv"; names are matched by file stem.
    """
    p = Path(folder) / "PROVENANCE.json"
    if not p.is_file():
        return {}
    data = json.loads(p.read_text())
    if isinstance(data, dict) and isinstance(data.get("recordings"), (dict, list)):
        data = data["recordings"]
    items: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        items = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    elif isinstance(data, list):
        for v in data:
            if isinstance(v, dict):
                key = next((v[k] for k in ("file", "path", "csv", "name") if isinstance(v.get(k), str)), None)
                if key:
                    items.append((key, v))
    out = {}
    for key, v in items:
        split = v.get("split")
        if isinstance(split, str):
            out[Path(key).stem] = split
    return out


def corpus_datasets(folder: str | Path, progress: Progress = None) -> tuple[list[Dataset], dict[str, str]]:
    """Every CSV of `folder` (sorted) as a Dataset, and {name: why} for those that do not load."""
    dss, skipped = [], {}
    for f in sorted(Path(folder).glob("*.csv")):
        try:
            dss.append(load_dataset(f))
        except Exception as e:
            skipped[f.stem] = _err(e)
            _say(progress, f"corpus: skipped {f.name}: {_err(e)}")
    return dss, skipped


def corpus_summary(results: dict[str, Any], splits: dict[str, str]) -> dict[str, Any]:
    """Geometric means of qres / best peer and qres / best per channel for each half (dev, eval, ...)."""
    halves: dict[str, list[str]] = {}
    for name in results.get("datasets", {}):
        halves.setdefault(splits.get(name, "unsplit"), []).append(name)
    out: dict[str, Any] = {}
    for half, names in sorted(halves.items()):
        rec: dict[str, Any] = {"recordings": names}
        for mode, keys in (("lossless", ("ratio", "ratio_best_per_channel")), ("lossy", ("ratio", "ratio_best_per_channel")),
                           ("frames", ("ratio_best_peer", "ratio_stream"))):
            sec = results.get(mode)
            if not sec:
                continue
            rec[mode] = {f"geomean_{k}": geomean(sec["datasets"].get(n, {}).get(k) for n in names) for k in keys}
        out[half] = rec
    return out


def render_corpus_markdown(results: dict[str, Any], splits: dict[str, str], folder: str, skipped: dict[str, str] | None = None) -> str:
    """The corpus section: one row per recording (with its split and qres's encode/decode time),
    then the geometric means of each half."""
    lines = [f"## Corpus ({folder})", ""]
    meta = results.get("meta", {})
    v = meta.get("versions", {})
    if v:
        lines += ["Measured with " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + (f" on {meta['cpu']}" if meta.get("cpu") else "") + ".", ""]
    ll, lo = results.get("lossless") or {}, results.get("lossy") or {}
    cols = ["recording", "split", "samples", "channels", "qres", "best peer", "best per channel", "qres / best per channel",
            "qres encode ms", "qres decode ms", "lossy qres", "lossy best per channel", "lossy qres / best per channel"]
    lines += ["Bits per value (lower is better); best per channel: each channel's smallest verified size among all peers, summed. "
              "Encode / decode: one `qres.compress` / `qres.decompress` of the whole recording, wall time.", "",
              "| " + " | ".join(cols) + " |", "| " + " | ".join(["---", "---"] + ["---:"] * (len(cols) - 2)) + " |"]
    for name, d in results.get("datasets", {}).items():
        r = (ll.get("datasets") or {}).get(name, {})
        q = (lo.get("datasets") or {}).get(name, {})
        ms = lambda x: "—" if x is None else f"{1e3 * x:.1f}"  # noqa: E731
        lines.append("| " + " | ".join([
            name, splits.get(name, "—"), str(d.get("samples", "")), str(len(d.get("channels", []))),
            _f(r.get("qres")), f"{_f(r.get('best_peer_bpv'))} ({r.get('best_peer') or '—'})", _f(r.get("best_per_channel_bpv")),
            _f(r.get("ratio_best_per_channel"), 3), ms(r.get("qres_encode_s")), ms(r.get("qres_decode_s")),
            _f(q.get("qres")), _f(q.get("best_per_channel_bpv")), _f(q.get("ratio_best_per_channel"), 3),
        ]) + " |")
    lines += ["", "| half | recordings | lossless qres / best peer | lossless qres / best per channel | lossy qres / best peer | lossy qres / best per channel |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for half, rec in corpus_summary(results, splits).items():
        a, b = rec.get("lossless", {}), rec.get("lossy", {})
        lines.append(f"| {half} | {len(rec['recordings'])} | {_f(a.get('geomean_ratio'), 3)} | {_f(a.get('geomean_ratio_best_per_channel'), 3)} | "
                     f"{_f(b.get('geomean_ratio'), 3)} | {_f(b.get('geomean_ratio_best_per_channel'), 3)} |")
    if skipped:
        lines += ["", "Skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())]
    checks = results.get("checks") or []
    if checks:
        lines += ["", "Failed checks:", ""] + [f"- {c}" for c in checks]
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "Dataset",
    "bit_exact",
    "corpus_datasets",
    "corpus_splits",
    "corpus_summary",
    "csv_channels",
    "geomean",
    "jsonable",
    "load_dataset",
    "plot",
    "render_corpus_markdown",
    "render_markdown",
    "render_rich",
    "run",
    "run_frames",
    "run_lossless",
    "run_lossy",
    "run_speed",
    "save_json",
    "speed_signal",
    "update_markdown_section",
]
