"""Golden bytes: the same input gives the same bytes on every run and platform.

The inputs are built from integer arithmetic only, so they are identical everywhere; a change in
any hash means the format or the encoder's decisions changed, which needs a deliberate update here
(and a note in docs/FORMAT.md when the format itself moved).
"""

import hashlib

import numpy as np
import pytest

import qres
from qres import datasets


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _walk(n: int, seed: int) -> np.ndarray:
    """A deterministic random walk from a 64-bit LCG (no platform-dependent generator)."""
    out = np.empty(n, np.int64)
    state, level = seed, 0
    for i in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        level += ((state >> 33) % 21) - 10
        out[i] = level
    return out


INPUTS = {
    "walk_int32": lambda: _walk(5000, 1).astype(np.int32),
    "decimal_float64": lambda: _walk(3000, 2) / 100.0,
    "three_channels": lambda: np.stack([_walk(2000, s) for s in (3, 4, 5)], axis=1).astype(np.int16),
    "specials_float32": lambda: np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, 2.25] * 50, np.float32),
}

GOLDEN = {
    "walk_int32": "0ffa1b7da7e5eedd",
    "decimal_float64": "e95a04cc699a684e",
    "three_channels": "ae47cc7e6499641f",
    "specials_float32": "e8f2f6f0a3a9732d",
}


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_compress_bytes_are_stable(name):
    x = INPUTS[name]()
    first, second = qres.compress(x), qres.compress(x)
    assert first == second
    assert _sha(first) == GOLDEN[name], f"{name}: compressed bytes changed"


def test_frame_bytes_and_model_id_are_stable():
    x = datasets.channels("heartpy_ppg")[0].values
    model = qres.Model.fit(x[:2000])
    frame = qres.Codec(model).encode_frame(x[2000:2064])
    assert (model.id, _sha(frame)) == GOLDEN_FRAME


GOLDEN_FRAME = ("2582c8385d840aba", "4af98db3857449e8")


def test_compress_leaves_its_input_alone():
    for x in (np.arange(1000, dtype=np.uint64) * 7 + 3, np.arange(1000, dtype=np.int64), _walk(500, 9) / 10.0):
        before = x.copy()
        qres.compress(x)
        qres.compress(x, max_error=0.5)
        assert np.array_equal(x.view(np.uint8), before.view(np.uint8))
