"""The sequential predict-and-code loops (numba): one block of rows, all channels interleaved.

Row t is coded channel by channel, so a decoder has every earlier row when it predicts. For each
value the channel's linear predictor gives `pred`; lossless mode codes r = z - pred (mod 2^64),
error-bounded mode codes q = round((z - pred) / (2B + 1)) and rebuilds pred + q (2B + 1). An optional
per-row flag codes "this row repeats the previous row" (resampled logs repeat rows).

Per-channel parameters travel in an int64 matrix `par` (columns named below), predictor lags and
Q16.16 weights in (channels, MAX_LAGS) matrices, adaptive CDFs in (channels, NCTX, NSYM + 1).
Return codes below 0 are decoding errors (see ERRORS).
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np

from .rans import (
    CDF_BITS,
    CDF_ONE,
    DIRECT,
    ESCAPE,
    MAX_TOKEN_BITS,
    NSYM,
    RANS_L,
    bit_length,
    cdf_item,
    context_of,
    next_energy,
    rans_encode,
    split_token,
    token_base,
    unzigzag,
    update_cdf,
    zigzag,
)

NCTX = 24  # energy contexts per channel
MAX_LAGS = 24

# columns of `par`
P_NA = 0  # number of lags of the short predictor (lags 1..NA)
P_NB = 1  # number of lags of the full predictor
P_MAXLAG_B = 2  # largest lag of the full predictor
P_INTW = 3  # 1: weights are whole numbers (multiples of 2^16) applied modulo 2^64
P_LEVEL = 4  # prediction of the first value
P_BOUND = 5  # error bound B in integer units (0 = lossless)
P_SHIFT = 6  # context c codes u >> max(0, c - SHIFT) as the token
P_RATE = 7  # slowest CDF adaptation rate (2^-RATE)
P_ENERGY0 = 8  # energy before the first value
P_LEVEL_ENERGY = 9  # energy used to code the first value
P_MERGE = 10  # contexts c >> MERGE share one CDF (fewer CDFs learn faster on short streams)
P_NWARM = 11  # number of warm-up orders (weights in w_warm (C, 3, 3), row q-1 for order q)
P_SLIP = 12  # lattice slips coded in-band: 0 none, 1 table lists every slip, 2 table lists points seen
P_TABLEN = 13  # entries of the channel's slip table (tab_at sorted lattice points, tab_sl slips)
P_ZMIN = 14  # error-bounded mode: rebuilt values are clamped to [ZMIN, ZMAX] (the dtype's range)
P_ZMAX = 15
P_ESPEED = 16  # the energy moves 2^-ESPEED of the way to each new value's 16 u
NPAR = 17
SLIP_SPAN = 4  # slips within this of the table's are a symbol 0..8 of their own
SLIP_ESCAPE = 2 * SLIP_SPAN + 1  # symbol for a slip further off, then its offset in SLIP_RAW_BITS raw bits
SLIP_RAW_BITS = 8
ROW_KNOWN = NCTX  # CDF row for slips of points in the table (or any point of a complete table)
ROW_UNKNOWN = NCTX + 1  # CDF row for slips of points not seen

REPEAT_RATE = 5
ERRORS = {
    -1: "compressed data ends early",
    -2: "invalid token or bit length in the compressed data",
    -3: "compressed data fails its 16-bit check (corrupt data or another model)",
    -4: "compressed data has unused or non-zero padding words (corrupt data or another model)",
}


CRC16_POLY = 0x1021  # CRC-16/CCITT: every error burst of up to 16 bits changes the check
CRC16_INIT = 0xFFFF


def _crc16_table() -> np.ndarray:
    table = np.zeros(256, np.uint16)
    for b in range(256):
        crc = b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC16_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
        table[b] = crc
    return table


CRC16_TABLE = _crc16_table()


@nb.njit(cache=True, inline="always")
def _crc16_byte(crc, b):
    return ((crc << 8) & 0xFFFF) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xFF]


@nb.njit(cache=True)
def crc16(data, crc):
    """CRC-16/CCITT (MSB first) of uint8 `data`, continuing from `crc` (CRC16_INIT to start)."""
    for i in range(data.shape[0]):
        crc = _crc16_byte(crc, np.int64(data[i]))
    return crc


MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: h -> (h ^ v) * MIX is a bijection for every v


@nb.njit(cache=True, inline="always")
def _mix(h, v):
    """The block hash after one more decoded integer v (a value or a lattice slip)."""
    return (h ^ np.uint64(v)) * MIX


@nb.njit(cache=True, inline="always")
def check16(h, tag):
    """The 16-bit check a block's coder starts from: the model's tag XOR the top 16 bits of the
    block hash after a final avalanche (murmur3's fmix64)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return (np.int64(h >> np.uint64(48)) ^ tag) & 0xFFFF


@nb.njit(cache=True, inline="always")
def _rate(seen, c, ci, slowest):
    """Adaptation rate of a context: like a running average over its first symbols, then `slowest`."""
    cnt = seen[c, ci]
    if cnt + 1 >= 1 << (slowest - 1):
        return slowest
    seen[c, ci] = cnt + 1
    return 1 + bit_length(np.uint64(cnt + 1))


@nb.njit(cache=True)
def items_needed(n, nch):
    """Upper bound on the coded items of n rows x nch channels (token and slip per value, row flags)."""
    return n * nch * 2 + n + 8


_scratch = threading.local()


def scratch(n_items: int, n_values: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's (items uint32, out uint16, raw uint16) scratch buffers, grown as needed."""
    if len(getattr(_scratch, "items", ())) < n_items:
        _scratch.items = np.empty(n_items, np.uint32)
        _scratch.out = np.empty(2 * n_items + 4, np.uint16)
    if len(getattr(_scratch, "raw", ())) < 5 * n_values + 8:
        _scratch.raw = np.empty(5 * n_values + 8, np.uint16)
    return _scratch.items, _scratch.out, _scratch.raw


def encode(z, slips, params, repeat_rows, tag, y, hist, head: int = 0, head_bits: int = 0, seed: int = CRC16_INIT) -> np.ndarray:
    """encode_block with this thread's scratch buffers."""
    n, nch = z.shape
    room = items_needed(n, nch)
    items, out, raw = scratch(room, n * nch)
    return encode_block(z, slips, *params, repeat_rows, tag, seed, y, hist, items[:room], out[: 2 * room + 4], raw, head, head_bits)


@nb.njit(cache=True, inline="always")
def _take_bits(words, pos, rp, racc, rn, b):
    """Read b (<= 32) raw bits from the raw stream (words read from the end, not below pos).

    Returns (ok, value, rp, racc, rn); ok is False when the raw stream would cross the rANS words.
    """
    while rn < b:
        if rp <= pos:
            return False, np.uint64(0), rp, racc, rn
        rp -= 1
        racc |= np.uint64(words[rp]) << np.uint64(rn)
        rn += 16
    value = racc & np.uint64((1 << b) - 1)
    return True, value, rp, racc >> np.uint64(b), rn - b


@nb.njit(cache=True, inline="always")
def _put_bits(raw, rw, bitbuf, nbuf, value, b):
    """Append the b (<= 32) low bits of value to the raw stream; returns (rw, bitbuf, nbuf)."""
    bitbuf |= (value & np.uint64((1 << b) - 1)) << np.uint64(nbuf)
    nbuf += b
    while nbuf >= 16:
        raw[rw] = np.uint16(bitbuf & np.uint64(0xFFFF))
        rw += 1
        bitbuf >>= np.uint64(16)
        nbuf -= 16
    return rw, bitbuf, nbuf


@nb.njit(cache=True, inline="always")
def _slip_base(v, c, par, tab_at, tab_sl):
    """(CDF row, slip the table predicts) for lattice point v of channel c."""
    lo = 0
    hi = par[c, P_TABLEN]
    while lo < hi:
        mid = (lo + hi) >> 1
        if tab_at[c, mid] < v:
            lo = mid + 1
        else:
            hi = mid
    if lo < par[c, P_TABLEN] and tab_at[c, lo] == v:
        return ROW_KNOWN, tab_sl[c, lo]
    if par[c, P_SLIP] == 1:
        return ROW_KNOWN, np.int64(0)
    return ROW_UNKNOWN, np.int64(0)


@nb.njit(cache=True)
def _code_block(decoding, words, z, slips, par, lags_a, w_a, lags_b, w_b, w_warm, tab_at, tab_sl, cdf, seen, repeat_rows, tag, seed, hashed, y, hist, items, raw, head, head_bits):
    """The one loop both directions share, so encoder and decoder cannot drift apart.

    Encoding (decoding False): reads z and slips, writes y, the coded items (uint32, for the
    reverse rANS pass) and the raw-bit words; returns (0, items, raw words). Decoding: reads
    `words`, writes y and slips; returns (0 or an error code < 0, 0, 0). See encode_block and
    decode_block for the buffers. The raw-bit stream starts with `head_bits` (<= 32) bits of the
    caller's: the encoder writes `head`, the decoder skips them (its caller has read them).
    """
    n, nch = y.shape
    h = np.uint64(seed)  # hash of every decoded value and slip (the 16-bit check covers them)
    m = 0  # encoder: items written
    rw = 0  # encoder: raw words written
    bitbuf = np.uint64(head)  # encoder: raw bits not yet written
    nbuf = head_bits
    nw = words.shape[0]
    x = np.uint64(0)  # decoder: rANS state
    pos = 2  # decoder: next rANS word
    rp = nw  # decoder: raw words are read from the end backwards
    racc = np.uint64(0)
    rn = 0
    if decoding:
        if nw < 2:
            return -1, 0, 0, h
        x = (np.uint64(words[0]) << np.uint64(16)) | np.uint64(words[1])
        ok, _, rp, racc, rn = _take_bits(words, pos, rp, racc, rn, head_bits)
        if not ok:
            return -1, 0, 0, h
    mask15 = np.uint64(CDF_ONE - 1)
    energy = par[:, P_ENERGY0].copy()
    rep_p = np.int64(CDF_ONE >> 4)  # probability (of CDF_ONE) that a row repeats
    for t in range(n):
        if repeat_rows and t > 0:
            if decoding:
                slot = np.int64(x & mask15)
                rep = slot < rep_p
                if rep:
                    x = np.uint64(rep_p) * (x >> np.uint64(CDF_BITS)) + np.uint64(slot)
                else:
                    x = np.uint64(CDF_ONE - rep_p) * (x >> np.uint64(CDF_BITS)) + np.uint64(slot - rep_p)
                while x < np.uint64(RANS_L):
                    if pos >= rp:
                        return -1, 0, 0, h
                    x = (x << np.uint64(16)) | np.uint64(words[pos])
                    pos += 1
            else:
                rep = True
                for c in range(nch):
                    d = z[t, c] - y[t - 1, c]
                    if d > par[c, P_BOUND] or d < -par[c, P_BOUND] or slips[t, c] != slips[t - 1, c]:
                        rep = False
                        break
                items[m] = cdf_item(0, rep_p) if rep else cdf_item(rep_p, CDF_ONE - rep_p)
                m += 1
            if rep:
                rep_p += (CDF_ONE - rep_p) >> REPEAT_RATE
                if rep_p > CDF_ONE - 64:
                    rep_p = CDF_ONE - 64
                for c in range(nch):
                    y[t, c] = y[t - 1, c]
                    slips[t, c] = slips[t - 1, c]
                    h = _mix(h, y[t, c])
                continue
            rep_p -= rep_p >> REPEAT_RATE
            if rep_p < 64:
                rep_p = 64
        for c in range(nch):
            # prediction (inline: numba calls that pass arrays cost more than the arithmetic)
            na = par[c, P_NA]
            nb_ = par[c, P_NB]
            intw = par[c, P_INTW]
            if nb_ > 0 and t >= par[c, P_MAXLAG_B]:
                acc = np.int64(0)
                for j in range(nb_):
                    acc += (w_b[c, j] >> 16 if intw else w_b[c, j]) * y[t - lags_b[c, j], c]
                pred = acc if intw else (acc + 32768) >> 16
            elif na == 0 or t == 0:
                pred = par[c, P_LEVEL]
            elif t >= na:
                acc = np.int64(0)
                for j in range(na):
                    acc += (w_a[c, j] >> 16 if intw else w_a[c, j]) * y[t - lags_a[c, j], c]
                pred = acc if intw else (acc + 32768) >> 16
            else:
                nwarm = par[c, P_NWARM]
                q = t if t < nwarm else nwarm
                if q == 0:
                    pred = y[t - 1, c]
                else:
                    acc = np.int64(0)
                    for j in range(q):
                        acc += w_warm[c, q - 1, j] * y[t - 1 - j, c]
                    pred = (acc + 32768) >> 16
            # context: CDF row ci and shift k
            ctx = context_of(par[c, P_LEVEL_ENERGY] if t == 0 else energy[c])
            k = ctx - par[c, P_SHIFT]
            if k < 0:
                k = 0
            ci = ctx >> par[c, P_MERGE]
            if ci >= NCTX:
                ci = NCTX - 1
            bound = par[c, P_BOUND]
            if decoding:
                # (decoding a symbol is written out here and for slips below: as a helper taking the
                # CDF array it measured 7% slower)
                slot = np.int64(x & mask15)
                tok = 0
                while tok < NSYM - 1 and cdf[c, ci, tok + 1] <= slot:
                    tok += 1
                x = np.uint64(cdf[c, ci, tok + 1] - cdf[c, ci, tok]) * (x >> np.uint64(CDF_BITS)) + np.uint64(slot - cdf[c, ci, tok])
                while x < np.uint64(RANS_L):
                    if pos >= rp:
                        return -1, 0, 0, h
                    x = (x << np.uint64(16)) | np.uint64(words[pos])
                    pos += 1
                if tok == ESCAPE:
                    ok, got_bits, rp, racc, rn = _take_bits(words, pos, rp, racc, rn, 7)
                    if not ok:
                        return -1, 0, 0, h
                    nbits = np.int64(got_bits)
                    if nbits <= MAX_TOKEN_BITS or nbits - 1 + k > 63:
                        return -2, 0, 0, h
                    nraw = nbits - 1 + k
                    u = np.uint64(1) << np.uint64(nraw)
                else:
                    base, ex = token_base(tok)
                    nraw = ex + k
                    if nraw > 63 or (tok >= DIRECT and nraw + 2 > 64):
                        return -2, 0, 0, h
                    u = base << np.uint64(k)
                got = 0
                while nraw > 0:  # raw bits, least significant chunk first
                    b = nraw if nraw < 32 else 32
                    ok, chunk, rp, racc, rn = _take_bits(words, pos, rp, racc, rn, b)
                    if not ok:
                        return -1, 0, 0, h
                    u |= chunk << np.uint64(got)
                    got += b
                    nraw -= b
                r = unzigzag(u)
                if bound == 0:
                    y[t, c] = np.int64(np.uint64(pred) + np.uint64(r))
                else:
                    v = pred + r * (2 * bound + 1)
                    y[t, c] = min(max(v, par[c, P_ZMIN]), par[c, P_ZMAX])
            else:
                if bound == 0:
                    r = np.int64(np.uint64(z[t, c]) - np.uint64(pred))
                    y[t, c] = z[t, c]
                else:
                    step = 2 * bound + 1
                    r = (z[t, c] - pred + bound) // step
                    v = pred + r * step
                    y[t, c] = min(max(v, par[c, P_ZMIN]), par[c, P_ZMAX])  # nearer to z, which is in range
                u = zigzag(r)
                tok, ex = split_token(u >> np.uint64(k))
                hist[c, ci, tok] += 1
                items[m] = cdf_item(cdf[c, ci, tok], cdf[c, ci, tok + 1] - cdf[c, ci, tok])
                m += 1
                nraw = ex + k
                if tok == ESCAPE:  # the bit length of v
                    rw, bitbuf, nbuf = _put_bits(raw, rw, bitbuf, nbuf, np.uint64(ex + 1), 7)
                rest = u
                while nraw > 0:  # raw bits: the low nraw bits of u, least significant chunk first
                    b = nraw if nraw < 32 else 32
                    rw, bitbuf, nbuf = _put_bits(raw, rw, bitbuf, nbuf, rest, b)
                    rest >>= np.uint64(b)
                    nraw -= b
            h = _mix(h, y[t, c])
            update_cdf(cdf, c, ci, tok, _rate(seen, c, ci, par[c, P_RATE]))
            if t > 0:  # the first value (predicted from the level) says nothing about the noise
                energy[c] = next_energy(energy[c], u, par[c, P_ESPEED])
            if par[c, P_SLIP]:
                srow, sbase = _slip_base(y[t, c], c, par, tab_at, tab_sl)
                if decoding:
                    slot = np.int64(x & mask15)
                    sym = 0
                    while sym < NSYM - 1 and cdf[c, srow, sym + 1] <= slot:
                        sym += 1
                    x = np.uint64(cdf[c, srow, sym + 1] - cdf[c, srow, sym]) * (x >> np.uint64(CDF_BITS)) + np.uint64(slot - cdf[c, srow, sym])
                    while x < np.uint64(RANS_L):
                        if pos >= rp:
                            return -1, 0, 0, h
                        x = (x << np.uint64(16)) | np.uint64(words[pos])
                        pos += 1
                    if sym > SLIP_ESCAPE:
                        return -2, 0, 0, h
                    if sym == SLIP_ESCAPE:  # a far slip: its offset from the table's, zigzagged, in raw bits
                        ok, far, rp, racc, rn = _take_bits(words, pos, rp, racc, rn, SLIP_RAW_BITS)
                        if not ok:
                            return -1, 0, 0, h
                        slips[t, c] = sbase + unzigzag(far)
                    else:
                        slips[t, c] = sbase + sym - SLIP_SPAN
                else:
                    off = slips[t, c] - sbase
                    sym = off + SLIP_SPAN if -SLIP_SPAN <= off <= SLIP_SPAN else SLIP_ESCAPE
                    items[m] = cdf_item(cdf[c, srow, sym], cdf[c, srow, sym + 1] - cdf[c, srow, sym])
                    m += 1
                    hist[c, srow, sym] += 1
                    if sym == SLIP_ESCAPE:
                        rw, bitbuf, nbuf = _put_bits(raw, rw, bitbuf, nbuf, zigzag(off), SLIP_RAW_BITS)
                h = _mix(h, slips[t, c])
                update_cdf(cdf, c, srow, sym, _rate(seen, c, srow, par[c, P_RATE]))
    if decoding:
        if pos != rp or racc != np.uint64(0):
            return -4, 0, 0, h
        if x != np.uint64(RANS_L + (check16(h, tag) if hashed else tag & 0xFFFF)):
            return -3, 0, 0, h
        return 0, 0, 0, h
    while nbuf > 0:
        raw[rw] = np.uint16(bitbuf & np.uint64(0xFFFF))
        rw += 1
        bitbuf >>= np.uint64(16)
        nbuf -= 16
    return 0, m, rw, h


@nb.njit(cache=True)
def encode_block(z, slips, par, lags_a, w_a, lags_b, w_b, w_warm, tab_at, tab_sl, cdf, seen, repeat_rows, tag, seed, y, hist, items, out, raw, head, head_bits):
    """Code rows z (n, C) int64 (and lattice slips (n, C)). Writes reconstructed values into y
    (which may be z itself in lossless mode); returns the uint16 words.

    `items` (uint32), `out` (uint16, 2 per item + 4) and `raw` (uint16, 5 per value + 4) are
    scratch buffers, reused between calls because fresh memory costs page faults that would
    dominate the run time; `items` needs items_needed(n, C) of room.

    Output: the rANS words, then the raw bits (16 per word, least significant first) as words
    stored from the end of the output backwards, so a decoder reads both streams towards the middle.
    `cdf` is updated in place (the adapted state after the block); `seen` (C, NCTX) counts the
    symbols each context has coded (a young context adapts faster); hist (C, NCTX, NSYM) counts the
    tokens coded in each context (for training a model's tables). The raw-bit stream starts with
    the `head_bits` low bits of `head` (a frame's header).

    The 16-bit check: the coder starts from (and a decoder must end on) RANS_L + check16(hash,
    tag), where the hash runs over every value and lattice slip the block decodes to, starting from
    `seed` (the CRC-16 of the caller's bytes: manifest, block head, patches). A damaged block
    therefore fails unless its state and its hash both come out right by chance (about 2^-16):
    the state alone would not do, since an rANS decoder can fall back into step after a damaged
    word, with different values in between.
    """
    _, m, rw, h = _code_block(
        False, np.zeros(0, np.uint16), z, slips, par, lags_a, w_a, lags_b, w_b, w_warm, tab_at, tab_sl, cdf, seen, repeat_rows, tag, seed, True, y, hist,
        items, raw, head, head_bits,
    )
    words = rans_encode(items, m, RANS_L + check16(h, tag), out)
    full = np.empty(len(words) + rw, np.uint16)
    full[: len(words)] = words
    for i in range(rw):  # the raw stream is read from the end backwards
        full[len(full) - 1 - i] = raw[i]
    return full


@nb.njit(cache=True)
def decode_block(words, n, par, lags_a, w_a, lags_b, w_b, w_warm, tab_at, tab_sl, cdf, seen, repeat_rows, tag, seed, hashed, y, slips, head_bits):
    """Decode n rows into y (n, C) (lattice slips into slips (n, C)) from uint16 `words`, skipping
    the first `head_bits` of the raw-bit stream (a frame's header, read by the caller); `tag` and
    `seed` as in encode_block. With `hashed` False (array format version 1, before values were
    hashed) the coder must end on RANS_L + tag alone.

    Returns the number of words (all of them), or an error code < 0 (see ERRORS).
    """
    nch = y.shape[1]
    hist = np.zeros((nch, NCTX + 2, NSYM), np.int64)
    status, _, _, _ = _code_block(
        True, words, y, slips, par, lags_a, w_a, lags_b, w_b, w_warm, tab_at, tab_sl, cdf, seen, repeat_rows, tag, seed, hashed, y, hist,
        np.zeros(0, np.uint32), np.zeros(0, np.uint16), 0, head_bits,
    )
    return status if status < 0 else words.shape[0]
