"""The channel transforms and structure finders engage on the data they are for, and stay exact."""

import numpy as np
import pytest

import qres
from qres.codec import rational
from qres.codec.predictor import fit_linear, seasonal_periods
from qres.codec.transform import Transform, fit_lattice, fit_transform


def _adc_readings(n: int, gain: float, offset: float, seed: int) -> np.ndarray:
    """round(gain * count + offset) of a slowly wandering ADC count, as a calibrated sensor reports."""
    rng = np.random.default_rng(seed)
    counts = np.cumsum(rng.integers(-3, 4, n)) + 200
    return np.round(gain * counts + offset).astype(np.int64)


def test_lattice_found_under_calibrated_integers():
    k = _adc_readings(5000, 9.80665, 3.3, seed=1)
    found = fit_lattice(k)
    assert found is not None
    step, offset, shift, corrections = found
    assert abs(step / 2**shift - 9.80665) < 1e-3
    t = fit_transform(k)
    assert t.shift == shift
    z, pos, bits, slips = t.forward(k)
    assert len(pos) == 0
    assert np.array_equal(t.inverse(z, pos, bits, slips), k)
    # the lattice index moves by counts, not by mg: about log2(9.8) bits cheaper per value
    plain = len(qres.compress(k.astype(np.float64) + 0.5))  # off the lattice: no lattice applies
    assert len(qres.compress(k)) < 0.8 * plain


def test_no_lattice_on_plain_or_noisy_integers():
    rng = np.random.default_rng(2)
    assert fit_lattice(np.cumsum(rng.integers(-5, 6, 5000))) is None
    assert fit_lattice(rng.integers(0, 10**6, 5000)) is None


def test_lattice_slips_beyond_the_table_are_coded_not_lost():
    # train a frame model on a narrow range, then code values far outside it
    k = _adc_readings(8000, 10.0991, -5009.2, seed=3)
    train, rest = k[:500], k[500:]
    model = qres.Model.fit(train)
    codec = qres.Codec(model)
    for i in range(0, len(rest) - 64, 64):
        frame = rest[i : i + 64]
        assert np.array_equal(codec.decode_frame(codec.encode_frame(frame)), frame)


def _r_style_means(n: int, seed: int) -> np.ndarray:
    """Means of 1..3 readings on a 0.01 grid, printed with 15 significant digits (as R writes them)."""
    rng = np.random.default_rng(seed)
    level = np.cumsum(rng.integers(-3, 4, n)) + 2000
    out = []
    for v in level.tolist():
        m = int(rng.integers(1, 4))
        total = sum(v + int(rng.integers(-2, 3)) for _ in range(m))
        out.append(float(f"{total / (100 * m):.15g}"))
    return np.array(out)


def test_averaged_readings_are_recognised_and_exact():
    x = _r_style_means(3000, seed=4)
    t = fit_transform(x)
    assert t.decimals >= 12  # as plain decimals the column looks like noise
    rule = rational.find(x, t.decimals)
    assert rule is not None and rule.multiplier % 6 == 0 and rule.digits == 15
    q, rem, patches = rational.split(x, rule)
    assert np.array_equal(rational.join(q, rem, rule, patches).view(np.uint64), x.view(np.uint64))
    data = qres.compress(x)
    assert np.array_equal(qres.decompress(data).view(np.uint64), x.view(np.uint64))
    assert 8 * len(data) / len(x) < 16  # far below the ~40 bits of 13-digit decimals


def test_daily_and_weekly_cycles_are_found():
    t = np.arange(48 * 7 * 8)
    rng = np.random.default_rng(5)
    daily = np.sin(2 * np.pi * t / 48)
    weekly = np.where((t // 48) % 7 >= 5, -1.0, 0.3)
    z = np.round(1000 * daily + 800 * weekly + rng.normal(0, 20, len(t))).astype(np.int64)
    periods = seasonal_periods([z])
    assert 336 in periods and any(p in periods for p in (47, 48, 49, 50))
    best = fit_linear(z)[0]
    assert best.full_lags and max(best.full_lags) >= 47


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decimal_grid_with_strays_keeps_the_strays_exactly(dtype):
    x = (np.arange(1000) / 10).astype(dtype)
    x[[3, 500]] = [np.nan, np.pi]
    t = fit_transform(x)
    assert t.kind == "decimal" and t.decimals == 1
    z, pos, bits, slips = t.forward(x)
    assert sorted(pos.tolist()) == [3, 500]
    assert np.array_equal(t.inverse(z, pos, bits, slips).view(np.uint8), x.view(np.uint8))


def test_bits_fallback_for_floats_on_no_grid():
    x = np.random.default_rng(6).normal(size=500)
    t = fit_transform(x)
    assert t.kind == "bits"
    assert np.array_equal(t.inverse(*t.forward(x)[:3]).view(np.uint64), x.view(np.uint64))


def test_stream_range_keeps_error_bounded_values_in_the_dtype():
    t = Transform("int", "<u1", 0, 100, 1)
    assert t.stream_range() == (-100, 155)
