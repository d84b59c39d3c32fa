"""Round trips over the classes of sensor data users bring (issue "the codec on data it has never
seen"), each as a hypothesis strategy: whatever the codec finds or misses in them, every value
comes back with its bits, and error-bounded coding stays within its bound.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import qres

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
rows = st.integers(1, 3000)
seeds = st.integers(0, 2**32 - 1)


def exact(x: np.ndarray) -> None:
    back = qres.decompress(qres.compress(x))
    assert back.dtype == x.dtype and back.shape == x.shape
    assert np.array_equal(np.ascontiguousarray(back).view(np.uint8), np.ascontiguousarray(x).view(np.uint8))


def walk(rng: np.random.Generator, n: int, step: float) -> np.ndarray:
    return np.cumsum(rng.normal(0, step, n))


@SETTINGS
@given(rows, seeds, st.sampled_from([0.1, 0.01, 0.5, 0.25]), st.booleans())
def test_grid_readings_through_float32_and_shortest_printing(n, seed, grid, printed):
    """Readings on a uniform grid stored as float32 (so k * 0.1 is the float32 nearest it), and
    the same values printed in their shortest form and read back as float64."""
    rng = np.random.default_rng(seed)
    k = np.round(walk(rng, n, 3) + 200)
    x = (k * grid).astype(np.float32)
    exact(x)
    if printed:
        exact(np.array([float(repr(v)) for v in x.tolist()], np.float64))


@SETTINGS
@given(rows, seeds, st.floats(1e-4, 10), st.floats(-500, 500), st.sampled_from([np.float32, np.float64]))
def test_integer_counts_behind_a_calibration(n, seed, scale, offset, dtype):
    """ADC counts turned into units by a gain and an offset."""
    rng = np.random.default_rng(seed)
    counts = np.clip(np.round(walk(rng, n, 4) + 2048), 0, 4095)
    exact((counts * scale + offset).astype(dtype))


@SETTINGS
@given(rows, seeds, st.sampled_from([2, 3, 4, 6, 10, 12, 60]), st.sampled_from([15, 17]))
def test_averages_printed_to_15_or_17_significant_digits(n, seed, window, digits):
    rng = np.random.default_rng(seed)
    readings = np.round(walk(rng, n * window, 0.5) * 10) / 10  # a 0.1 grid
    means = readings[: n * window].reshape(n, window).mean(axis=1)
    exact(np.array([float(f"{v:.{digits}g}") for v in means.tolist()]))


@SETTINGS
@given(rows, seeds, st.floats(0.001, 2.0), st.integers(0, 4))
def test_slow_signals_with_quantisation_noise(n, seed, noise, decimals):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 20 + 5 * np.sin(t / 300) + rng.normal(0, noise, n)
    exact(np.round(x, decimals))


@SETTINGS
@given(rows, seeds)
def test_bursts_steps_and_constant_runs(n, seed):
    rng = np.random.default_rng(seed)
    levels = np.repeat(rng.integers(-1000, 1000, n // 20 + 1), 20)[:n]
    x = levels.astype(np.int64)
    bursts = rng.random(n) < 0.02
    x[bursts] += rng.integers(-10**6, 10**6, bursts.sum())
    exact(x)
    exact(x.astype(np.int16, casting="unsafe"))


@SETTINGS
@given(st.lists(st.sampled_from(["walk", "constant", "noise", "steps", "grid"]), min_size=2, max_size=6), seeds)
def test_mixtures_that_change_from_segment_to_segment(kinds, seed):
    rng = np.random.default_rng(seed)
    parts = []
    for kind in kinds:
        m = int(rng.integers(50, 800))
        parts.append({
            "walk": np.round(walk(rng, m, 2), 2),
            "constant": np.full(m, float(rng.integers(-50, 50))),
            "noise": rng.normal(0, 1e3, m),
            "steps": np.repeat(rng.normal(0, 10, m // 10 + 1), 10)[:m],
            "grid": np.round(walk(rng, m, 1)) * 0.5,
        }[kind])
    exact(np.concatenate(parts))


@SETTINGS
@given(rows, seeds, st.integers(14, 17))
def test_columns_whose_exact_decimal_integers_are_huge(n, seed, decimals):
    rng = np.random.default_rng(seed)
    x = np.round(rng.random(n) * 100, decimals)
    exact(x)


@SETTINGS
@given(rows, seeds, st.sampled_from(["grid32", "calibrated", "averages", "huge"]))
def test_error_bounded_coding_stays_within_the_bound_on_every_class(n, seed, kind):
    rng = np.random.default_rng(seed)
    base = walk(rng, n, 3) + 100
    x = {
        "grid32": (np.round(base) * 0.1).astype(np.float32).astype(np.float64),
        "calibrated": np.round(base) * 0.0123 + 4.5,
        "averages": np.array([float(f"{v:.15g}") for v in (np.round(base * 10) / 30).tolist()]),
        "huge": np.round(rng.random(n) * 100, 16),
    }[kind]
    bound = max(0.01 * float(np.std(x)), 1e-9)
    back = qres.decompress(qres.compress(x, max_error=bound))
    assert np.abs(back - x).max() <= bound
