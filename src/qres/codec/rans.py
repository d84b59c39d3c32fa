"""Adaptive entropy coding primitives: tokens, adaptive CDFs and a 32-bit rANS coder (numba).

A residual r becomes an unsigned value u = zigzag(r). A *context* (the channel's recent residual
energy) selects an adaptive CDF over NSYM tokens and a shift k: the token codes the high part
u >> k (small values directly, larger ones by bit length plus their second most significant bit), and
the remaining low bits travel as raw bits. Everything is integer arithmetic, so an encoder and a
decoder on any platform follow the same CDF states bit for bit.

rANS: state x in [2^16, 2^32), 16-bit renormalisation, probabilities in units of 2^-15 (CDF_ONE).
The encoder records (start, freq, scale_bits) per coded item going forward, then encodes them in
reverse; the decoder reads forward. Raw bits are coded as uniform items of up to 16 bits.
"""

from __future__ import annotations

import functools

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

NSYM = 16  # tokens per CDF
DIRECT = 4  # tokens 0..DIRECT-1 code u' = 0..DIRECT-1 directly (DIRECT is a power of two)
DIRECT_BITS = DIRECT.bit_length()  # bit length of the first value past the direct tokens
ESCAPE = NSYM - 1  # then 7 raw bits of the bit length, then the bits below the top one
MAX_TOKEN_BITS = DIRECT_BITS + (ESCAPE - DIRECT) // 2 - 1  # two tokens per bit length up to here
CDF_BITS = 15
CDF_ONE = 1 << CDF_BITS
RANS_L = 1 << 16
ENERGY_SHIFT = 2  # context = bit length of (energy >> ENERGY_SHIFT)
ENERGY_CAP = 1 << 40


@nb.njit(cache=True, inline="always")
def bit_length(v: np.uint64) -> int:
    """Number of bits of v (0 for 0)."""
    return 64 - leading_zeros(np.uint64(v))


@nb.njit(cache=True, inline="always")
def zigzag(r: np.int64) -> np.uint64:
    return np.uint64((np.uint64(r) << np.uint64(1)) ^ np.uint64(r >> np.int64(63)))


@nb.njit(cache=True, inline="always")
def unzigzag(u: np.uint64) -> np.int64:
    return np.int64(u >> np.uint64(1)) ^ -np.int64(u & np.uint64(1))


def initial_cdf(nctx: int, shift: int) -> np.ndarray:
    """Prior CDFs (int32, shape (nctx, NSYM + 1)) for a channel coded with context shift `shift`."""
    return np.tile(_prior_row(shift), (nctx, 1))


@functools.lru_cache(maxsize=None)
def _prior_row(shift: int) -> np.ndarray:
    """One prior CDF row (see initial_cdf); cached, so callers must not modify it.

    The context picks k so that u >> k has a mean near 2^(shift - 2); the prior is the token
    distribution of a geometric variable with that mean, computed with exactly rounded float
    operations only (so every platform gets the same table), with a floor of 16 per token.
    """
    mean = 2.0 ** (shift - 2)
    p = mean / (1.0 + mean)
    probs = [0.0] * NSYM
    pj = 1.0 - p  # P(v = j), starting at j = 0
    for j in range(1 << (MAX_TOKEN_BITS + 1)):
        tok, _ = _split_token_py(j)
        probs[tok] += pj
        pj *= p
    freq = [16 + int(x * (CDF_ONE - 16 * NSYM)) for x in probs]
    freq[0] += CDF_ONE - sum(freq)
    cdf = np.zeros(NSYM + 1, dtype=np.int32)
    cdf[1:] = np.cumsum(freq)
    cdf.flags.writeable = False
    return cdf


def _split_token_py(v: int) -> tuple[int, int]:
    """Pure-Python split_token, for building tables."""
    if v < DIRECT:
        return v, 0
    n = v.bit_length()
    if n > MAX_TOKEN_BITS:
        return ESCAPE, n - 1
    return DIRECT + 2 * (n - DIRECT_BITS) + ((v >> (n - 2)) & 1), n - 2


def _targets() -> np.ndarray:
    """TARGETS[tok, i]: where CDF entry i moves after coding token tok (see update_cdf)."""
    i = np.arange(NSYM, dtype=np.int32)
    return np.where(i[None, :] > np.arange(NSYM)[:, None], i + (CDF_ONE - NSYM), i).astype(np.int32)


TARGETS = _targets()


@nb.njit(cache=True, inline="always")
def update_cdf(cdf: np.ndarray, c: int, row: int, tok: int, rate: int) -> None:
    """Move the probability mass of CDF cdf[c, row] towards token `tok` at speed 2^-rate.

    Entry i moves towards i (for i <= tok) or CDF_ONE - NSYM + i (for i > tok). Both targets keep
    cdf[i] - i non-decreasing, so every token keeps a frequency of at least 1 without a fix-up pass.
    Entry 0 stays 0 and entry NSYM stays CDF_ONE. (Indexing the 3-D array directly compiles to a
    faster loop than a row view.)
    """
    for i in range(NSYM):
        cdf[c, row, i] += (TARGETS[tok, i] - cdf[c, row, i]) >> rate


@nb.njit(cache=True, inline="always")
def context_of(energy: np.int64) -> int:
    return bit_length(np.uint64(energy >> ENERGY_SHIFT))


@nb.njit(cache=True, inline="always")
def next_energy(energy: np.int64, u: np.uint64, speed: int) -> np.int64:
    """Energy after a value with zigzagged residual u: moves 2^-speed of the way to 16 u."""
    uu = np.int64(u) if u < np.uint64(ENERGY_CAP) else np.int64(ENERGY_CAP)
    return energy + (((uu << 4) - energy) >> speed)


@nb.njit(cache=True, inline="always")
def split_token(v: np.uint64):
    """Token of the high part v and the number of extra bits below it (value of those bits = v's low bits)."""
    if v < np.uint64(DIRECT):
        return np.int64(v), 0
    n = bit_length(v)
    if n > MAX_TOKEN_BITS:
        return ESCAPE, n - 1
    return DIRECT + 2 * (n - DIRECT_BITS) + np.int64((v >> np.uint64(n - 2)) & np.uint64(1)), n - 2


@nb.njit(cache=True, inline="always")
def token_base(tok: int):
    """Inverse of split_token for non-escape tokens: (high bits value, number of extra bits)."""
    if tok < DIRECT:
        return np.uint64(tok), 0
    n = (tok - DIRECT) // 2 + DIRECT_BITS
    second = (tok - DIRECT) & 1
    return np.uint64((2 + second) << (n - 2)), n - 2


@nb.njit(cache=True, inline="always")
def cdf_item(start, freq) -> np.uint32:
    """A coded item for the encoder's list: a CDF interval (start, freq), both below 2^15."""
    return np.uint32((np.uint32(start) << np.uint32(15)) | np.uint32(freq))


@nb.njit(cache=True)
def rans_encode(items, count, init_state, out):
    """Encode CDF items [0, count) in reverse into `out` (uint16 words); returns the used tail of out.

    The words are written from the end of `out` backwards, then the state (high word first).
    """
    x = np.uint64(init_state)
    pos = out.shape[0]
    for i in range(count - 1, -1, -1):
        it = items[i]
        f = np.uint64(it & np.uint32(0x7FFF))
        x_max = np.uint64(2 << 16) * f  # ((RANS_L >> CDF_BITS) << 16) * f
        if x >= x_max:  # one 16-bit word always suffices: x < 2^32 and x_max >= 2^17
            pos -= 1
            out[pos] = np.uint16(x & np.uint64(0xFFFF))
            x >>= np.uint64(16)
        q = x // f
        x = (q << np.uint64(CDF_BITS)) + (x - q * f) + np.uint64(it >> np.uint32(15))
    pos -= 1
    out[pos] = np.uint16(x & np.uint64(0xFFFF))
    pos -= 1
    out[pos] = np.uint16(x >> np.uint64(16))
    return out[pos:]
