"""Regimes (Calm, PreStorm, Storm): entropy of a stream and the hysteresis detector.

Sans-I/O and vectorised over a leading node axis; all state is integer (Q16.16 entropies, int32
counters), so every platform gets the same regimes.

Definitions (DESIGN.md "Swarm", made precise here)

- entropy[t] = |actual[t] - predicted[t]| / range[t], in Q16.16, clipped to [0, 1.0].
  * predicted[t] is the previous value actual[t-1] unless the caller passes predictions;
    predicted[0] = actual[0] by default, so entropy[0] = 0.
  * range[t] = max - min of the trailing window actual[t-window+1 .. t] (the current sample and up
    to window-1 before it; fewer at the start), window = 64 by default, or a fixed `value_range`
    given by the caller. A zero range is floored at the smallest positive range: the entropy is 0
    when the prediction is exact and 1.0 otherwise.
  * Integer input is divided exactly: round(err * 65536 / range), halves up. Float input is
    rounded the same way from IEEE-754 float64 operations (subtraction, division, a power-of-two
    multiply), which are correctly rounded, hence identical on every platform.
- smoothed[t] = round((e[t] + e[t-1] + e[t-2]) / 3), halves up, over the raw Q16.16 entropies;
  entropies before the first step count as 0.
- derivative[t] = smoothed[t] - smoothed[t-2]; smoothed values before the first step count as 0.

Hysteresis (at most one transition per step, decided from the regime held before the step;
the run counters below are updated every step from the signal, whatever the regime):

- Calm -> PreStorm      when derivative > 0.15 on 2 consecutive steps.
- PreStorm -> Storm     when raw entropy > 0.45 on 3 consecutive steps (checked first), else
- PreStorm -> Calm      on a false alarm: derivative < 0.
- Storm -> Calm         when smoothed entropy < 0.30 on 5 consecutive steps and the node has been
                        in Storm for at least 50 steps (the step that entered Storm counts as 1).

Entering Storm as a swarm also needs 3 distinct trusted confirmations (INV-4); that check belongs
to consensus, and `confirm_storm` is the pure helper it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..fixed import Q16_ONE, to_q16
from .reputation import TRUSTED_ABOVE

CALM, PRESTORM, STORM = 0, 1, 2
REGIME_NAMES = ("calm", "prestorm", "storm")

DERIV_RISE_Q16 = int(to_q16(0.15))  # 9830: Calm -> PreStorm when derivative above this ...
DERIV_RISE_STEPS = 2  # ... on this many consecutive steps
STORM_ENTER_Q16 = int(to_q16(0.45))  # 29491: PreStorm -> Storm when raw entropy above this ...
STORM_ENTER_STEPS = 3  # ... on this many consecutive steps
STORM_EXIT_Q16 = int(to_q16(0.30))  # 19661: Storm -> Calm when smoothed entropy below this ...
STORM_EXIT_STEPS = 5  # ... on this many consecutive steps ...
STORM_MIN_STEPS = 50  # ... and after at least this many steps in Storm
STORM_MIN_CONFIRMATIONS = 3  # distinct trusted voters the swarm needs to enter Storm (INV-4)

DEFAULT_WINDOW = 64


@dataclass(frozen=True)
class Rules:
    """How many consecutive steps each transition needs, and the shortest Storm (in steps)."""

    rise_steps: int = DERIV_RISE_STEPS
    enter_steps: int = STORM_ENTER_STEPS
    exit_steps: int = STORM_EXIT_STEPS
    min_storm_steps: int = STORM_MIN_STEPS


HYSTERESIS = Rules()
NO_HYSTERESIS = Rules(1, 1, 1, 0)  # the same thresholds acting on a single step: the baseline to beat
_COUNTER_MAX = np.iinfo(np.int32).max


class RegimeState:
    """Regime detector state of n nodes (all arrays have a leading node axis of length n).

    regime: int8 (0 calm, 1 prestorm, 2 storm); last_entropy: (n, 2) int32 raw Q16.16 entropies of
    the two previous steps (newest first); last_smoothed: (n, 2) int32 smoothed entropies of the two
    previous steps (newest first); rise_run / high_run / low_run: int32 counts of consecutive steps
    with derivative > 0.15, raw entropy > 0.45, smoothed entropy < 0.30; storm_steps: int32 steps
    spent in the current Storm (0 outside Storm). Counters saturate at the int32 maximum.
    """

    def __init__(self, n_nodes: int):
        if n_nodes < 0:
            raise ValueError(f"RegimeState: n_nodes must be >= 0, got {n_nodes}")
        self.regime = np.zeros(n_nodes, np.int8)
        self.last_entropy = np.zeros((n_nodes, 2), np.int32)
        self.last_smoothed = np.zeros((n_nodes, 2), np.int32)
        self.rise_run = np.zeros(n_nodes, np.int32)
        self.high_run = np.zeros(n_nodes, np.int32)
        self.low_run = np.zeros(n_nodes, np.int32)
        self.storm_steps = np.zeros(n_nodes, np.int32)

    @property
    def n_nodes(self) -> int:
        return len(self.regime)

    @property
    def smoothed_q16(self) -> np.ndarray:
        """Smoothed entropy of the last step, Q16.16 int32 (for the gossip gate and reports)."""
        return self.last_smoothed[:, 0].copy()

    def copy(self) -> RegimeState:
        other = RegimeState(0)
        for k, v in vars(self).items():
            setattr(other, k, v.copy())
        return other


def _bump(run: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """Consecutive-step counter: +1 (saturating) where cond holds, reset to 0 elsewhere."""
    return np.where(cond, np.minimum(run.astype(np.int64) + 1, _COUNTER_MAX), 0).astype(np.int32)


def step(state: RegimeState, entropy_q16: np.ndarray, rules: Rules = HYSTERESIS) -> np.ndarray:
    """Advance every node one step with its raw entropy (Q16.16, shape (n_nodes,), in [0, 1.0]).

    Updates `state` in place and returns a copy of the new regimes (int8, shape (n_nodes,)).
    `rules` other than HYSTERESIS are for comparisons (NO_HYSTERESIS), not for the protocol.
    """
    e = np.asarray(entropy_q16)
    if e.dtype.kind not in "iu":
        raise TypeError(f"step: entropy_q16 must be integers (Q16.16 raw), got dtype {e.dtype}")
    if e.shape != (state.n_nodes,):
        raise ValueError(f"step: entropy_q16 must have shape ({state.n_nodes},), got {e.shape}")
    e = np.clip(e.astype(np.int64), 0, Q16_ONE)

    prev_e = state.last_entropy.astype(np.int64)
    prev_s = state.last_smoothed.astype(np.int64)
    smoothed = (e + prev_e[:, 0] + prev_e[:, 1] + 1) // 3  # round half up, all terms >= 0
    deriv = smoothed - prev_s[:, 1]

    rise = _bump(state.rise_run, deriv > DERIV_RISE_Q16)
    high = _bump(state.high_run, e > STORM_ENTER_Q16)
    low = _bump(state.low_run, smoothed < STORM_EXIT_Q16)

    r = state.regime
    calm_to_pre = (r == CALM) & (rise >= rules.rise_steps)
    pre_to_storm = (r == PRESTORM) & (high >= rules.enter_steps)
    pre_to_calm = (r == PRESTORM) & ~pre_to_storm & (deriv < 0)
    storm_to_calm = (r == STORM) & (state.storm_steps >= rules.min_storm_steps) & (low >= rules.exit_steps)

    new = r.copy()
    new[calm_to_pre] = PRESTORM
    new[pre_to_storm] = STORM
    new[pre_to_calm | storm_to_calm] = CALM

    steps_in_storm = np.minimum(state.storm_steps.astype(np.int64) + 1, _COUNTER_MAX)
    state.storm_steps = np.where(new == STORM, steps_in_storm, 0).astype(np.int32)
    state.regime = new
    state.last_entropy = np.stack([e, prev_e[:, 0]], axis=1).astype(np.int32)
    state.last_smoothed = np.stack([smoothed, prev_s[:, 0]], axis=1).astype(np.int32)
    state.rise_run, state.high_run, state.low_run = rise, high, low
    return new.copy()


def confirm_storm(
    votes_regime: Sequence[int] | np.ndarray,
    votes_reputation_q16: Sequence[int] | np.ndarray,
    min_trusted: int = STORM_MIN_CONFIRMATIONS,
    trusted_above_q16: int = TRUSTED_ABOVE,
    *,
    voter_ids: Sequence | np.ndarray | None = None,
) -> bool:
    """Whether a set of votes lets the swarm enter Storm (INV-4).

    True only when at least `min_trusted` distinct voters with reputation strictly above
    `trusted_above_q16` (Q16.16, default 0.8) vote Storm. Without `voter_ids` each position is one
    voter (e.g. arrays indexed by node). With `voter_ids`, a voter that appears several times counts
    once, and only if every one of its entries is a trusted Storm vote (an equivocating voter counts
    for nothing).
    """
    regime = np.asarray(votes_regime).ravel()
    rep = np.asarray(votes_reputation_q16).ravel()
    if regime.shape != rep.shape:
        raise ValueError(f"confirm_storm: {regime.size} votes but {rep.size} reputations")
    if rep.size and rep.dtype.kind not in "iu":
        raise TypeError(f"confirm_storm: reputations must be Q16.16 integers, got dtype {rep.dtype}")
    good = trusted_storm_votes(regime, rep, trusted_above_q16)
    if voter_ids is None:
        return int(np.count_nonzero(good)) >= min_trusted
    ids = list(voter_ids)
    if len(ids) != regime.size:
        raise ValueError(f"confirm_storm: {regime.size} votes but {len(ids)} voter ids")
    verdict: dict = {}
    for vid, ok in zip(ids, good.tolist()):
        verdict[vid] = verdict.get(vid, True) and ok
    return sum(verdict.values()) >= min_trusted


def trusted_storm_votes(votes_regime: np.ndarray, votes_reputation_q16: np.ndarray, trusted_above_q16: int = TRUSTED_ABOVE) -> np.ndarray:
    """Mask of the votes that count towards Storm (INV-4): a Storm vote from a voter whose reputation,
    as the counting node sees it (never self-reported), is strictly above `trusted_above_q16`."""
    return (np.asarray(votes_regime) == STORM) & (np.asarray(votes_reputation_q16).astype(np.int64) > int(trusted_above_q16))


def entropy_series(
    values,
    predicted=None,
    window: int = DEFAULT_WINDOW,
    value_range: float | None = None,
) -> np.ndarray:
    """Raw entropy |actual - predicted| / range of each sample, Q16.16 int32 in [0, 65536].

    `values` has time on its last axis: shape (T,) for one stream or (nodes, T). `predicted`
    (same shape) defaults to the previous value; `range` is max - min over the trailing `window`
    samples (window >= 2), or `value_range` when given (> 0). See the module doc.
    """
    a = np.asarray(values)
    if a.ndim not in (1, 2):
        raise ValueError(f"entropy_series: values must be 1-D or 2-D (nodes, T), got shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise TypeError(f"entropy_series: values must be numbers, got dtype {a.dtype}")
    if window < 2:
        raise ValueError(f"entropy_series: window must be >= 2, got {window}")
    integer = a.dtype.kind in "iu"
    if predicted is None:
        p = np.concatenate([a[..., :1], a[..., :-1]], axis=-1)
    else:
        p = np.asarray(predicted)
        if p.shape != a.shape:
            raise ValueError(f"entropy_series: predicted has shape {p.shape}, values {a.shape}")
        if p.dtype.kind not in "iuf":
            raise TypeError(f"entropy_series: predicted must be numbers, got dtype {p.dtype}")
        integer = integer and p.dtype.kind in "iu"
    work = np.int64 if integer else np.float64
    a = a.astype(work)
    p = p.astype(work)
    if not integer and not (np.isfinite(a).all() and np.isfinite(p).all()):
        raise ValueError("entropy_series: values and predictions must be finite")
    if a.shape[-1] == 0:
        return np.zeros(a.shape, np.int32)
    err = np.abs(a - p)

    if value_range is None:
        pad = np.repeat(a[..., :1], window - 1, axis=-1)  # the first value is in every early window
        view = np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, a], axis=-1), window, axis=-1)
        rng = view.max(axis=-1) - view.min(axis=-1)
    else:
        if not value_range > 0:
            raise ValueError(f"entropy_series: value_range must be > 0, got {value_range}")
        if integer and float(value_range) != int(value_range):
            integer = False
            err = err.astype(np.float64)
        rng = np.full(a.shape, value_range, np.int64 if integer else np.float64)

    zero = rng == 0
    if integer:
        safe = np.where(zero, 1, rng)
        err = np.minimum(err, safe)  # entropy is clipped to 1.0 anyway; keeps err * 65536 in int64
        q = (err * Q16_ONE + safe // 2) // safe
    else:
        safe = np.where(zero, 1.0, rng)
        q = np.floor(np.minimum(err / safe, 1.0) * Q16_ONE + 0.5)
    q = np.where(zero, np.where(err > 0, Q16_ONE, 0), q)
    return np.clip(q, 0, Q16_ONE).astype(np.int32)


def regime_series(entropy_q16: np.ndarray, rules: Rules = HYSTERESIS) -> np.ndarray:
    """Regimes (int8) after each step of raw entropies shaped (T,) or (nodes, T), time last.

    Runs `step` over time from a fresh RegimeState (nodes advance together, vectorised).
    """
    e = np.asarray(entropy_q16)
    single = e.ndim == 1
    e2 = e[None, :] if single else e
    if e2.ndim != 2:
        raise ValueError(f"regime_series: expected shape (T,) or (nodes, T), got {e.shape}")
    state = RegimeState(e2.shape[0])
    out = np.empty(e2.shape, np.int8)
    for t in range(e2.shape[1]):
        out[:, t] = step(state, e2[:, t], rules)
    return out[0] if single else out


def _changes(regimes: np.ndarray) -> list[tuple[int, str]]:
    """[(index, name)] where a 1-D regime sequence changes, starting with (0, regime at 0)."""
    r = np.asarray(regimes)
    if r.size == 0:
        return [(0, REGIME_NAMES[CALM])]
    idx = np.flatnonzero(np.diff(r)) + 1
    return [(0, REGIME_NAMES[int(r[0])])] + [(int(i), REGIME_NAMES[int(r[i])]) for i in idx]


def detect_regimes(
    values,
    predicted=None,
    window: int = DEFAULT_WINDOW,
    value_range: float | None = None,
    rules: Rules = HYSTERESIS,
) -> list[tuple[int, str]]:
    """Regime changes of one stream with the hysteresis rules: [(index, name), ...].

    Starts with (0, "calm"); names are "calm", "prestorm", "storm". The index is the sample at
    which the new regime holds.
    """
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"detect_regimes: expected one stream (1-D), got shape {a.shape}")
    return _changes(regime_series(entropy_series(a, predicted, window, value_range), rules))


def detect_plain(
    values,
    threshold: float = 0.45,
    predicted=None,
    window: int = DEFAULT_WINDOW,
    value_range: float | None = None,
) -> list[tuple[int, str]]:
    """Baseline without hysteresis: "storm" while the raw entropy is above `threshold`, else "calm".

    Same entropy and output format as `detect_regimes` (starts with (0, regime at sample 0), which
    is "calm" unless caller predictions miss sample 0 by more than the threshold).
    """
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"detect_plain: expected one stream (1-D), got shape {a.shape}")
    e = entropy_series(a, predicted, window, value_range)
    return _changes(np.where(e > int(to_q16(threshold)), STORM, CALM).astype(np.int8))


def changepoint_scores(
    detected_indices: Sequence[int],
    annotations: Sequence[int],
    tolerance: int = 10,
) -> dict[str, float]:
    """Compare detected change indices with annotated change points.

    A detection d matches an annotation a when |d - a| <= tolerance; each detection and each
    annotation is used at most once, and the number of matches is maximised (greedy in time order,
    each detection taking the earliest free annotation in reach, which is optimal for equal
    windows). Returns precision = matches / detections (0.0 with no detections), recall =
    matches / annotations (1.0 with no annotations) and mean_delay = mean of (d - a) over matches
    in samples (positive = late; nan with no match).
    """
    det = sorted(int(d) for d in detected_indices)
    ann = sorted(int(a) for a in annotations)
    used = [False] * len(ann)
    delays: list[int] = []
    lo = 0
    for d in det:
        while lo < len(ann) and ann[lo] < d - tolerance:
            lo += 1
        j = lo
        while j < len(ann) and ann[j] <= d + tolerance:
            if not used[j]:
                used[j] = True
                delays.append(d - ann[j])
                break
            j += 1
    m = len(delays)
    return {
        "precision": m / len(det) if det else 0.0,
        "recall": m / len(ann) if ann else 1.0,
        "mean_delay": float(np.mean(delays)) if delays else float("nan"),
    }
