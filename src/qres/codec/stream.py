"""Stream mode: a whole array (or table columns) in a `.qres` container.

Rows are cut into blocks of at most MAX_BLOCK_VALUES values. Each block gets its own fitted model
(an Epiphany block, ids counting 0..255 and wrapping) and a Residual block naming that model:
  uvarint row count, [per channel uvarint error bound, in error-bounded mode], patches, rANS words.
A Manifest block first says what the blocks rebuild (shape, dtypes, bound, caller metadata). The
decoder allocates only as it decodes, so a hostile header cannot make it reserve memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from ..errors import QresFormatError
from . import container as ct
from . import fallback, rational
from .model import DTYPES, Model, as_2d, fit_streams
from .kernel import CRC16_INIT
from .rows import MAX_BLOCK_VALUES, crc16, decode_rows, encode_rows, stack, to_streams
from .transform import Transform, binary_transform, fit_transform
from .varint import Reader, put_uvarint

FORMAT_VERSION = 2  # written by this build: marked by the container's BODY_CRC flag, else by the manifest's "q" key
READS_VERSIONS = (1, 2)  # 1: each block's 16-bit check covered the model tag only (before 0.2)


def _lossy_plan(col: np.ndarray, max_error: float | None) -> tuple[Transform, int]:
    """Transform and integer error bound B that keep every decoded value within max_error.

    A decoded value lies on the transform's grid, B grid steps from the original at most. Integer
    columns keep their integer grid. A float column takes whichever grid gives the wider
    quantisation step (2B + 1) * quantum: its own decimal grid, or a power-of-two grid 16 to 32
    times finer than the bound (better when the decimal grid is coarse next to the bound, or absent).
    """
    t = fit_transform(col, lattice=max_error is None)
    if max_error is None or (
        len(col) and np.issubdtype(col.dtype, np.integer) and (int(col.max()) - int(col.min()) >= 2**40 or int(col.max()) >= 2**63)
    ):
        return t, 0  # lossless: integers this wide (or uint64 past 2^63) use wrapping arithmetic, with no room for a bound
    plans = []
    if t.kind in ("int", "decimal"):
        q = t.quantum
        bound = math.floor(min(max_error / q, 2.0**40))
        if t.kind == "decimal":
            # keep a margin for the float rounding of k / 10^d on both sides
            bound -= bound > 0 and bound * q >= max_error * (1 - 1e-9)
        if t.kind == "int" or bound <= 4096:  # a far finer decimal grid only makes wide integers
            plans.append((t, bound))
    if t.kind != "int":
        b = binary_transform(col, max_error)
        q = b.quantum
        bound = max(0, math.floor(min((max_error - q / 2) / q, 2.0**40)))
        bound -= bound > 0 and (bound + 0.5) * q > max_error
        plans.append((b, bound))
    return max(plans, key=lambda p: (2 * p[1] + 1) * p[0].quantum)


def _check_bound(orig: np.ndarray, got: np.ndarray, max_error: float, channel: int) -> None:
    """Raise if a decoded value is off by more than max_error (a guard against bugs, not input errors)."""
    if np.issubdtype(orig.dtype, np.integer):
        # exact: the difference of two 64-bit integers, modulo 2^64, read as signed
        diff = (orig.astype(np.int64).view(np.uint64) - got.astype(np.int64).view(np.uint64)).view(np.int64)
        if len(diff) and np.abs(diff).max() > max_error:
            raise AssertionError(f"channel {channel}: a decoded value is outside the error bound")
        return
    with np.errstate(invalid="ignore"):  # a signalling NaN may warn as it widens; it stays a NaN
        a = orig.astype(np.float64)
        b = got.astype(np.float64)
    nan = np.isnan(a)
    if not np.array_equal(nan, np.isnan(b)):
        raise AssertionError(f"channel {channel}: NaN positions changed")
    fin = np.isfinite(a)
    if not np.array_equal(a[~fin & ~nan], b[~fin & ~nan]) or (len(a) and np.any(np.abs(a[fin] - b[fin]) > max_error)):
        raise AssertionError(f"channel {channel}: a decoded value is outside the error bound")


def per_channel_errors(max_error: float | Sequence[float | None] | None, nch: int) -> list[float | None] | None:
    """Normalise max_error (one bound, one per channel with None for lossless, or None) to a list or None."""
    if max_error is None:
        return None
    errs = list(max_error) if isinstance(max_error, (list, tuple)) else [max_error] * nch
    if len(errs) != nch:
        raise ValueError(f"max_error has {len(errs)} entries for {nch} channels")
    for e in errs:
        if e is not None and not (isinstance(e, (int, float)) and math.isfinite(e) and e > 0):
            raise ValueError(f"max_error must be a positive finite number, got {e!r}")
    return None if all(e is None for e in errs) else [None if e is None else float(e) for e in errs]


def encode_columns(
    columns: Sequence[np.ndarray],
    *,
    max_error: float | Sequence[float | None] | None = None,
    progress: Callable[[int], None] | None = None,
    check: int = CRC16_INIT,
) -> tuple[list[ct.Block], bool]:
    """Epiphany and Residual blocks for equal-length 1-D columns (any integer dtype, float32, float64),
    and whether any block has patches (without any, the payloads leave out their patch sections).

    With a single block of rows (a solid file) the Residual payload omits its row count. Each
    block's 16-bit check covers its payload and continues `check` (the manifest's CRC-16).
    """
    nch = len(columns)
    errs = per_channel_errors(max_error, nch)
    n = len(columns[0]) if nch else 0
    rows_per_block = max(1, MAX_BLOCK_VALUES // max(nch, 1))
    solid = n <= rows_per_block  # one block: its row count is the manifest's
    blocks: list[ct.Block] = []
    bodies: list[tuple[int, int, bool]] = []  # (block index, payload head length, has patches)
    for b, start in enumerate(range(0, n, rows_per_block)):
        part = [np.ascontiguousarray(col[start : start + rows_per_block]) for col in columns]
        if errs is None:
            transforms = [fit_transform(col) for col in part]
            bounds = None
        else:
            plans = [_lossy_plan(col, e) for col, e in zip(part, errs)]
            transforms = [p[0] for p in plans]
            bounds = np.array([p[1] for p in plans], np.int64)
        streams = to_streams(transforms, part)
        model = fit_streams(streams[0], streams[1], transforms, tables=False, bounds=bounds)
        head = bytearray()
        if not solid:
            put_uvarint(head, len(part[0]))
        if bounds is not None:
            for v in bounds:
                put_uvarint(head, int(v))
        body, decoded = encode_rows(model, part, bounds, streams, check=crc16(bytes(head), check))
        if errs is not None:
            for c in range(nch):
                if errs[c] is not None:
                    _check_bound(part[c], decoded[c], errs[c], c)
        bid = b % 256
        blocks.append(ct.EpiphanyBlock(bid, 1, model.to_bytes()))
        blocks.append(ct.ResidualBlock(bid, bytes(head) + body))
        bodies.append((len(blocks) - 1, len(head), body[0] != 0))
        if progress is not None:
            progress(len(part[0]))
    if not any(p for _, _, p in bodies):  # no patches anywhere: drop the empty patch sections
        for i, cut, _ in bodies:
            payload = blocks[i].payload
            blocks[i] = ct.ResidualBlock(blocks[i].id, payload[:cut] + payload[cut + 1 :])
        return blocks, False
    return blocks, True


def compress_columns(
    columns: Sequence[np.ndarray],
    *,
    max_error: float | Sequence[float | None] | None = None,
    key: bytes | None = None,
    extra: dict | None = None,
    checksum: bool = True,
    rank: int = 2,
    big_endian: bool = False,
    progress: Callable[[int], None] | None = None,
) -> bytes:
    """A `.qres` file holding equal-length 1-D columns; `extra` is stored in the manifest as given.

    `rank` 1 marks a 1-D array of one column, `big_endian` an array of big-endian dtype (what
    `decompress` gives back; the columns themselves are coded by value).
    `checksum` (default on) ends the file with a CRC32 of everything after the header (flag 0x08, 4
    bytes), so any damage or truncation is refused. Without it corruption is still caught by the
    header CRC, the structure checks and each block's 16-bit check, with a 2^-16 chance of a miss
    per damaged block. An encrypted file needs no CRC: its GCM tag checks every byte.
    """
    columns = [np.asarray(c) for c in columns]
    if not columns:
        raise ValueError("nothing to compress: no columns")
    n = len(columns[0])
    for i, c in enumerate(columns):
        if c.ndim != 1 or len(c) != n:
            raise ValueError(f"column {i} must be 1-D with {n} values, got shape {c.shape}")
        as_2d(c)  # dtype check
    errs = per_channel_errors(max_error, len(columns))
    args = (key, extra, checksum, rank, big_endian)
    exact_fallbacks: dict[int, tuple[int, bytes]] = {}  # the exact candidates' stored columns are the same: code each once
    candidates = [_compress_columns(columns, errs, *args, progress, known=None if errs is not None else exact_fallbacks)]
    if errs is not None:
        # exact coding is always within the bound: keep it when it is the smaller file (a bound finer
        # than the data's own grid or lattice, or an averaged column, can make quantising cost more)
        candidates.append(_compress_columns(columns, None, *args, None, known=exact_fallbacks))
    if sum(c.nbytes for c in columns) <= EXACT_FALLBACK_BYTES:  # small: the guarantee is exact
        candidates.append(_compress_columns(columns, None, *args, None, use_fallback="all", known=exact_fallbacks))
    return min(candidates, key=len)


# dtype strings a manifest may name (big-endian ones only in files of qres 0.1)
MANIFEST_DTYPES = frozenset(DTYPES) | frozenset(d.replace("<", ">") for d in DTYPES)
EXACT_FALLBACK_BYTES = 64 << 10  # a column (an input) up to this size is also coded by the fallback, and the smaller kept
SAMPLE_ROWS = 2048  # a longer column is first tried on this many rows from its middle
SAMPLE_WIN = 0.9  # ... and coded by the fallback when its quick estimate there is below this share of QRES's


def _qres_size(col: np.ndarray, err: float | None) -> int:
    """Bytes QRES's own coding of one column alone takes (its model and residual blocks)."""
    blocks, _ = encode_columns([col], max_error=None if err is None else [err])
    return sum(len(b.model) + 5 if isinstance(b, ct.EpiphanyBlock) else len(b.payload) + 6 for b in blocks)


def _coded(known: dict | None, i: int, col: np.ndarray) -> tuple[int, bytes]:
    """fallback.encode(col), taken from `known` (the fallback codings of these columns so far, by
    index) when it holds column i, and kept there."""
    if known is None:
        return fallback.encode(col)
    if i not in known:
        known[i] = fallback.encode(col)
    return known[i]


def choose_fallbacks(columns: list[np.ndarray], errs: list[float | None] | None, known: dict | None = None) -> dict[int, tuple[int, bytes]]:
    """The columns to code with the generic fallback, with their (method, coded bytes): those for
    which it is smaller than QRES's own coding of the column alone. A long column is decided on a
    sample of its rows first, so that the fallback's slower coder runs in full only where it wins.
    `known` as in `_coded`."""
    out = {}
    for i, col in enumerate(columns):
        err = None if errs is None else errs[i]
        if col.nbytes > EXACT_FALLBACK_BYTES:
            mid = (len(col) - SAMPLE_ROWS) // 2
            sample = col[mid : mid + SAMPLE_ROWS]
            method, coded = fallback.encode(sample, preset=fallback.FAST)
            if len(coded) >= SAMPLE_WIN * _qres_size(sample, err):
                continue
            method, coded = fallback.encode(col, (method,))
            out[i] = (method, coded)
            continue
        method, coded = _coded(known, i, col)
        if len(coded) + 6 < _qres_size(col, err):
            out[i] = (method, coded)
    return out


def _compress_columns(columns, errs, key, extra, checksum, rank, big_endian, progress, use_fallback: str = "auto", known: dict | None = None) -> bytes:
    """One candidate file; `use_fallback` "auto" codes the columns `choose_fallbacks` picks with the
    generic fallback, "all" every column; `known` shares fallback codings between candidates whose
    stored columns are the same (see `_coded`)."""
    n = len(columns[0])
    total = sum(c.nbytes for c in columns)
    recipes: list[list] = []
    if errs is None:
        columns, recipes = _split_rational(columns)
    if use_fallback == "all":
        fallbacks = {i: _coded(known, i, col) for i, col in enumerate(columns)}
    else:
        fallbacks = choose_fallbacks(columns, errs, known) if n else {}
    coded = [i for i in range(len(columns)) if i not in fallbacks]
    manifest: dict = {"n": n}
    if not checksum or key is not None:  # no BODY_CRC flag to say the version
        manifest["q"] = FORMAT_VERSION
    if n == 0 or fallbacks:  # otherwise the dtypes are in the models
        manifest["t"] = [c.dtype.newbyteorder("<").str for c in columns]
    if fallbacks:
        manifest["f"] = sorted(fallbacks)
    if rank == 1:
        manifest["d"] = 1
    if big_endian:
        manifest["b"] = 1
    if recipes:
        manifest["r"] = recipes
    if errs is not None:  # error-bounded: the Residual blocks carry each column's integer bound
        manifest["e"] = 1
    if extra:
        manifest["x"] = extra
    blocks, patched = [], False
    start = manifest_check(manifest)  # the same after "p" is set: the check leaves "p" out
    if coded:
        sub_errs = None if errs is None else [errs[i] for i in coded]
        blocks, patched = encode_columns([columns[i] for i in coded], max_error=sub_errs, progress=progress, check=start)
    if patched:
        manifest["p"] = 1
    check = partial(crc16, start=start)
    blocks += [ct.FallbackBlock(fallback.payload(i, *fallbacks[i], fallback.column_bytes(columns[i]), check)) for i in sorted(fallbacks)]
    solid = n <= MAX_BLOCK_VALUES // max(len(coded), 1)
    return ct.write_container([ct.ManifestBlock(manifest), *blocks], total_size=total, solid=solid, key=key, block_crc=False, body_crc=checksum)


def manifest_check(manifest: dict) -> int:
    """The CRC-16 of the manifest's canonical JSON, which every Residual block's 16-bit check
    continues, so that check also covers what the manifest says. The "p" key is left out (it is
    known only once the blocks are coded; a wrong one misreads every payload, which the check catches)."""
    return crc16(ct.manifest_json({k: v for k, v in manifest.items() if k != "p"}))


def array_version(header: ct.Header, stored: dict) -> int:
    """The array format version of a file: its manifest's "q" key; without one, 2 when the
    container has the BODY_CRC flag (which version 1 never wrote), else 1."""
    return stored.get("q", 2 if header.body_crc else 1)


def read_manifest(blocks: list[ct.Block], header: ct.Header) -> dict:
    """The array manifest, validated and with long key names: rows, dtypes, max_error, extra, version."""
    if not blocks or not isinstance(blocks[0], ct.ManifestBlock):
        raise QresFormatError("not a QRES array file: the first block is not a manifest")
    stored = blocks[0].manifest
    if "n" not in stored:
        raise QresFormatError("the manifest does not describe a QRES array (no 'n' key)")
    version = array_version(header, stored)
    if type(version) is not int or version not in READS_VERSIONS:
        raise QresFormatError(f"array format version {version!r} is not supported (this build reads versions {', '.join(map(str, READS_VERSIONS))})")
    dtypes = stored.get("t")
    if dtypes is None:  # stored columns have the dtypes of the first model
        first = next((b for b in blocks if isinstance(b, ct.EpiphanyBlock)), None)
        if first is None:
            raise QresFormatError("file truncated: no model block and no dtypes in the manifest")
        dtypes = [c.transform.dtype for c in Model.from_bytes(first.model).channels]
    m = {
        "rows": stored.get("n"), "dtypes": dtypes, "lossy": stored.get("e", 0) == 1, "rank": stored.get("d", 2), "patched": stored.get("p", 0) == 1,
        "big_endian": stored.get("b", 0) == 1,
        "extra": stored.get("x", {}), "recipes": stored.get("r", []), "version": version,
    }
    if not isinstance(m["recipes"], list) or not all(isinstance(r, list) and len(r) == 6 for r in m["recipes"]):
        raise QresFormatError("manifest: 'r' must be a list of 6-item recipes")
    ncols = len(m["dtypes"]) if isinstance(m["dtypes"], list) else 0
    for col, aux, *_ in m["recipes"]:
        if not (isinstance(col, int) and isinstance(aux, int) and 0 <= col < aux < ncols):
            raise QresFormatError("manifest: averaged-column recipe names columns out of range")
    if not isinstance(m["extra"], dict):
        raise QresFormatError("manifest: 'x' must be an object")
    rows, dtypes = m.get("rows"), m.get("dtypes")
    if not isinstance(rows, int) or rows < 0 or not isinstance(dtypes, list) or not 1 <= len(dtypes) <= 4096:
        raise QresFormatError("manifest: bad rows or dtypes")
    bad = next((d for d in dtypes if d not in MANIFEST_DTYPES), None)
    if bad is not None:
        raise QresFormatError(f"manifest: dtype {bad!r} is not one QRES codes")
    if stored.get("e", 0) not in (0, 1):
        raise QresFormatError("manifest: 'e' must be 1 (error-bounded) when present")
    fb = stored.get("f", [])
    if not isinstance(fb, list) or not all(type(c) is int for c in fb) or fb != sorted(set(fb)) or (fb and not 0 <= fb[0] <= fb[-1] < len(dtypes)):
        raise QresFormatError("manifest: 'f' must list fallback columns in increasing order")
    if fb and version < 2:
        raise QresFormatError("manifest: fallback columns in a file of array format version 1")
    if fb and "t" not in stored:
        raise QresFormatError("manifest: a file with fallback columns must list every column's dtype ('t')")
    m["fallbacks"] = fb
    return m


def decoded_size(manifest: dict) -> int:
    """Bytes of the columns a file decodes to (rows times each column's item size), from its
    manifest (`read_manifest`); the header's total size must say the same."""
    remainders = {aux for _, aux, *_ in manifest["recipes"]}  # averaged columns' remainders fold back in
    return manifest["rows"] * sum(np.dtype(d).itemsize for i, d in enumerate(manifest["dtypes"]) if i not in remainders)


def decompress_columns(data: bytes, *, key: bytes | None = None) -> tuple[list[np.ndarray], dict]:
    """The columns of a `.qres` file and its manifest."""
    header, blocks = ct.read_container(data, key=key)
    m = read_manifest(blocks, header)
    if header.total_size != decoded_size(m):
        raise QresFormatError(f"header: total size {header.total_size} at byte offset 12 disagrees with the manifest's {decoded_size(m)} bytes")
    check = manifest_check(blocks[0].manifest) if m["version"] >= 2 else None
    coded = [i for i in range(len(m["dtypes"])) if i not in m["fallbacks"]]
    coded_dtypes = [np.dtype(m["dtypes"][i]).str for i in coded]
    nch = len(coded)
    fallen: dict[int, np.ndarray] = {}
    lossy = m["lossy"]
    models: dict[int, Model] = {}
    parts: list[list[np.ndarray]] = []
    done = 0
    for i, blk in enumerate(blocks[1:], start=1):
        if isinstance(blk, ct.EpiphanyBlock):
            model = Model.from_bytes(blk.model)
            if model.n_channels != nch:
                raise QresFormatError(f"block {i}: model has {model.n_channels} channels, the manifest {nch}")
            if [c.transform.dtype for c in model.channels] != coded_dtypes:
                raise QresFormatError(f"block {i}: model dtypes differ from the manifest")
            models[blk.id] = model
        elif isinstance(blk, ct.ResidualBlock):
            if blk.id not in models:
                raise QresFormatError(f"block {i}: residuals name model {blk.id}, which no earlier block defines")
            model = models[blk.id]
            r = Reader(blk.payload, what=f"block {i}")
            n = m["rows"] - done if header.solid else r.uvarint(m["rows"] - done)
            bounds = np.array([r.uvarint(2**40) for _ in range(nch)], np.int64) if lossy else None
            head = blk.payload[: r.pos]
            if not m["patched"]:  # no patch section on the wire: present an empty one
                r = Reader(b"\x00" + r.take(r.remaining()), what=f"block {i}")
            parts.append(decode_rows(model, r, n, bounds, what=f"block {i}", check=None if check is None else crc16(head, check)))
            done += n
        elif isinstance(blk, ct.FallbackBlock):
            col, method, stored, data_ = fallback.read_column(blk.payload, len(m["dtypes"]))
            if col not in m["fallbacks"] or col in fallen:
                raise QresFormatError(f"block {i}: fallback block for column {col}, which the manifest does not list or another block holds")
            fallen[col] = fallback.decode(method, data_, np.dtype(m["dtypes"][col]), m["rows"], f"block {i}")
            fallback.verify(col, method, stored, fallen[col], partial(crc16, start=check), f"block {i}")
        else:
            raise QresFormatError(f"block {i}: unexpected {type(blk).__name__} in an array file")
    if done != (m["rows"] if coded else 0) or len(fallen) != len(m["fallbacks"]):
        raise QresFormatError(f"file truncated: {done} of {m['rows']} rows, {len(fallen)} of {len(m['fallbacks'])} fallback columns present")
    if not m["rows"]:
        return [np.zeros(0, np.dtype(d)) for d in m["dtypes"]], m
    decoded = iter([np.concatenate([p[c] for p in parts]) for c in range(nch)])
    cols = [fallen[i] if i in fallen else next(decoded) for i in range(len(m["dtypes"]))]
    return _join_rational(cols, m), m


def block_bounds(header: ct.Header, manifest: dict, residual: ct.ResidualBlock, nch: int) -> list[int] | None:
    """The integer error bounds B of a Residual block's columns (None for an exact file)."""
    if not manifest["lossy"]:
        return None
    r = Reader(residual.payload, what="block")
    if not header.solid:
        r.uvarint()
    return [r.uvarint(2**40) for _ in range(nch)]


def _split_rational(columns: list[np.ndarray]) -> tuple[list[np.ndarray], list[list]]:
    """Replace averaged-reading columns (see rational.py) by quotient columns, remainders appended.

    Returns the stored columns and the recipes [column, remainder column, decimals, multiplier,
    digits, patches] that the manifest keeps under "r".
    """
    out = list(columns)
    recipes = []
    for i, col in enumerate(columns):
        if col.dtype != np.float64:
            continue
        t = fit_transform(col, lattice=False)
        rule = rational.find(col, t.decimals) if t.kind == "decimal" else None
        if rule is None:
            continue
        q, rem, patches = rational.split(col, rule)
        out[i] = q
        recipes.append([i, len(out), *rule.to_list(), patches])
        out.append(rem)
    return out, recipes


def _join_rational(cols: list[np.ndarray], m: dict) -> list[np.ndarray]:
    recipes = m.get("recipes") or []
    if not recipes:
        return cols
    out = list(cols)
    drop = set()
    for col, aux, d, mult, digits, patches in recipes:
        try:
            rule = rational.Rational(int(d), int(mult), int(digits))
            out[col] = rational.join(cols[col], cols[aux], rule, patches)
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise QresFormatError(f"manifest: bad averaged-column recipe ({exc})") from None
        drop.add(aux)
    return [c for i, c in enumerate(out) if i not in drop]


def compress(
    values: np.ndarray, *, max_error: float | Sequence[float | None] | None = None, key: bytes | None = None, checksum: bool = True
) -> bytes:
    """Compress a 1-D or 2-D (samples, channels) array of any integer dtype, float32 or float64.

    Lossless by default: decompress gives back the same dtype, shape and bits (NaN, +-inf and -0.0
    included). With `max_error` (one bound, or one per channel with None for lossless channels)
    every decoded value is within it (NaN and infinities are kept exactly). `key` (32 bytes)
    encrypts the file with AES-256-GCM (whose tag checks every byte); otherwise the file ends with a
    CRC32 of its blocks, so damage is refused rather than decoded; `checksum=False` leaves it out
    (4 bytes less; each block's 16-bit check remains).
    """
    arr = np.asarray(values)
    arr2 = as_2d(arr)
    cols = [arr2[:, c] for c in range(arr2.shape[1])]
    big = arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and np.little_endian is False)
    return compress_columns(cols, max_error=max_error, key=key, checksum=checksum, rank=arr.ndim, big_endian=big)


def decompress(data: bytes, *, key: bytes | None = None) -> np.ndarray:
    """Inverse of `compress`: the array, with its dtype and shape."""
    cols, m = decompress_columns(data, key=key)
    if "source" in m["extra"]:
        raise QresFormatError("this file holds a table: decompress it with `qres decompress` or decompress_columns")
    ndim = m["rank"]
    if ndim not in (1, 2) or (ndim == 1 and len(cols) != 1):
        raise QresFormatError(f"manifest: bad array rank {ndim!r} for {len(cols)} channels")
    shape = [m["rows"]] if ndim == 1 else [m["rows"], len(cols)]
    if len(set(c.dtype for c in cols)) != 1:
        raise QresFormatError("manifest: an array file has one dtype")
    out = stack(cols)
    if m["big_endian"]:
        out = out.astype(out.dtype.newbyteorder(">"))
    return out.reshape(shape)


__all__ = ["compress", "decompress", "compress_columns", "decompress_columns"]
