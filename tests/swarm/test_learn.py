"""The swarm model and a node's local update (`qres.swarm.learn`).

`local_step` must be integer-only and deterministic (INV-6 at the function level), move the weights
towards the window's own least-squares fit, never by more than STEP_LIMIT, and not depend on the
scale of the stream; `as_predictor` must run the same model on values inside the codec.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qres.codec.frame import DEFAULT_FRAME_ROWS, Codec
from qres.codec.model import Model, train_tables
from qres.codec.rows import to_streams
from qres.fixed import Q16_ONE, isqrt
from qres.swarm import learn
from qres.swarm.learn import ORDER, STEP_LIMIT, WEIGHT_LIMIT

A1, A2 = 1.2, -0.5  # AR(2) on the differences: d[t] = A1 d[t-1] + A2 d[t-2] + noise


def ar2_streams(n: int, length: int, seed: int, scale: float = 300.0, level: int = 1000) -> np.ndarray:
    """n integer streams (n, length) whose first differences follow the AR(2) process above."""
    rng = np.random.default_rng(seed)
    burn = 50
    noise = rng.normal(0.0, scale, (n, length + burn))
    d = np.zeros((n, length + burn))
    for t in range(2, length + burn):
        d[:, t] = A1 * d[:, t - 1] + A2 * d[:, t - 2] + noise[:, t]
    return np.round(np.cumsum(d[:, burn:], axis=1) + level).astype(np.int64)


def random_weights(n: int, seed: int, spread: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-int(spread * Q16_ONE), int(spread * Q16_ONE), (n, ORDER)).astype(np.int64)


def squared_loss(step: learn.LocalStep, weights: np.ndarray) -> np.ndarray:
    """Per-node sum of squared residuals of `weights` on the step's own (scaled) window, in float."""
    x = step.x.astype(np.float64)
    y = step.y.astype(np.float64)
    r = y - np.einsum("ntp,np->nt", x, weights.astype(np.float64) / Q16_ONE)
    return (r * r).sum(axis=1)


# ----------------------------------------------------------------------------- determinism (INV-6)


def test_local_step_is_integer_and_deterministic():
    """Every output is int64, and the same inputs give bit-identical outputs."""
    z = ar2_streams(5, 129, seed=1)
    w = random_weights(5, seed=2)
    a = learn.local_step(w, z, Q16_ONE // 4)
    b = learn.local_step(w.copy(), z.copy(), Q16_ONE // 4)
    for f in ("proposal", "entropy", "residual_error", "accuracy_delta", "x", "y"):
        got = getattr(a, f)
        assert got.dtype == np.int64, f
        np.testing.assert_array_equal(got, getattr(b, f), err_msg=f)
    assert a.proposal.shape == (5, ORDER)


def test_local_step_batch_equals_one_row_at_a_time():
    """A node's update does not depend on which other nodes are in the batch (INV-6)."""
    z = ar2_streams(6, 129, seed=3)
    z[2] *= 37  # rows of very different scale share the batch
    z[4] //= 50
    w = random_weights(6, seed=4)
    rates = np.array([0, Q16_ONE // 8, Q16_ONE // 4, Q16_ONE // 2, 3 * Q16_ONE // 4, Q16_ONE], np.int64)
    batch = learn.local_step(w, z, rates)
    for i in range(6):
        one = learn.local_step(w[i : i + 1], z[i : i + 1], rates[i])
        for f in ("proposal", "entropy", "residual_error", "accuracy_delta"):
            np.testing.assert_array_equal(getattr(one, f)[0], getattr(batch, f)[i], err_msg=f"row {i} {f}")


def test_local_step_does_not_modify_its_inputs():
    z = ar2_streams(3, 129, seed=5)
    w = random_weights(3, seed=6)
    z0, w0 = z.copy(), w.copy()
    learn.local_step(w, z, Q16_ONE)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(w, w0)


# ----------------------------------------------------------------------------- what a step does


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_local_step_reduces_the_window_error_on_an_ar2_stream(seed):
    """From the genesis model, one step lowers both the window's mean |residual| and its squared error."""
    z = ar2_streams(4, 257, seed=seed)
    w0 = np.zeros((4, ORDER), np.int64)
    s = learn.local_step(w0, z, Q16_ONE)
    assert (s.entropy > 0).all()
    assert (s.residual_error < s.entropy).all()
    assert (s.accuracy_delta > 0).all() and (s.accuracy_delta <= Q16_ONE).all()
    assert (squared_loss(s, s.proposal) < squared_loss(s, w0)).all()
    # the move goes towards the true lag-1 weight (A1 > 0) from zero
    assert (s.proposal[:, 0] > 0).all()


def test_local_step_reduces_squared_error_from_random_weights():
    """The step is a descent step on the window's squared error from any starting weights and rate > 0."""
    z = ar2_streams(8, 129, seed=13)
    w0 = random_weights(8, seed=14, spread=2.0)
    for rate in (Q16_ONE // 10, Q16_ONE // 2, Q16_ONE):
        s = learn.local_step(w0, z, rate)
        assert (squared_loss(s, s.proposal) < squared_loss(s, w0)).all(), rate


def test_repeated_steps_converge_to_the_window_least_squares_fit():
    """The ridge only damps the step: its fixed point is the window's own least-squares fit
    (reached to within rounding, not stuck short of it by the integer arithmetic)."""
    z = ar2_streams(1, 257, seed=15)
    w = np.zeros((1, ORDER), np.int64)
    for _ in range(200):
        s = learn.local_step(w, z, Q16_ONE)
        w = s.proposal
    fit = np.linalg.lstsq(s.x[0].astype(np.float64), s.y[0].astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(w[0] / Q16_ONE, fit, atol=0.002)


def test_steps_never_exceed_step_limit():
    """|proposal - weights| (L2) <= STEP_LIMIT (+1 raw unit of rounding), whatever the data and rate."""
    rng = np.random.default_rng(16)
    for trial in range(30):
        z = np.cumsum(rng.integers(-5000, 5000, (8, 129)), axis=1)
        if trial % 2:
            z = ar2_streams(8, 129, seed=trial, scale=float(rng.uniform(1, 1e5)))
        w = rng.integers(-3 * Q16_ONE, 3 * Q16_ONE, (8, ORDER))
        rates = rng.integers(0, Q16_ONE + 1, 8)
        s = learn.local_step(w, z, rates)
        delta = s.proposal - w
        assert (isqrt((delta * delta).sum(axis=1)) <= STEP_LIMIT + 1).all()
    # and a step from far away is actually clipped to (about) the limit, not to nothing
    z = ar2_streams(2, 257, seed=17)
    s = learn.local_step(np.full((2, ORDER), -Q16_ONE), z, Q16_ONE)
    norm = isqrt(((s.proposal + Q16_ONE) ** 2).sum(axis=1))
    assert (norm >= STEP_LIMIT - 1).all()


def test_weights_stay_within_weight_limit():
    z = ar2_streams(2, 129, seed=18)
    w = np.full((2, ORDER), WEIGHT_LIMIT)
    w[1] = -WEIGHT_LIMIT
    s = learn.local_step(w, z, Q16_ONE)
    assert (np.abs(s.proposal) <= WEIGHT_LIMIT).all()


def test_rate_zero_changes_nothing():
    z = ar2_streams(3, 129, seed=19)
    w = random_weights(3, seed=20)
    s = learn.local_step(w, z, 0)
    np.testing.assert_array_equal(s.proposal, w)
    np.testing.assert_array_equal(s.residual_error, s.entropy)
    np.testing.assert_array_equal(s.accuracy_delta, np.zeros(3, np.int64))


def test_a_smaller_rate_moves_less():
    z = ar2_streams(3, 257, seed=21)
    w = np.zeros((3, ORDER), np.int64)
    small = learn.local_step(w, z, Q16_ONE // 100).proposal
    big = learn.local_step(w, z, Q16_ONE).proposal
    assert ((small * small).sum(axis=1) < (big * big).sum(axis=1)).all()


def test_a_flat_window_leaves_the_weights_unchanged():
    """No variation, no information: the step is zero and nothing divides by zero."""
    z = np.full((2, 129), 1234, np.int64)
    w = random_weights(2, seed=22)
    s = learn.local_step(w, z, Q16_ONE)
    np.testing.assert_array_equal(s.proposal, w)
    np.testing.assert_array_equal(s.entropy, [0, 0])
    np.testing.assert_array_equal(s.accuracy_delta, [0, 0])


@pytest.mark.parametrize("rate", [-1, Q16_ONE + 1, np.array([0, Q16_ONE, Q16_ONE + 1]), np.array([5, -3, 0])])
def test_rate_out_of_range_raises(rate):
    z = ar2_streams(3, 129, seed=23)
    with pytest.raises(ValueError, match="rate"):
        learn.local_step(np.zeros((3, ORDER), np.int64), z, rate)


def test_too_short_windows_raise_and_the_shortest_allowed_works():
    w = np.zeros((2, ORDER), np.int64)
    z = ar2_streams(2, 2 * ORDER + 1, seed=24)
    learn.local_step(w, z, Q16_ONE)  # 2 x ORDER + 1 samples is enough
    with pytest.raises(ValueError, match="window"):
        learn.local_step(w, z[:, :-1], Q16_ONE)
    with pytest.raises(ValueError, match="window"):
        learn.local_step(w, z[:, :3], Q16_ONE)


# ----------------------------------------------------------------------------- scale invariance


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_scale_invariance_is_exact_when_the_window_is_already_scaled(k):
    """Multiplying a stream whose differences exceed 2**DATA_BITS by 2**k gives the same step, exactly."""
    z = ar2_streams(6, 129, seed=25, scale=3000.0)
    assert (np.abs(np.diff(z, axis=1)).max(axis=1) >= 2**learn.DATA_BITS).all()  # the premise
    w = random_weights(6, seed=26)
    a = learn.local_step(w, z, Q16_ONE // 2)
    b = learn.local_step(w, z << k, Q16_ONE // 2)
    for f in ("proposal", "entropy", "residual_error", "accuracy_delta"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_scale_invariance_is_close_for_small_streams(k):
    """Small streams (not rescaled) scaled by 2**k give the same step up to rounding (2 raw units)."""
    z = ar2_streams(6, 129, seed=27, scale=5.0)
    w = random_weights(6, seed=28)
    a = learn.local_step(w, z, Q16_ONE // 2)
    b = learn.local_step(w, z << k, Q16_ONE // 2)
    assert np.abs(a.proposal - b.proposal).max() <= 2


def test_scaled_differences_bounds_and_level_independence():
    z = ar2_streams(4, 129, seed=29, scale=1e6)
    d, span = learn.scaled_differences(z)
    assert d.dtype == np.int64 and d.shape == (4, 128)
    assert (np.abs(d) < 2**learn.DATA_BITS).all()
    assert (span >= 1).all()
    d2, span2 = learn.scaled_differences(z + 123_456_789)  # the level drops out
    np.testing.assert_array_equal(d, d2)
    np.testing.assert_array_equal(span, span2)
    small = np.array([[0, 1, 3, 2, 5]], np.int64)  # needs no scaling: differences as they are
    ds, spans = learn.scaled_differences(small)
    np.testing.assert_array_equal(ds, [[1, 2, -1, 3]])
    np.testing.assert_array_equal(spans, [5])


# ----------------------------------------------------------------------------- fixed-point pieces


def test_cholesky_solve_agrees_with_numpy():
    """The fixed-point solver matches a float solve of random SPD Q16.16 systems to ~1e-3."""
    rng = np.random.default_rng(30)
    n, p = 64, ORDER
    a = rng.normal(size=(n, p, p))
    c = np.einsum("nij,nkj->nik", a, a) / p + np.eye(p)  # SPD, diagonal >= 1
    h = rng.normal(size=(n, p)) * 2
    cq = np.round(c * Q16_ONE).astype(np.int64)
    hq = np.round(h * Q16_ONE).astype(np.int64)
    v = learn._cholesky_solve(cq, hq)
    assert v.dtype == np.int64
    ref = np.linalg.solve(cq / Q16_ONE, (hq / Q16_ONE)[..., None])[..., 0]
    np.testing.assert_allclose(v / Q16_ONE, ref, atol=1e-3)
    # the identity system is solved exactly
    eye = np.broadcast_to(np.eye(p, dtype=np.int64) * Q16_ONE, (n, p, p)).copy()
    np.testing.assert_array_equal(learn._cholesky_solve(eye, hq), hq)


def test_clip_rows_scales_long_rows_and_keeps_short_ones():
    rng = np.random.default_rng(31)
    d = rng.integers(-(2**20), 2**20, (500, ORDER))
    d[:100] //= 10_000  # short rows
    out = learn.clip_rows(d, STEP_LIMIT)
    norms = isqrt((d * d).sum(axis=1))
    short = norms <= STEP_LIMIT
    assert short.any() and (~short).any()
    np.testing.assert_array_equal(out[short], d[short])
    assert (isqrt((out * out).sum(axis=1)) <= STEP_LIMIT + 1).all()
    # direction kept: each clipped row is the original scaled by limit / norm, to within rounding
    expect = d[~short] * (STEP_LIMIT / norms[~short])[:, None]
    assert np.abs(out[~short] - expect).max() <= 1.5


# ----------------------------------------------------------------------------- codec side


def test_as_predictor_maps_difference_weights_to_value_weights_exactly():
    w = [70000, -30000, 5, 0, -1, 123456, -65536, 42]
    p = learn.as_predictor(w, level=3, warm=((65536,),))
    a = p.short_weights
    assert len(a) == ORDER + 1
    assert a[0] == Q16_ONE + w[0]
    for k in range(1, ORDER):
        assert a[k] == w[k] - w[k - 1]
    assert a[ORDER] == -w[-1]
    assert sum(a) == Q16_ONE  # a constant stream is predicted exactly
    assert p.level == 3 and p.warm_weights == ((65536,),)
    zero = learn.as_predictor(np.zeros(ORDER, np.int64))
    assert zero.short_weights == (Q16_ONE,) + (0,) * ORDER  # genesis: "same as the last value"


def _codec_with_weights(train: np.ndarray, weights) -> Codec:
    base = Model.fit(train)
    ch = base.channels[0]
    chw = dataclasses.replace(ch, predictor=learn.as_predictor(weights, ch.predictor.level, ch.predictor.warm_weights))
    z, slips, _ = to_streams([ch.transform], [train])
    model = Model((chw,), tables=train_tables(Model((chw,)), z, slips, np.zeros(1, np.int64)))
    return Codec(model)


@pytest.mark.parametrize("kind", ["true", "zero", "extreme"])
def test_codec_round_trips_frames_with_swarm_weights(kind):
    """Frames coded with any swarm model (even at WEIGHT_LIMIT) decode to the exact values."""
    z = ar2_streams(1, 2048 + 512, seed=32, scale=30.0)[0]
    rng = np.random.default_rng(33)
    weights = {
        "true": np.array([round(A1 * Q16_ONE), round(A2 * Q16_ONE)] + [0] * (ORDER - 2)),
        "zero": np.zeros(ORDER, np.int64),
        "extreme": rng.choice([-WEIGHT_LIMIT, WEIGHT_LIMIT], ORDER),
    }[kind]
    codec = _codec_with_weights(z[:2048], weights)
    for frame in z[2048:].reshape(-1, DEFAULT_FRAME_ROWS):
        data = codec.encode_frame(frame)
        np.testing.assert_array_equal(codec.decode_frame(data), frame)


def test_least_squares_recovers_ar_coefficients():
    """The float baseline finds (A1, A2, 0, ...) from several pooled streams of different scales."""
    streams = [ar2_streams(1, 3000, seed=34 + i, scale=s)[0] for i, s in enumerate((3.0, 300.0, 3e4))]
    w = learn.least_squares(streams) / Q16_ONE
    np.testing.assert_allclose(w[:2], [A1, A2], atol=0.05)
    assert np.abs(w[2:]).max() < 0.05
    order3 = learn.least_squares(streams, order=3)
    assert order3.shape == (3,) and order3.dtype == np.int64


def test_least_squares_with_nothing_to_fit_gives_zeros():
    out = learn.least_squares([np.full(50, 7), np.arange(5)])  # flat, and too short
    np.testing.assert_array_equal(out, np.zeros(ORDER, np.int64))


def test_frame_bits_per_value_prefers_the_true_model():
    """Coding an AR stream with its true difference model costs fewer bits than the genesis model."""
    z = ar2_streams(1, 2048 + 1024, seed=38, scale=30.0)[0]
    true = np.array([round(A1 * Q16_ONE), round(A2 * Q16_ONE)] + [0] * (ORDER - 2))
    bits_true, bits_zero = learn.frame_bits_per_value(z[:2048], z[2048:], [true, np.zeros(ORDER, np.int64)])
    assert 0 < bits_true < bits_zero
    # and it measures what a codec really sends
    codec = _codec_with_weights(z[:2048], true)
    frames = z[2048:].reshape(-1, DEFAULT_FRAME_ROWS)
    assert bits_true == pytest.approx(8.0 * sum(len(codec.encode_frame(f)) for f in frames) / frames.size)
