import numpy as np
import pytest

from qres.fixed import Q16_ONE, from_q16, to_q16
from qres.swarm.aggregate import (
    WEIGHT_CAP_Q16,
    Adaptive,
    Krum,
    Mean,
    Median,
    MultiKrum,
    ReputationWeighted,
    TrimmedMean,
    reputation_exponent,
    reputation_weights,
    squared_distances,
)

ONE = Q16_ONE


def q(values):
    return np.asarray(to_q16(np.asarray(values, dtype=np.float64)), dtype=np.int32)


def rand_updates(seed, k, dim, span=2**20):
    return np.random.default_rng(seed).integers(-span, span, size=(k, dim), dtype=np.int64).astype(np.int32)


# ----------------------------------------------------------------------------- hand-made cases


def test_mean_rounds_half_away_from_zero():
    assert Mean()(np.array([[1], [2]])).tolist() == [2]
    assert Mean()(np.array([[-1], [-2]])).tolist() == [-2]
    assert Mean()(np.array([[1], [1], [2]])).tolist() == [1]  # 4/3
    out = Mean()(np.array([[2**31 - 1, -(2**31)], [2**31 - 1, -(2**31)]], dtype=np.int32))
    assert out.dtype == np.int64 and out.tolist() == [2**31 - 1, -(2**31)]


def test_trimmed_mean_removes_outlier():
    honest = q([[1.0, -1.0], [1.5, -1.5], [0.5, -0.5], [1.0, -1.0], [1.25, -0.75]])
    evil = q([[30000.0, -30000.0]])
    x = np.concatenate([honest, evil])  # k = 6: 0.2 * 6 -> cut 1 per side
    assert TrimmedMean(0.2).cut(6) == 1
    out = TrimmedMean(0.2)(x)
    # kept per coordinate: 1.0, 1.0, 1.25, 1.5 -> 1.1875 ; -1.5, -1.0, -1.0, -0.75 -> -1.0625
    assert out.tolist() == [int(to_q16(1.1875)), int(to_q16(-1.0625))]
    assert Mean()(x)[0] > 5000 * ONE  # the plain mean is dragged away


def test_trimmed_mean_cut_is_exact_decimal():
    assert TrimmedMean(0.29).cut(100) == 29  # float 0.29 * 100 = 28.999...
    assert TrimmedMean(0.2).cut(4) == 0
    assert TrimmedMean(0.0)(np.array([[1], [2]])).tolist() == [2]
    with pytest.raises(ValueError, match="beta"):
        TrimmedMean(0.5)


def test_median_even_k_means_two_middle_values():
    x = np.array([[1, -1, 0], [2, -2, 10], [100, -100, 3], [-50, 50, 4]])
    # sorted col0: -50 1 2 100 -> (1+2)/2 = 1.5 -> 2; col1: -100 -2 -1 50 -> -1.5 -> -2; col2: 0 3 4 10 -> 3.5 -> 4
    assert Median()(x).tolist() == [2, -2, 4]
    assert Median()(x[:3]).tolist() == [2, -2, 3]


def test_krum_picks_inlier_cluster():
    rng = np.random.default_rng(1)
    inliers = q(1.0 + 0.01 * rng.standard_normal((7, 20)))
    outliers = q(-50.0 + 0.01 * rng.standard_normal((2, 20)))
    x = np.concatenate([outliers, inliers])
    sel = int(Krum(2).select(x))
    assert sel >= 2
    assert np.array_equal(Krum(2)(x), x[sel].astype(np.int64))
    kept = MultiKrum(2, 5).select(x)
    assert kept.shape == (5,) and (kept >= 2).all()
    assert np.array_equal(MultiKrum(2, 5)(x), Mean()(x[kept]))


def test_krum_ties_go_to_lowest_index():
    x = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [5, 5]])  # 0..3 form a square: equal scores
    assert int(Krum(1).select(x)) == 0
    assert MultiKrum(1, 4).select(x).tolist() == [0, 1, 2, 3]


def test_squared_distances_exact_at_int32_extremes():
    rng = np.random.default_rng(2)
    x = rng.integers(-(2**31), 2**31, size=(5, 4000), dtype=np.int64)
    x[0] = 2**31 - 1
    x[1] = -(2**31)
    hi, lo = squared_distances(x[None])
    rows = [[int(v) for v in r] for r in x]
    for i in range(5):
        for j in range(5):
            exact = sum((a - b) ** 2 for a, b in zip(rows[i], rows[j]))
            assert int(hi[0, i, j]) * 2**32 + int(lo[0, i, j]) == exact
    assert int(hi[0, 0, 1]) * 2**32 + int(lo[0, 0, 1]) == 4000 * (2**32 - 1) ** 2 > 2**63  # overflows int64


def test_krum_separates_scores_that_float64_cannot():
    # Q = 0 and R = Q + (1, -1, 0, ...) are equally far from P and S to within 2, at ~2**68:
    # float64 scores tie (and would pick R at index 0); exact scores pick Q.
    dim, big = 64, 2**31 - 1
    r = np.zeros(dim, np.int64)
    r[0], r[1] = 1, -1
    x = np.stack([r, np.zeros(dim, np.int64), np.full(dim, big), np.full(dim, -big)])
    sh, sl = Krum(0).scores(x[None])
    s = [int(h) * 2**32 + int(lo) for h, lo in zip(sh[0], sl[0])]
    assert s[0] == s[1] + 2 and float(s[0]) == float(s[1])
    assert int(Krum(0).select(x)) == 1
    assert MultiKrum(0, 2).select(x).tolist() == [1, 0]


def test_reputation_weights_cap_and_exponent():
    rep = np.array([ONE, ONE // 2, 0, int(to_q16(0.9))])
    w2 = reputation_weights(rep, 10)
    assert w2.tolist() == [WEIGHT_CAP_Q16, ONE // 4, 0, WEIGHT_CAP_Q16]  # 0.81 -> capped at 0.8
    w3 = reputation_weights(rep, 30)
    assert w3.tolist() == [WEIGHT_CAP_Q16, ONE // 8, 0, round(int(rep[3]) ** 3 / 2**32)]
    w35 = reputation_weights(rep, 100)
    assert w35[:3].tolist() == [WEIGHT_CAP_Q16, 5793, 0]  # 0.125 * isqrt-based sqrt(0.5) = 8192 * 46340 / 65536 = 5792.5 -> 5793
    assert WEIGHT_CAP_Q16 == 52429


def test_exponent_switches_at_20_and_50_nodes():
    assert [reputation_exponent(n) for n in (1, 19, 20, 50, 51, 10_000)] == [2.0, 2.0, 3.0, 3.0, 3.5, 3.5]
    rep = np.array([ONE // 2])
    assert reputation_weights(rep, 19).tolist() == [ONE // 4]
    assert reputation_weights(rep, 20).tolist() == [ONE // 8]
    assert reputation_weights(rep, 50).tolist() == [ONE // 8]
    assert reputation_weights(rep, 51).tolist() == [5793]


def test_reputation_weighted_mean():
    x = q([[1.0, 2.0], [3.0, -2.0], [100.0, 100.0]])
    rep = np.array([ONE, ONE // 2, 0])  # weights 0.8, 0.25, 0 (g = 2)
    out = ReputationWeighted(5)(x, rep)
    expect = (0.8 * np.array([1.0, 2.0]) + 0.25 * np.array([3.0, -2.0])) / 1.05
    assert np.abs(from_q16(out) - expect).max() < 2 / ONE
    # all weights zero -> zeros
    assert ReputationWeighted(5)(x, np.zeros(3, np.int64)).tolist() == [0, 0]
    with pytest.raises(ValueError, match="required"):
        ReputationWeighted(5)(x)


def test_adaptive_switches_rule_by_regime():
    rng = np.random.default_rng(3)
    x = rand_updates(3, 10, 8)
    rep = rng.integers(ONE // 4, ONE + 1, 10)
    a = Adaptive(30)
    assert np.array_equal(a(x, rep), ReputationWeighted(30)(x, rep))
    assert np.array_equal(a(x, rep, regime="calm"), ReputationWeighted(30)(x, rep))
    assert np.array_equal(a(x, rep, regime="prestorm"), TrimmedMean(0.2)(x))
    assert np.array_equal(a(x, None, regime="STORM"), TrimmedMean(0.2)(x))
    assert np.array_equal(a(x, rep, regime=2), TrimmedMean(0.2)(x))
    with pytest.raises(ValueError, match="regime"):
        a(x, rep, regime="hurricane")
    # batched with a per-node regime
    b = np.stack([x, x[::-1]])
    rb = np.stack([rep, rep[::-1]])
    out = a(b, rb, regime=np.array([0, 1]))
    assert np.array_equal(out[0], ReputationWeighted(30)(x, rep))
    assert np.array_equal(out[1], TrimmedMean(0.2)(x))


# ----------------------------------------------------------------------------- bad input


def test_rejects_bad_input():
    x = rand_updates(0, 6, 4)
    with pytest.raises(ValueError, match="shape"):
        Mean()(x[0])
    with pytest.raises(ValueError, match="shape"):
        Mean()(x[None, None])
    with pytest.raises(ValueError, match="integer"):
        Mean()(x.astype(np.float64))
    with pytest.raises(ValueError, match="int32 range"):
        Mean()(np.array([[2**31]], dtype=np.int64))
    with pytest.raises(ValueError, match="k >= 1"):
        Mean()(np.zeros((0, 4), np.int32))
    with pytest.raises(ValueError, match="need k > 2f \\+ 2"):
        Krum(2)(x)  # k = 6 <= 6
    with pytest.raises(ValueError, match="need k > 2f \\+ 2"):
        MultiKrum(2, 2)(x)
    with pytest.raises(ValueError, match="exceeds"):
        MultiKrum(1, 7)(x)
    with pytest.raises(ValueError, match="reputation: expected shape"):
        ReputationWeighted(5)(x, np.full(5, ONE))
    with pytest.raises(ValueError, match="reputation: values"):
        ReputationWeighted(5)(x, np.full(6, ONE + 1))
    with pytest.raises(ValueError, match="f must"):
        Krum(-1)


# ----------------------------------------------------------------------------- properties


def all_aggregators():
    return [Mean(), TrimmedMean(0.2), Median(), Krum(2), MultiKrum(2, 4), ReputationWeighted(60), Adaptive(10)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("agg", all_aggregators(), ids=lambda a: a.name)
def test_permutation_invariant_and_repeatable(agg, seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(7, 14))
    x = rand_updates(seed, k, 33, span=2**31)
    rep = rng.integers(0, ONE + 1, k)
    perm = rng.permutation(k)
    out = agg(x, rep)
    assert out.dtype == np.int64 and out.shape == (33,)
    assert np.array_equal(out, agg(x, rep))  # bit-identical on repeat
    assert np.array_equal(out, agg(x[perm], rep[perm]))
    if isinstance(agg, Krum) and not isinstance(agg, MultiKrum):
        assert np.array_equal(x[int(agg.select(x))], x[perm][int(agg.select(x[perm]))])


@pytest.mark.parametrize("agg", all_aggregators(), ids=lambda a: a.name)
def test_batched_equals_per_node(agg):
    rng = np.random.default_rng(7)
    b = rng.integers(-(2**31), 2**31, size=(4, 9, 17), dtype=np.int64)
    rep = rng.integers(0, ONE + 1, size=(4, 9))
    out = agg(b, rep)
    assert out.shape == (4, 17)
    for n in range(4):
        assert np.array_equal(out[n], agg(b[n], rep[n]))


def test_krum_runs_on_50_by_100000():
    x = rand_updates(11, 50, 100_000, span=2**31)
    x[7] = 0  # make one row the clear winner: the others are spread far apart
    x[8:20] = rand_updates(12, 12, 100_000, span=4)
    sel = int(Krum(10).select(x))
    assert 7 <= sel < 20
    assert np.array_equal(Krum(10)(x), x[sel].astype(np.int64))
    assert MultiKrum(10, 13)(x).shape == (100_000,)


# ----------------------------------------------------------------------------- Flower oracle

flwr_agg = pytest.importorskip("flwr.server.strategy.aggregate")


def to_results(x, num_examples=None):
    f = from_q16(x)
    n = [1] * len(x) if num_examples is None else [int(v) for v in num_examples]
    return [([f[i]], n[i]) for i in range(len(x))]


def assert_within_one_unit(ours, flower_float):
    assert np.abs(ours - np.asarray(to_q16(flower_float), np.int64)).max() <= 1


@pytest.mark.parametrize("seed", range(6))
def test_oracle_mean_median_trimmed(seed):
    rng = np.random.default_rng(100 + seed)
    k = [5, 6, 10, 11, 15, 20][seed]
    x = rand_updates(seed, k, 50)
    r = to_results(x)
    assert_within_one_unit(Mean()(x), flwr_agg.aggregate(r)[0])
    assert_within_one_unit(Median()(x), flwr_agg.aggregate_median(r)[0])
    assert_within_one_unit(TrimmedMean(0.2)(x), flwr_agg.aggregate_trimmed_avg(r, 0.2)[0])
    assert_within_one_unit(TrimmedMean(0.1)(x), flwr_agg.aggregate_trimmed_avg(r, 0.1)[0])
    rep = rng.integers(ONE // 10, ONE + 1, k)
    for swarm in (10, 30, 80):
        w = reputation_weights(rep, swarm)
        ours = ReputationWeighted(swarm)(x, rep)
        assert_within_one_unit(ours, flwr_agg.aggregate(to_results(x, w))[0])


@pytest.mark.parametrize("seed", range(6))
def test_oracle_krum(seed):
    k, f = [(7, 2), (9, 3), (12, 4), (20, 5), (30, 10), (8, 1)][seed]
    x = rand_updates(seed, k, 40)
    r = to_results(x)
    chosen = flwr_agg.aggregate_krum(r, f, 0)[0]
    assert np.array_equal(Krum(f)(x), np.asarray(to_q16(chosen), np.int64))
    for m in (1, 3, k - f):
        assert_within_one_unit(MultiKrum(f, m)(x), flwr_agg.aggregate_krum(r, f, m)[0])
