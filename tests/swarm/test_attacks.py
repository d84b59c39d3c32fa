"""Attacks (`qres.swarm.attacks`): each forges what its docstring says, and only for Byzantine rows."""

from __future__ import annotations

import numpy as np
import pytest

from qres.fixed import Q16_ONE
from qres.swarm import attacks
from qres.swarm.attacks import ATTACKS, AttackContext

N, DIM = 30, 8
FORGERS = ("bias", "sign_flip", "gaussian", "alie", "ipm", "sybil", "entropy", "cartel")  # change proposals


def context(seed: int = 0, byz_fraction: float = 0.3) -> AttackContext:
    rng = np.random.default_rng(seed)
    proposals = rng.integers(-Q16_ONE, Q16_ONE, (N, DIM)).astype(np.int64)
    byz = np.zeros(N, bool)
    byz[rng.choice(N, int(byz_fraction * N), replace=False)] = True
    base = rng.integers(-Q16_ONE // 4, Q16_ONE // 4, DIM).astype(np.int64)
    direction = rng.normal(size=DIM)
    direction /= np.linalg.norm(direction)
    return AttackContext(proposals, byz, base, direction, np.random.default_rng(seed + 100))


@pytest.mark.parametrize("name", list(ATTACKS))
def test_honest_rows_unchanged_and_input_not_modified(name):
    ctx = context()
    before = ctx.proposals.copy()
    out = attacks.make(name).forge(ctx)
    assert out.shape == (N, DIM) and out.dtype == np.int64
    np.testing.assert_array_equal(out[~ctx.byzantine], before[~ctx.byzantine])
    np.testing.assert_array_equal(ctx.proposals, before)  # the honest proposals are not overwritten


@pytest.mark.parametrize("name", FORGERS)
def test_forging_attacks_change_every_byzantine_row(name):
    ctx = context()
    out = attacks.make(name).forge(ctx)
    assert (out[ctx.byzantine] != ctx.proposals[ctx.byzantine]).any(axis=1).all()


@pytest.mark.parametrize("name", ["none", "slander", "straggler"])
def test_non_forging_attacks_send_the_honest_proposals(name):
    ctx = context()
    np.testing.assert_array_equal(attacks.make(name).forge(ctx), ctx.proposals)


@pytest.mark.parametrize("name", ["bias", "sybil"])
def test_bias_adds_exactly_the_magnitude(name):
    ctx = context()
    out = attacks.make(name).forge(ctx)
    shift = round(attacks.Bias.magnitude * Q16_ONE)
    np.testing.assert_array_equal(out[ctx.byzantine], ctx.proposals[ctx.byzantine] + shift)


def test_sign_flip_mirrors_the_update_around_base():
    ctx = context()
    out = attacks.make("sign_flip").forge(ctx)
    b = ctx.byzantine
    np.testing.assert_array_equal(out[b] - ctx.base, -(ctx.proposals[b] - ctx.base))


def test_gaussian_noise_has_the_stated_spread_and_follows_the_seed():
    ctx = context(byz_fraction=0.9)
    a = attacks.make("gaussian").forge(ctx)
    noise = (a - ctx.proposals)[ctx.byzantine] / Q16_ONE
    assert abs(noise.std() - attacks.Gaussian.sigma) < 0.1
    assert abs(noise.mean()) < 0.1
    again = attacks.make("gaussian").forge(context(byz_fraction=0.9))  # same seed, same noise
    np.testing.assert_array_equal(a, again)


def test_alie_rows_are_mean_minus_z_std_of_the_honest():
    ctx = context()
    out = attacks.make("alie").forge(ctx)
    h = ctx.proposals[~ctx.byzantine].astype(np.float64)
    z = attacks.Alie.z(len(ctx.byzantine), int(ctx.byzantine.sum()))
    expect = h.mean(axis=0) - z * h.std(axis=0)
    assert np.abs(out[ctx.byzantine] - expect).max() <= 0.5 + 1e-9
    assert (out[ctx.byzantine] == out[ctx.byzantine][0]).all()  # all attackers agree


@pytest.mark.parametrize("n, f, z", [(100, 30, 0.806), (50, 10, 0.468), (100, 0, 0.0)])
def test_alie_z_is_the_papers_z_max(n, f, z):
    """s = floor(n/2 + 1) - f supporters needed; z = Phi^-1((n - s) / n) (Baruch et al. 2019)."""
    assert attacks.Alie.z(n, f) == pytest.approx(z, abs=1e-3)


def test_ipm_rows_are_base_minus_epsilon_times_the_mean_honest_update():
    ctx = context()
    out = attacks.make("ipm").forge(ctx)
    update = ctx.proposals[~ctx.byzantine].astype(np.float64).mean(axis=0) - ctx.base
    expect = ctx.base - attacks.InnerProduct.epsilon * update
    assert np.abs(out[ctx.byzantine] - expect).max() <= 0.5 + 1e-9
    # the forged update points against the honest one
    assert float(np.dot(out[ctx.byzantine][0] - ctx.base, update)) < 0


def test_cartel_rows_share_one_direction_of_the_stated_norm():
    ctx = context()
    out = attacks.make("cartel").forge(ctx)
    shift = (out - ctx.proposals)[ctx.byzantine].astype(np.float64)
    expect = attacks.Cartel.norm * Q16_ONE * ctx.shared_direction
    assert np.abs(shift - expect).max() <= 1.0
    assert np.abs(shift - shift[0]).max() <= 1.0  # one shared bias, not one per attacker


def test_forged_rows_are_bounded():
    """Forged values are clipped to +-2**30, so an attack cannot overflow a receiver's int64 sums."""
    ctx = context()
    huge = AttackContext(np.full((N, DIM), 2**40, np.int64), ctx.byzantine, ctx.base, ctx.shared_direction, ctx.rng)
    out = attacks.make("bias").forge(huge)
    assert (np.abs(out[ctx.byzantine]) <= 2**30).all()


def test_no_byzantine_rows_means_nothing_changes():
    ctx = context(byz_fraction=0.0)
    for name in ATTACKS:
        np.testing.assert_array_equal(attacks.make(name).forge(ctx), ctx.proposals, err_msg=name)


FLAGS = {
    "sybils": {"sybil"},
    "slanders": {"slander"},
    "votes_storm": {"entropy"},
    "straggles": {"straggler"},
}


@pytest.mark.parametrize("flag", list(FLAGS))
def test_flags_are_set_on_exactly_the_right_attacks(flag):
    have = {name for name in ATTACKS if getattr(attacks.make(name), flag)}
    assert have == FLAGS[flag]


def test_registry_and_make():
    assert len(ATTACKS) == len({cls.name for cls in ATTACKS.values()})
    for name, cls in ATTACKS.items():
        a = attacks.make(name)
        assert isinstance(a, cls) and a.name == name
    with pytest.raises(ValueError, match="nope") as e:
        attacks.make("nope")
    for name in ATTACKS:
        assert name in str(e.value)
