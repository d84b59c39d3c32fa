import math

import numpy as np
import pytest

from qres.fixed import Q16_ONE, to_q16
from qres.swarm.regime import (
    CALM,
    PRESTORM,
    STORM,
    STORM_MIN_STEPS,
    RegimeState,
    changepoint_scores,
    confirm_storm,
    detect_plain,
    detect_regimes,
    entropy_series,
    regime_series,
    step,
)

LOW, HIGH = 0.02, 0.8


def q(seq):
    return np.array([int(to_q16(x)) for x in seq], np.int32)


def changes(regimes):
    r = np.asarray(regimes)
    idx = np.flatnonzero(np.diff(r)) + 1
    return [(int(i), int(r[i])) for i in idx]


# --- entropy -----------------------------------------------------------------------------------


def test_entropy_previous_value_and_trailing_range():
    e = entropy_series(np.array([0, 1, 3, 3, 2, 10]))
    # ranges 0,1,3,3,3,10; errors 0,1,2,0,1,8
    assert e.dtype == np.int32
    assert e.tolist() == [0, Q16_ONE, 43691, 0, 21845, 52429]
    # floats give the same Q16.16 entropies
    assert entropy_series(np.array([0.0, 1, 3, 3, 2, 10])).tolist() == e.tolist()


def test_entropy_window_predictions_and_fixed_range():
    x = np.array([0, 100, 100, 100, 101])
    assert entropy_series(x, window=2)[-1] == Q16_ONE  # range over the last 2 samples is 1
    assert entropy_series(x, window=64)[-1] == round(Q16_ONE / 101)
    assert entropy_series(x, value_range=200).tolist() == [
        0,
        Q16_ONE // 2,
        0,
        0,
        round(Q16_ONE / 200),
    ]
    pred = np.array([0, 50, 100, 100, 100])
    assert entropy_series(x, predicted=pred).tolist()[:2] == [0, Q16_ONE // 2]
    # a constant stream has zero range: exact predictions give 0, others are clipped to 1.0
    assert entropy_series(np.full(4, 7)).tolist() == [0, 0, 0, 0]
    assert entropy_series(np.full(3, 7), predicted=np.array([7, 8, 7])).tolist() == [
        0,
        Q16_ONE,
        0,
    ]
    # 2-D input runs each row as its own stream
    both = entropy_series(np.stack([x, x * 3]))
    assert both[0].tolist() == both[1].tolist() == entropy_series(x).tolist()
    with pytest.raises(ValueError):
        entropy_series(x, window=1)
    with pytest.raises(ValueError):
        entropy_series(np.array([0.0, np.nan]))


# --- hysteresis --------------------------------------------------------------------------------


def test_single_spike_does_not_reach_storm():
    r = regime_series(q([LOW] * 5 + [1.0] + [LOW] * 10))
    assert STORM not in r.tolist()
    # it may raise a PreStorm alarm, which falls back to Calm when the derivative turns negative
    assert changes(r) == [(6, PRESTORM), (8, CALM)]


def test_sustained_burst_calm_prestorm_storm_and_minimum_storm_length():
    r = regime_series(q([LOW] * 5 + [HIGH] * 6 + [LOW] * 80))
    # derivative > 0.15 at 5 and 6 -> PreStorm at 6; raw entropy > 0.45 at 5, 6, 7 -> Storm at 7
    assert changes(r) == [(6, PRESTORM), (7, STORM), (7 + STORM_MIN_STEPS, CALM)]
    # entropy fell back long before step 57, yet Storm held for exactly 50 steps
    assert np.count_nonzero(r == STORM) == STORM_MIN_STEPS


def test_storm_exit_needs_five_low_steps_after_the_minimum():
    seq = [LOW] * 5 + [HIGH] * 60 + [LOW] * 20
    r = regime_series(q(seq))
    assert changes(r)[:2] == [(6, PRESTORM), (7, STORM)]
    # the last high step is 64; smoothed entropy < 0.30 from 66 on, the fifth such step is 70
    assert changes(r)[2] == (70, CALM)
    # a burst that keeps flaring up every few steps never lets Storm end
    flaring = ([LOW] * 4 + [1.0]) * 30  # smoothed entropy >= 0.30 on 3 steps of every 5
    r = regime_series(q([LOW] * 5 + [HIGH] * 6 + flaring))
    assert r[7:].tolist() == [STORM] * (len(r) - 7)


def test_prestorm_false_alarm_falls_back_to_calm():
    # a ramp lifts the derivative above 0.15 twice, then entropy sinks before 3 steps above 0.45
    r = regime_series(q([0, 0, 0, 0.3, 0.6, 0.3, 0, 0, 0]))
    assert changes(r) == [(5, PRESTORM), (7, CALM)]


def test_derivative_must_rise_on_two_consecutive_steps():
    # slow ramps keep the two-step derivative at or below 0.15: no alarm at all
    ramp = np.arange(0, 0.9, 0.05).tolist()
    assert set(regime_series(q(ramp + ramp[::-1])).tolist()) == {CALM}


def test_detect_regimes_format():
    # a sensor that starts to oscillate (a value the previous one never predicts) for 20 samples
    x = np.concatenate([np.zeros(100, int), 500 * (np.arange(20) % 2), np.zeros(100, int)])
    assert detect_regimes(x) == [
        (0, "calm"),
        (102, "prestorm"),
        (103, "storm"),
        (153, "calm"),
    ]
    assert detect_plain(x, 0.45) == [(0, "calm"), (101, "storm"), (121, "calm")]
    assert detect_regimes(np.zeros(10, int)) == [(0, "calm")]


# --- vectorised step ---------------------------------------------------------------------------


def test_vectorised_step_equals_nodes_one_by_one_and_is_deterministic():
    rng = np.random.default_rng(7)
    n, T = 16, 300
    base = rng.random((n, T)) * 0.3
    bursts = rng.random((n, T)) < 0.08
    e = q(np.where(bursts, 0.5 + rng.random((n, T)) * 0.5, base).ravel()).reshape(n, T)
    e[:, 100:120] = Q16_ONE * 3 // 4  # a storm everybody sees

    together = regime_series(e)
    for i in range(n):
        state = RegimeState(1)
        alone = [int(step(state, e[i : i + 1, t])[0]) for t in range(T)]
        assert alone == together[i].tolist()
    assert set(np.unique(together).tolist()) == {CALM, PRESTORM, STORM}

    again = regime_series(e.copy())
    assert np.array_equal(again, together)
    s1, s2 = RegimeState(n), RegimeState(n)
    for t in range(T):
        step(s1, e[:, t])
        step(s2, e[:, t])
    for k, v in vars(s1).items():
        assert np.array_equal(v, vars(s2)[k]), k
    assert s1.regime.dtype == np.int8 and s1.last_smoothed.dtype == np.int32


def test_step_checks_input():
    state = RegimeState(3)
    with pytest.raises(ValueError):
        step(state, np.zeros(2, np.int32))
    with pytest.raises(TypeError):
        step(state, np.zeros(3))


# --- INV-4 helper ------------------------------------------------------------------------------


def test_confirm_storm():
    hi, lo, edge = int(to_q16(0.9)), int(to_q16(0.5)), int(to_q16(0.8))
    assert confirm_storm([STORM] * 3, [hi] * 3)
    assert not confirm_storm([STORM] * 2, [hi] * 2)
    # untrusted voters (at or below 0.8) do not count, however many
    assert not confirm_storm([STORM] * 10, [lo] * 8 + [hi] * 2)
    assert not confirm_storm([STORM] * 3, [edge, hi, hi])
    # votes for other regimes do not count
    assert not confirm_storm([STORM, STORM, PRESTORM], [hi] * 3)
    # one voter repeating its vote counts once
    assert not confirm_storm([STORM] * 5, [hi] * 5, voter_ids=["a", "a", "a", "b", "b"])
    assert confirm_storm([STORM] * 4, [hi] * 4, voter_ids=["a", "b", "a", "c"])
    # an equivocating voter counts for nothing
    assert not confirm_storm([STORM, CALM, STORM, STORM], [hi] * 4, voter_ids=[1, 1, 2, 3])
    assert confirm_storm([STORM] * 4, [hi] * 4, min_trusted=4)
    assert not confirm_storm([], [])


# --- baseline comparison -----------------------------------------------------------------------


def test_hysteresis_makes_far_fewer_transitions_than_plain_threshold_on_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 20, 3000)  # white noise: the previous value predicts it badly
    x[1000:1200] += 300 * (np.arange(200) % 2)  # one real burst
    x = np.round(x).astype(np.int64)
    hyst = detect_regimes(x)
    plain = detect_plain(x, 0.45)
    assert (1003, "storm") in hyst or (1004, "storm") in hyst
    assert len(hyst) - 1 < (len(plain) - 1) / 2
    storms = lambda out: sum(name == "storm" for _, name in out)
    assert storms(hyst) < storms(plain) / 10


# --- change-point scores -----------------------------------------------------------------------


def test_changepoint_scores_hand_made():
    ann = [50, 100, 200, 300]
    det = [45, 52, 103, 180, 305, 400]
    s = changepoint_scores(det, ann, tolerance=10)
    # 45 -> 50, 52 unmatched (50 taken), 103 -> 100, 180 too far from 200, 305 -> 300, 400 none
    assert s["precision"] == pytest.approx(3 / 6)
    assert s["recall"] == pytest.approx(3 / 4)
    assert s["mean_delay"] == pytest.approx((-5 + 3 + 5) / 3)
    # each annotation is matched at most once, and matches are maximised
    s = changepoint_scores([10, 12], [2, 11], tolerance=10)
    assert s["precision"] == 1.0 and s["recall"] == 1.0
    s = changepoint_scores([], [5])
    assert s["precision"] == 0.0 and s["recall"] == 0.0 and math.isnan(s["mean_delay"])
    assert changepoint_scores([5], [], tolerance=1)["recall"] == 1.0
