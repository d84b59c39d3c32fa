"""The kernel predicts and quantises exactly as docs/FORMAT.md says ("Coded words").

A round trip cannot show this: the encoder and the decoder share one loop, so a prediction off by
one row, or a quantisation step of the wrong width, round-trips perfectly. These tests hold the
kernel to the written rule instead:

- prediction: a stream that the documented predictor (level, warm-up orders, short weights, full
  lags) predicts exactly must code as residual 0 everywhere, so every coded token is token 0;
- error-bounded mode: every rebuilt value is within the bound B of its original, and the errors
  reach B (the step is 2B + 1: a narrower step would never reach it, a wider one would pass it).
"""

from __future__ import annotations

import numpy as np
import pytest

import qres
from qres.codec import kernel as K
from qres.codec.model import ChannelModel
from qres.codec.predictor import LinearPredictor
from qres.codec.rans import NSYM
from qres.codec.transform import Transform
from qres.fixed import to_q16


def documented_prediction(y: np.ndarray, t: int, p: LinearPredictor) -> int:
    """Prediction of value t from values y[:t], as docs/FORMAT.md states it (Python integers)."""
    q16 = lambda ws, lags: (sum(int(w) * int(y[t - lag]) for w, lag in zip(ws, lags)) + 2**15) >> 16  # noqa: E731
    if p.full_lags and t >= max(p.full_lags):
        return q16(p.full_weights, p.full_lags)
    if p.order == 0 or t == 0:
        return p.level
    if t >= p.order:
        return q16(p.short_weights, range(1, p.order + 1))
    q = min(t, len(p.warm_weights))
    if q == 0:
        return int(y[t - 1])
    return q16(p.warm_weights[q - 1], range(1, q + 1))


def exactly_predicted(p: LinearPredictor, n: int, kick: dict[int, int]) -> np.ndarray:
    """A stream the documented rule predicts exactly, except at rows `kick` (row -> residual)."""
    y = np.zeros(n, np.int64)
    for t in range(n):
        y[t] = documented_prediction(y, t, p) + kick.get(t, 0)
    return y


def coded_tokens(model: qres.Model, z: np.ndarray, bounds=None) -> tuple[np.ndarray, np.ndarray]:
    """(tokens coded per CDF row, summed over contexts (NSYM,), the values a decoder rebuilds)."""
    z2 = np.ascontiguousarray(z.reshape(-1, 1))
    y = np.empty_like(z2)
    hist = np.zeros((1, K.NCTX + 2, NSYM), np.int64)
    K.encode(z2, np.zeros_like(z2), model.kernel_params(bounds), False, model.tag, y, hist)
    return hist[0, : K.NCTX].sum(axis=0), y[:, 0]


def model_with(p: LinearPredictor) -> qres.Model:
    """A one-channel int64 model (identity transform) running predictor `p`, with a context shift
    so wide that a token is the whole residual (token 0 means residual 0)."""
    return qres.Model((ChannelModel(Transform("int", "<i8"), p, shift=15, energy0=0, level_energy=0),))


W = lambda *xs: tuple(int(to_q16(x)) for x in xs)  # noqa: E731
PREDICTORS = {
    "warm-up orders 1..3 then order 4": LinearPredictor(
        level=1000, short_weights=W(0.5, 0.75, -0.5, 0.25), warm_weights=(W(1.5), W(2.0, -1.0), W(1.0, 1.0, -1.0))
    ),
    "no warm-up: previous value until order 3": LinearPredictor(level=-40, short_weights=W(1.25, 0.5, -0.75)),
    "warm-up order 1 then order 3": LinearPredictor(level=7, short_weights=W(2.0, -1.5, 0.5), warm_weights=(W(0.9),)),
    "seasonal lags once the longest is available": LinearPredictor(
        level=500, short_weights=W(0.5, 0.5), full_lags=(1, 2, 12, 13), full_weights=W(0.6, 0.2, 0.7, -0.5), warm_weights=(W(1.1),)
    ),
}


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_the_kernel_predicts_every_row_as_documented(name):
    p = PREDICTORS[name]
    model = model_with(p)
    z = exactly_predicted(p, 200, kick={})
    tokens, rebuilt = coded_tokens(model, z)
    assert tokens.sum() == 200 and tokens[0] == 200, f"{name}: residuals not all zero: tokens {tokens.tolist()}"
    assert np.array_equal(rebuilt, z)


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_one_wrong_value_costs_one_nonzero_residual_per_row_that_sees_it(name):
    """A kick at a warm-up row changes only that row's residual: the later rows are predicted from
    the kicked values by the same rule, so they stay exact (a row predicted from the wrong lags
    would not)."""
    p = PREDICTORS[name]
    model = model_with(p)
    for row in (0, 1, 2, 3, 5, 40):
        z = exactly_predicted(p, 120, kick={row: 9})
        tokens, _ = coded_tokens(model, z)
        assert tokens[0] == 119 and tokens[1:].sum() == 1, (name, row, tokens.tolist())


def test_frames_use_the_same_prediction_from_their_first_row():
    p = PREDICTORS["warm-up orders 1..3 then order 4"]
    model = model_with(p)
    trained = qres.Model(model.channels, tables=np.stack([model.kernel_params()[8][0]]))  # frames carry tables
    codec = qres.Codec(trained)
    x = exactly_predicted(p, 64, kick={})
    assert np.array_equal(codec.decode_frame(codec.encode_frame(x)), x)
    # the frame coder runs the same rule from its first row: residual 0 everywhere
    tokens, _ = coded_tokens(trained, x)
    assert tokens[0] == 64, tokens.tolist()


@pytest.mark.parametrize("bound", [1, 2, 7, 100])
def test_error_bounded_values_stay_within_the_bound_and_use_all_of_it(bound):
    rng = np.random.default_rng(bound)
    z = np.cumsum(rng.integers(-3 * bound - 5, 3 * bound + 6, 4000)).astype(np.int64)
    model = qres.Model.fit(z, tables=False, bounds=np.array([bound]))
    _, rebuilt = coded_tokens(model, z, bounds=np.array([bound]))
    err = rebuilt - z
    assert np.abs(err).max() == bound  # within B, and reaching it: the step is exactly 2B + 1
    assert set(np.unique(err).tolist()) == set(range(-bound, bound + 1))  # every offset a step of 2B + 1 leaves


def test_error_bounded_files_keep_max_error_in_the_values_own_units():
    rng = np.random.default_rng(5)
    x = np.round(np.cumsum(rng.normal(0, 0.4, 5000)), 2)
    for max_error in (0.01, 0.05, 0.5):
        back = qres.decompress(qres.compress(x, max_error=max_error))
        err = np.abs(back - x)
        assert err.max() <= max_error and err.max() > 0.5 * max_error
