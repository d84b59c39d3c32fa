import numpy as np
import pytest

from qres.fixed import Q16_ONE, to_q16
from qres.swarm.reputation import (
    BAN_BELOW,
    PENALTY,
    START,
    Reputation,
    cartel_groups,
    grubbs_critical,
    grubbs_outliers,
    t_upper_quantile,
)


def test_scores_start_at_half_and_bans_below_a_fifth():
    rep = Reputation(3)
    assert rep.score.tolist() == [START] * 3 and START == Q16_ONE // 2
    bad = np.array([True, False, False])
    rep.penalise(bad)
    rep.penalise(bad)
    assert not rep.banned[0]  # 0.5 - 2 x 0.15 = 0.2: at the line, not below it
    rep.penalise(bad)
    assert rep.score[0] < BAN_BELOW and rep.banned.tolist() == [True, False, False]
    for _ in range(100):
        rep.reward(np.array([False, True, False]))
    assert rep.score[1] == Q16_ONE  # saturates at 1.0


def test_a_penalty_bans_just_below_a_fifth_and_not_at_or_just_above_it():
    line = int(to_q16(0.2))
    rep = Reputation(3)
    rep.score[:] = [line - 1 + PENALTY, line + PENALTY, line + 1 + PENALTY]
    rep.penalise(np.ones(3, bool))
    assert rep.score.tolist() == [line - 1, line, line + 1]
    assert rep.banned.tolist() == [True, False, False]


@pytest.mark.parametrize("p,dof,expected", [(0.005, 10, 3.169), (0.025, 5, 2.571), (0.05, 30, 1.697)])
def test_t_quantiles_match_tables(p, dof, expected):
    assert t_upper_quantile(p, dof) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("k,expected", [(5, 1.749), (10, 2.410), (20, 2.884), (50, 3.336), (100, 3.600)])
def test_grubbs_critical_values_match_tables(k, expected):
    assert grubbs_critical(k) == pytest.approx(expected, abs=2e-3)


def test_grubbs_flags_the_outlier_and_nothing_else():
    rng = np.random.default_rng(1)
    honest = rng.normal(0, 100, size=(30, 50)).astype(np.int64)
    assert not grubbs_outliers(honest).any()
    attacked = honest.copy()
    attacked[7] += 5000
    flagged = grubbs_outliers(attacked)
    assert flagged.tolist() == [i == 7 for i in range(30)]


def test_cartel_of_aligned_suspects_is_grouped():
    rng = np.random.default_rng(2)
    updates = rng.normal(0, 100, size=(40, 64))
    direction = rng.normal(0, 1, 64)
    cartel = [3, 11, 17, 25, 31]
    updates[cartel] += 800 * direction / np.linalg.norm(direction) * 8 + rng.normal(0, 10, (5, 64))
    suspects = np.zeros(40, bool)
    suspects[cartel + [5, 9]] = True  # two honest nodes suspected by mistake
    groups = cartel_groups(updates.astype(np.int64), suspects)
    assert [g.tolist() for g in groups] == [cartel]
    # three aligned suspects are not yet a cartel
    few = np.zeros(40, bool)
    few[cartel[:3]] = True
    assert cartel_groups(updates.astype(np.int64), few) == []
