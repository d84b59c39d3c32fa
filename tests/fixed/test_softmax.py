"""Integer softmax: exact sum, accuracy against float64 softmax, determinism of the remainder."""

from decimal import Decimal, getcontext

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qres.fixed import Q16_MAX, Q16_MIN, Q16_ONE, q16_softmax, to_q16
from qres.fixed.softmax import _LN2_Q40, _exp_neg_q40

TOL = 1 + 2**-10  # documented bound, in raw units (1/65536)


def float_softmax_raw(raw, axis=-1):
    x = np.asarray(raw, dtype=np.float64) / Q16_ONE
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return Q16_ONE * z / z.sum(axis=axis, keepdims=True)


def test_ln2_constant():
    getcontext().prec = 50
    assert _LN2_Q40 == int((Decimal(2).ln() * 2**40).to_integral_value())


def test_exp_accuracy_full_range():
    u = np.arange(0, 32 * Q16_ONE + 1, dtype=np.int64)  # every Q16.16 value in [0, 32]
    got = _exp_neg_q40(u).astype(np.float64)
    ref = np.exp(-u / Q16_ONE) * 2.0**40
    assert np.all(np.abs(got - ref) <= 2e-9 * ref + 0.5)


def test_golden():
    assert q16_softmax([0, 0, 0]).tolist() == [21846, 21845, 21845]  # remainder to the lowest index
    assert q16_softmax([5]).tolist() == [Q16_ONE]
    assert q16_softmax([Q16_MIN, Q16_MAX]).tolist() == [0, Q16_ONE]
    assert q16_softmax([0, Q16_ONE * 2]).tolist() == [7812, 57724]  # 65536 / (1 + e**2) = 7812.4
    assert q16_softmax(np.zeros(7, dtype=np.int32)).tolist() == [9363] * 2 + [9362] * 5  # 65536 = 7*9362 + 2
    out = q16_softmax(to_q16([1.0, 0.0, -3.0]))
    assert out.dtype == np.int32 and out.tolist() == [47278, 17392, 866]


def test_remainder_goes_to_largest_fraction_not_lowest_index():
    # Exact quotients are 43690.67 and 21845.33: the floors sum to 65535, and the
    # missing unit must go to entry 1 (larger fraction), not entry 0.
    x = np.array([0, to_q16(np.log(2.0))], dtype=np.int32)
    q = float_softmax_raw(x)
    assert np.allclose(q, [21845.33, 43690.67], atol=0.01)
    assert q16_softmax(x).tolist() == [21845, 43691]


logit_arrays = hnp.arrays(
    np.int32,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12),
    elements=st.integers(Q16_MIN, Q16_MAX),
)
moderate_arrays = hnp.arrays(
    np.int32,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12),
    elements=st.integers(-20 * Q16_ONE, 20 * Q16_ONE),
)


@given(st.one_of(logit_arrays, moderate_arrays), st.data())
def test_sum_and_accuracy(raw, data):
    axis = data.draw(st.integers(-raw.ndim, raw.ndim - 1))
    p = q16_softmax(raw, axis=axis)
    assert p.dtype == np.int32 and p.shape == raw.shape
    assert np.all(p.sum(axis=axis, dtype=np.int64) == Q16_ONE)
    assert np.all(p >= 0)
    assert np.max(np.abs(p - float_softmax_raw(raw, axis))) <= TOL


@given(moderate_arrays, st.integers(-1000 * Q16_ONE, 1000 * Q16_ONE))
def test_shift_invariant(raw, c):
    assert np.array_equal(q16_softmax(raw), q16_softmax(raw.astype(np.int64) + c))


def test_long_axis_accuracy():
    rng = np.random.default_rng(7)
    raw = rng.integers(-8 * Q16_ONE, 8 * Q16_ONE, size=(4, 5000)).astype(np.int32)
    raw[0, :] = 0
    raw[1, 17] = 30 * Q16_ONE  # one dominant entry and many tiny ones
    p = q16_softmax(raw)
    assert np.all(p.sum(axis=1) == Q16_ONE)
    assert np.max(np.abs(p - float_softmax_raw(raw))) <= TOL


def test_axis_argument_and_edge_cases():
    rng = np.random.default_rng(3)
    raw = rng.integers(-5 * Q16_ONE, 5 * Q16_ONE, size=(3, 4, 5)).astype(np.int32)
    assert np.array_equal(q16_softmax(raw, axis=0), np.moveaxis(q16_softmax(np.moveaxis(raw, 0, -1)), -1, 0))
    assert np.array_equal(q16_softmax(raw, axis=1), q16_softmax(raw, axis=-2))
    assert q16_softmax(np.zeros((2, 0), dtype=np.int32)).shape == (2, 0)
    with pytest.raises(ValueError):
        q16_softmax(np.int32(3))
    with pytest.raises(TypeError):
        q16_softmax([0.5, 1.0])
