"""Attacks on the swarm, for the simulator and the tests: what Byzantine nodes send instead of the truth.

Each attack is an object with `forge(ctx) -> proposals` (the proposals every node sends; honest rows
unchanged) and flags for behaviours beyond the proposal: Sybil identities, slander (false ban
reports), Storm votes (entropy injection) and straggling. Magnitudes are in model-weight units
(Q16.16): the honest consensus of the bundled data has a weight norm of about 0.5 to 1.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ..fixed import Q16_ONE


@dataclass(frozen=True)
class AttackContext:
    """One round as the attackers see it (they are omniscient: they know every honest proposal)."""

    proposals: np.ndarray  # (n, dim) int64: what every node would honestly propose
    byzantine: np.ndarray  # (n,) bool
    base: np.ndarray  # (dim,) the genesis model updates are expressed against
    shared_direction: np.ndarray  # (dim,) float unit vector the cartel agrees on (seeded)
    rng: np.random.Generator


class Attack:
    """No attack: Byzantine nodes behave honestly."""

    name = "none"
    sybils = False  # floods each victim's newcomer slots with fresh identities
    slanders = False  # reports bans of honest peers every round
    votes_storm = False  # votes Storm every round with entropy 1.0
    straggles = False  # misses round deadlines and drops out

    def forge(self, ctx: AttackContext) -> np.ndarray:
        return ctx.proposals

    def _replace(self, ctx: AttackContext, rows: np.ndarray) -> np.ndarray:
        out = ctx.proposals.copy()
        out[ctx.byzantine] = np.clip(np.round(rows), -(2**30), 2**30).astype(np.int64)[ctx.byzantine]
        return out

    def _honest(self, ctx: AttackContext) -> np.ndarray:
        return ctx.proposals[~ctx.byzantine].astype(np.float64)


class Bias(Attack):
    """Bias injection: the honest proposal plus 0.25 on every weight."""

    name = "bias"
    magnitude = 0.25

    def forge(self, ctx):
        return self._replace(ctx, ctx.proposals + self.magnitude * Q16_ONE)


class SignFlip(Attack):
    """Sign flip: the update (proposal minus genesis) reversed."""

    name = "sign_flip"

    def forge(self, ctx):
        return self._replace(ctx, 2 * ctx.base[None].astype(np.int64) - ctx.proposals)


class Gaussian(Attack):
    """Gaussian noise: the honest proposal plus N(0, 0.5^2) on every weight."""

    name = "gaussian"
    sigma = 0.5

    def forge(self, ctx):
        return self._replace(ctx, ctx.proposals + ctx.rng.normal(0, self.sigma * Q16_ONE, ctx.proposals.shape))


class Alie(Attack):
    """"A little is enough" (Baruch et al. 2019): mean of the honest proposals minus z standard
    deviations per weight, with the paper's z_max for n nodes of which f attack:
    s = floor(n/2 + 1) - f, z = Phi^-1((n - s) / n) (0.81 for 30 of 100), the largest shift that
    still hides inside the honest spread."""

    name = "alie"

    @staticmethod
    def z(n: int, f: int) -> float:
        s = n // 2 + 1 - f
        return NormalDist().inv_cdf(min(max((n - s) / n, 0.5), 0.999))

    def forge(self, ctx):
        h = self._honest(ctx)
        z = self.z(len(ctx.byzantine), int(ctx.byzantine.sum()))
        row = h.mean(axis=0) - z * h.std(axis=0)
        return self._replace(ctx, np.broadcast_to(row, ctx.proposals.shape))


class InnerProduct(Attack):
    """Inner-product manipulation (Xie et al. 2020): minus epsilon times the mean honest update, epsilon = 0.5."""

    name = "ipm"
    epsilon = 0.5

    def forge(self, ctx):
        update = self._honest(ctx).mean(axis=0) - ctx.base
        return self._replace(ctx, np.broadcast_to(ctx.base - self.epsilon * update, ctx.proposals.shape))


class Sybil(Bias):
    """Sybil flood: biased proposals under fresh identities every round, filling each victim's
    newcomer slots (as well as from the attackers' own identities)."""

    name = "sybil"
    sybils = True


class Slander(Attack):
    """Slander: honest proposals, but ban reports against every honest peer, every round."""

    name = "slander"
    slanders = True


class EntropyInjection(Gaussian):
    """Entropy injection: noisy proposals and Storm votes with entropy 1.0 every round, to push the
    swarm into Storm (30 s wake intervals) and drain its batteries."""

    name = "entropy"
    votes_storm = True


class Cartel(Attack):
    """Class C cartel: colluders add one shared bias (norm 0.5, a seeded direction) to honest proposals."""

    name = "cartel"
    norm = 0.5

    def forge(self, ctx):
        return self._replace(ctx, ctx.proposals + self.norm * Q16_ONE * ctx.shared_direction[None])


class Straggler(Attack):
    """Stragglers and dropouts: honest proposals that miss the round deadline 70% of the time, and
    dropouts of 10 rounds (5% chance per round)."""

    name = "straggler"
    straggles = True
    late = 0.7
    dropout = 0.05
    dropout_rounds = 10


ATTACKS: dict[str, type[Attack]] = {
    a.name: a for a in (Attack, Bias, SignFlip, Gaussian, Alie, InnerProduct, Sybil, Slander, EntropyInjection, Cartel, Straggler)
}


# the attacks a daemon can play over a real network: a Sybil flood needs identities minted every
# round, which a daemon with one key does not do
NETWORK_ATTACKS = tuple(a for a in ATTACKS if a not in ("none", "sybil"))


def make(name: str) -> Attack:
    """The attack called `name` (one of ATTACKS)."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    return ATTACKS[name]()
