"""The table layer: CSV text (or a .npy array) <-> typed columns of numpy arrays.

`read_csv` turns a CSV file with a header row into a `Table` of `Column`s, each of one kind:

* ``"int"``: every cell is an optional sign and ASCII digits (spaces around allowed) and fits int64;
  values are int64.
* ``"float"``: every cell is a decimal number (optionally in scientific notation), ``nan``/``inf``
  /``infinity`` (any case, optional sign) or empty; values are float64 parsed with ``float()``,
  NaN for empty cells.
* ``"timestamp"``: every cell is an ISO-8601 date or date-time without zone, all in the same layout
  (``2010-01-01``, ``2010-01-01 00:00``, ``2015-02-04 17:51:00``, ``2016-11-24T13:58:58.081000``);
  values are int64 ticks since 1970-01-01 in ``meta["unit"]`` (the coarsest numpy unit that holds
  every value exactly, so hourly data is counted in hours).
* ``"text"``: anything else; values are the cells, unchanged.

`format_column` / `write_csv` render the columns back: ints as the same integers, floats as numbers
equal to the original ones (``float(new) == float(old)``, NaN stays NaN and keeps its spelling),
timestamps and text as the same text. Everything needed for that is in ``Column.meta``, which is
plain JSON (str keys, lists, ints, strs, bools) and survives ``json.loads(json.dumps(meta))``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Literal

import numpy as np

from qres.errors import QresFormatError

__all__ = [
    "Column",
    "Table",
    "read_csv",
    "write_csv",
    "format_column",
    "read_npy",
    "write_npy",
]

Kind = Literal["int", "float", "timestamp", "text"]

_PROGRESS_EVERY_ROWS = 16384
# Largest magnitude up to which every integer is exactly a float64.
_FLOAT_EXACT_INT = 2**53
# More NaN cells spelt differently from the column's usual NaN text than this many runs: keep as text.
_MAX_NAN_RUNS = 10000


# --------------------------------------------------------------------------------------------------
# data model


@dataclass
class Column:
    """One column: its name, kind, values and the facts (`meta`) needed to render it back exactly."""

    name: str
    kind: Kind
    values: np.ndarray | list[str]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def decimals_hint(self) -> int | None:
        """Largest number of decimals a float column's text used (a hint for the codec), else None."""
        return self.meta.get("max_decimals")


@dataclass
class Table:
    """Columns of equal length, in file order, and the line ending the CSV text used."""

    columns: list[Column]
    newline: str = "\n"

    @property
    def n_rows(self) -> int:
        return len(self.columns[0].values) if self.columns else 0

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


# --------------------------------------------------------------------------------------------------
# reading CSV


def _source_lines(
    source: str | os.PathLike | io.TextIOBase,
) -> tuple[Iterable[str], Callable[[], int], Callable[[], None]]:
    """(line iterator, bytes-read-so-far function, closer) for a path or an open text stream."""
    if isinstance(source, (str, os.PathLike)):
        raw = open(source, "rb")  # noqa: SIM115 - closed by the returned closer
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        return text, raw.tell, text.close
    if isinstance(source, io.TextIOBase) or hasattr(source, "read"):
        count = [0]

        def counted() -> Iterator[str]:
            for line in source:  # type: ignore[union-attr]
                count[0] += len(line)
                yield line

        return counted(), lambda: count[0], lambda: None
    raise TypeError(f"read_csv needs a path or a text stream, not {type(source).__name__}")


def _read_rows(
    lines: Iterable[str], tell: Callable[[], int], progress: Callable[[int], None] | None
) -> tuple[list[str], list[list[str]]]:
    """Header and the cells column by column; raise QresFormatError on an empty file or ragged rows."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            raise QresFormatError("CSV is empty: expected a header row on line 1")
        if not header:
            raise QresFormatError(
                f"CSV line {reader.line_num}: the first row is blank; expected a header row naming the columns"
            )
        n = len(header)
        columns: list[list[str]] = [[] for _ in range(n)]
        chunk: list[list[str]] = []
        blank_lines: list[int] = []  # blank lines not yet placed; dropped at the end of the file
        for row in reader:
            if not row:
                blank_lines.append(reader.line_num)
                continue
            if len(row) != n:
                raise QresFormatError(
                    f"CSV line {reader.line_num}: row has {len(row)} cells, the header has {n}"
                )
            if blank_lines:
                if n > 1:
                    raise QresFormatError(
                        f"CSV line {blank_lines[0]}: blank line inside the data (0 cells, the header has {n})"
                    )
                chunk.extend([[""]] * len(blank_lines))  # one column: a blank line is an empty cell
                blank_lines.clear()
            chunk.append(row)
            if len(chunk) >= _PROGRESS_EVERY_ROWS:
                for col, cells in zip(columns, zip(*chunk)):
                    col.extend(cells)
                chunk.clear()
                if progress is not None:
                    progress(tell())
        for col, cells in zip(columns, zip(*chunk)):
            col.extend(cells)
    except csv.Error as exc:
        raise QresFormatError(f"CSV line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise QresFormatError(
            f"CSV after line {reader.line_num}: not UTF-8 text ({exc.reason} at byte {exc.start} of a read block)"
        ) from None
    if progress is not None:
        progress(tell())
    return header, columns


def read_csv(
    source: str | os.PathLike | io.TextIOBase,
    *,
    progress: Callable[[int], None] | None = None,
) -> Table:
    """Parse CSV text with a header row into a Table (see the module docstring for the kinds).

    `progress`, if given, is called every few thousand rows and once at the end with the number of
    bytes read so far (characters for a text stream).
    """
    newline = "\n"
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            if f.readline(1 << 20).endswith(b"\r\n"):
                newline = "\r\n"
    lines, tell, close = _source_lines(source)
    try:
        header, columns = _read_rows(lines, tell, progress)
    finally:
        close()
    return Table([_make_column(name, cells) for name, cells in zip(header, columns)], newline)


# ---- kind detection

_INT_CELL = r"[ \t]*[+-]?[0-9]+[ \t]*"
_NUM = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_SPECIAL = r"[+-]?(?i:nan|inf|infinity)"
_FLOAT_CELL = rf"[ \t]*(?:{_NUM}|{_SPECIAL})?[ \t]*"
_INT_COLUMN = re.compile(rf"(?:{_INT_CELL}\n)*")
_FLOAT_COLUMN = re.compile(rf"(?:{_FLOAT_CELL}\n)*")
_TS_FIRST = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:([T ])[0-9]{2}:[0-9]{2}(?:(:)[0-9]{2}(?:\.([0-9]{1,9}))?)?)?"
)
_FRAC_UNIT = {3: "ms", 6: "us", 9: "ns"}
# Coarsening ladder for timestamp ticks: (unit, how many of the next finer unit make one).
_LADDER = [("ns", 1), ("us", 1000), ("ms", 1000), ("s", 1000), ("m", 60), ("h", 60), ("D", 24)]
_UNITS = [u for u, _ in _LADDER]


def _joined(cells: list[str]) -> str | None:
    """The cells one per line, or None when a cell itself holds a newline (then no pattern applies)."""
    text = "\n".join(cells) + "\n"
    return text if text.count("\n") == len(cells) else None


def _make_column(name: str, cells: list[str]) -> Column:
    if not cells or all(not c for c in cells):
        return Column(name, "text", list(cells), {})
    joined = _joined(cells)
    if joined is not None:
        if _INT_COLUMN.fullmatch(joined):
            col = _int_column(name, cells)
            if col is not None:
                return col
        elif _FLOAT_COLUMN.fullmatch(joined):
            col = _float_column(name, cells)
            if col is not None:
                return col
        else:
            col = _timestamp_column(name, cells, joined)
            if col is not None:
                return col
    return Column(name, "text", list(cells), {})


def _int_column(name: str, cells: list[str]) -> Column | None:
    try:
        values = np.array(cells, dtype=np.int64)
    except (OverflowError, ValueError):
        # Digits that do not fit int64: a float would lose them, so keep the text as it is.
        return None
    return Column(name, "int", values, {})


def _decimals(cell: str) -> tuple[int, int, bool]:
    """(digits after the point, decimals of the value, uses an exponent) of a stripped finite cell."""
    mant, e, exp = cell.lower().partition("e")
    point = mant.find(".")
    frac = len(mant) - point - 1 if point >= 0 else 0
    if not e:
        return frac, frac, False
    return frac, max(0, frac - int(exp)), True


def _float_column(name: str, cells: list[str]) -> Column | None:
    stripped = [c.strip(" \t") for c in cells]
    has_empty = any(not c for c in stripped)
    try:
        values = np.array([c or "nan" for c in stripped] if has_empty else cells, dtype=np.float64)
    except (OverflowError, ValueError):
        return None
    finite = np.isfinite(values)
    nan = np.isnan(values)
    meta: dict = {}
    finite_cells = [c for c, f in zip(stripped, finite.tolist()) if f]
    if finite_cells:
        info = [_decimals(c) for c in finite_cells]
        frac_counts = {i[0] for i in info}
        meta["max_decimals"] = max(i[1] for i in info)
        if any(i[2] for i in info):
            meta["style"] = "repr"
        elif len(frac_counts) == 1 and _fixed_round_trips(values[finite], next(iter(frac_counts))):
            meta["style"] = "fixed"
            meta["decimals"] = next(iter(frac_counts))
        else:
            meta["style"] = "positional"
            meta["min_decimals"] = min(frac_counts)
    else:
        meta["style"] = "repr"
        meta["max_decimals"] = 0
    # Integers read into a float column (because of empty cells) must stay exact.
    ints_only = meta["style"] != "repr" and meta["max_decimals"] == 0
    if ints_only and finite_cells and float(np.max(np.abs(values[finite]))) >= _FLOAT_EXACT_INT:
        big = np.flatnonzero(finite & (np.abs(values) >= _FLOAT_EXACT_INT)).tolist()
        if any(int(float(stripped[i])) != int(stripped[i].partition(".")[0]) for i in big):
            return None
    if nan.any():
        nan_rows = np.flatnonzero(nan)
        nan_texts = [cells[i] for i in nan_rows.tolist()]
        usual = Counter(nan_texts).most_common(1)[0][0]
        meta["nan_text"] = usual
        runs = _runs(nan_rows.tolist(), nan_texts, usual)
        if runs:
            if len(runs) > _MAX_NAN_RUNS:
                return None
            meta["nan_other"] = runs
    return Column(name, "float", values, meta)


def _runs(rows: list[int], texts: list[str], usual: str) -> list[list]:
    """[[first row, count, text], ...] for consecutive rows whose NaN text is not `usual`."""
    runs: list[list] = []
    for r, t in zip(rows, texts):
        if t == usual:
            continue
        if runs and runs[-1][2] == t and runs[-1][0] + runs[-1][1] == r:
            runs[-1][1] += 1
        else:
            runs.append([r, 1, t])
    return runs


def _render_fixed(values: list[float], decimals: int) -> list[str]:
    fmt = f"{{:.{decimals}f}}".format
    return [fmt(v) for v in values]


def _fixed_round_trips(finite_values: np.ndarray, decimals: int) -> bool:
    rendered = _render_fixed(finite_values.tolist(), decimals)
    back = np.array(rendered, dtype=np.float64)
    return bool(np.array_equal(back.view(np.int64), finite_values.view(np.int64)))


def _timestamp_column(name: str, cells: list[str], joined: str) -> Column | None:
    first = _TS_FIRST.fullmatch(cells[0])
    if first is None:
        return None
    sep, seconds = first.group(1), first.group(2) is not None
    pattern = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    if sep:
        pattern += re.escape(sep) + r"[0-9]{2}:[0-9]{2}"
        if seconds:
            pattern += r":[0-9]{2}(?:\.[0-9]{1,9})?"
    if not re.fullmatch(rf"(?:{pattern}\n)*", joined):
        return None  # mixed layouts (or a zone suffix, or not a date at all): keep the text
    meta: dict = {"sep": sep or "", "seconds": seconds, "fraction_digits": 0}
    if seconds:
        # Every fraction has the same number of digits; cells may leave out a zero fraction
        # (as Python's isoformat() and pandas do), which then holds for every zero fraction.
        lengths = set(map(len, cells))
        frac_lengths = lengths - {19}
        if len(frac_lengths) > 1:
            return None
        if frac_lengths:
            meta["fraction_digits"] = next(iter(frac_lengths)) - 20
            if 19 in lengths:
                meta["omit_zero_fraction"] = True
    unit = _render_unit(meta)
    try:
        ticks = np.array(cells, dtype=f"datetime64[{unit}]").view(np.int64)
    except (ValueError, OverflowError):
        return None  # e.g. 2015-02-30
    # Coarsest unit that holds every value exactly (hourly data in hours, daily data in days).
    i = _UNITS.index(unit)
    while i + 1 < len(_LADDER) and not np.any(ticks % _LADDER[i + 1][1]):
        ticks = ticks // _LADDER[i + 1][1]
        i += 1
    meta["unit"] = _UNITS[i]
    col = Column(name, "timestamp", np.ascontiguousarray(ticks, dtype=np.int64), meta)
    try:
        same = format_column(col) == cells
    except (ValueError, OverflowError):
        same = False
    return col if same else None


def _render_unit(meta: dict) -> str:
    """The numpy unit in which a timestamp layout is written."""
    if not meta.get("sep"):
        return "D"
    if not meta.get("seconds"):
        return "m"
    digits = meta.get("fraction_digits", 0)
    if not digits:
        return "s"
    return _FRAC_UNIT[-(-digits // 3) * 3]


# --------------------------------------------------------------------------------------------------
# rendering


def format_column(col: Column) -> list[str]:
    """The cells of `col` as text, as write_csv writes them."""
    if col.kind == "text":
        return [str(v) for v in col.values]
    if col.kind == "int":
        return np.asarray(col.values, dtype=np.int64).astype(str).tolist()
    if col.kind == "float":
        return _format_float(np.asarray(col.values, dtype=np.float64), col.meta)
    if col.kind == "timestamp":
        return _format_timestamp(np.asarray(col.values, dtype=np.int64), col.meta)
    raise ValueError(f"column {col.name!r}: unknown kind {col.kind!r}")


def _positional(v: float, min_decimals: int) -> str:
    r = repr(v)
    if "e" in r or "n" in r:  # exponent form (|v| >= 1e16 or < 1e-4); 'n' is inf/nan, handled by caller
        return np.format_float_positional(v, unique=True, trim="-", min_digits=min_decimals)
    point = r.index(".")
    have = len(r) - point - 1
    if have < min_decimals:
        return r + "0" * (min_decimals - have)
    if min_decimals == 0 and r.endswith(".0"):
        return r[:-2]
    return r


def _format_float(values: np.ndarray, meta: dict) -> list[str]:
    style = meta.get("style", "repr")
    floats = values.tolist()
    if style == "fixed":
        out = _render_fixed(floats, int(meta["decimals"]))
    elif style == "positional":
        m = int(meta.get("min_decimals", 0))
        out = [_positional(v, m) for v in floats]
    else:
        out = [repr(v) for v in floats]
    finite = np.isfinite(values)
    if not finite.all():
        nan_text = meta.get("nan_text", "nan")
        for i in np.flatnonzero(~finite).tolist():
            v = floats[i]
            out[i] = nan_text if v != v else ("inf" if v > 0 else "-inf")
        for first, count, text in meta.get("nan_other", []):
            out[first : first + count] = [text] * count
    return out


def _format_timestamp(ticks: np.ndarray, meta: dict) -> list[str]:
    unit = meta.get("unit", "s")
    stamps = ticks.astype(f"datetime64[{unit}]")
    if "sep" not in meta:  # a column built elsewhere: numpy's ISO form at its own unit
        return np.datetime_as_string(stamps).tolist()
    render = _render_unit(meta)
    text = np.datetime_as_string(stamps.astype(f"datetime64[{render}]"), unit=render).tolist()
    digits = int(meta.get("fraction_digits", 0))
    cut = (-(-digits // 3) * 3 - digits) if digits else 0
    sep = meta["sep"]
    if cut:
        text = [s[:-cut] for s in text]
    if digits and meta.get("omit_zero_fraction"):
        zero = "." + "0" * digits
        text = [s[: -digits - 1] if s.endswith(zero) else s for s in text]
    if sep and sep != "T":
        text = [s[:10] + sep + s[11:] for s in text]
    return text


# --------------------------------------------------------------------------------------------------
# writing CSV


def _check_lengths(table: Table) -> int:
    if not table.columns:
        raise ValueError("table has no columns")
    n = table.n_rows
    for c in table.columns:
        if len(c.values) != n:
            raise ValueError(f"column {c.name!r} has {len(c.values)} values, column 0 has {n}")
    return n


def write_csv(table: Table, dest: str | os.PathLike | io.TextIOBase) -> None:
    """Write `table` as CSV (header row, then the cells from format_column; the table's line ends)."""
    _check_lengths(table)
    cells = [format_column(c) for c in table.columns]
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "w", encoding="utf-8", newline="") as f:
            _write(f, table, cells)
    else:
        _write(dest, table, cells)


def _write(f, table: Table, cells: list[list[str]]) -> None:
    # The csv module quotes a cell holding a line-end character only if that character is in
    # the line terminator: with a bare CR somewhere in the text, end lines with CRLF instead.
    names = [c.name for c in table.columns]
    text_cells = [cs for c, cs in zip(table.columns, cells) if c.kind == "text"]
    has_cr = any("\r" in x for x in names) or any("\r" in x for cs in text_cells for x in cs)
    writer = csv.writer(f, lineterminator="\r\n" if has_cr else table.newline)
    writer.writerow([c.name for c in table.columns])
    writer.writerows(zip(*cells))


# --------------------------------------------------------------------------------------------------
# .npy


def read_npy(path: str | os.PathLike) -> Table:
    """A 1-D or 2-D numeric .npy array as columns c0, c1, ... (int kinds as int64, floats as float64).

    `meta["dtype"]` keeps the array's dtype (byte order included), so write_npy restores the same
    dtype and bits; values of unsigned 64-bit arrays are stored as their int64 bit patterns.
    """
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise QresFormatError(f"{os.fspath(path)}: not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise QresFormatError(f"{os.fspath(path)}: expected a .npy array, found {type(arr).__name__}")
    if arr.ndim not in (1, 2):
        raise QresFormatError(f"{os.fspath(path)}: expected a 1-D or 2-D array, found shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise QresFormatError(f"{os.fspath(path)}: dtype {arr.dtype} is not an integer or float type")
    fortran = bool(arr.ndim == 2 and arr.flags.f_contiguous and not arr.flags.c_contiguous)
    cols2d = arr.reshape(-1, 1) if arr.ndim == 1 else arr
    if cols2d.shape[1] == 0:
        raise QresFormatError(f"{os.fspath(path)}: array of shape {arr.shape} has no columns")
    base = {"dtype": arr.dtype.str, "npy_ndim": arr.ndim}
    if fortran:
        base["fortran_order"] = True
    columns = []
    for j in range(cols2d.shape[1]):
        src = cols2d[:, j]
        meta = dict(base)
        if arr.dtype.kind == "f":
            with np.errstate(invalid="ignore"):  # signalling NaNs
                values = np.ascontiguousarray(src, dtype=np.float64)
                back = values.astype(arr.dtype)
            bits = _bits_dtype(arr.dtype)
            diff = np.flatnonzero(back.view(bits) != np.ascontiguousarray(src).view(bits))
            if diff.size:  # NaN payloads that the float64 conversion changed (signalling NaNs)
                meta["patch"] = [[int(i), int(src[i : i + 1].view(bits)[0])] for i in diff]
            columns.append(Column(f"c{j}", "float", values, meta))
        else:
            values = np.ascontiguousarray(src).astype(np.int64)  # u8 wraps to its bit pattern
            columns.append(Column(f"c{j}", "int", values, meta))
    return Table(columns)


def _bits_dtype(dtype: np.dtype) -> np.dtype:
    """The unsigned integer type of the same width and byte order, to look at a float's bits."""
    return np.dtype(f"u{dtype.itemsize}").newbyteorder(dtype.byteorder)


def _npy_column(col: Column) -> np.ndarray:
    if col.kind not in ("int", "float"):
        raise QresFormatError(f"column {col.name!r} is {col.kind}; a .npy array holds only numbers")
    values = np.asarray(col.values)
    dtype = np.dtype(col.meta.get("dtype", values.dtype.str))
    out = values.astype(dtype)
    for i, bits in col.meta.get("patch", []):
        out[i : i + 1].view(_bits_dtype(dtype))[0] = bits
    return out


def write_npy(table: Table, path: str | os.PathLike) -> None:
    """Write a table of int/float columns as a .npy array, restoring read_npy's dtype and shape."""
    _check_lengths(table)
    arrays = [_npy_column(c) for c in table.columns]
    dtypes = {a.dtype for a in arrays}
    dtype = arrays[0].dtype if len(dtypes) == 1 else np.result_type(*arrays)
    if len(dtypes) > 1:
        for c, a in zip(table.columns, arrays):
            if not np.array_equal(a.astype(dtype).astype(a.dtype), a, equal_nan=a.dtype.kind == "f"):
                raise QresFormatError(f"column {c.name!r} ({a.dtype}) does not fit the common dtype {dtype}")
    meta0 = table.columns[0].meta
    if len(arrays) == 1 and meta0.get("npy_ndim") == 1:
        out = arrays[0]
    else:
        order = "F" if meta0.get("fortran_order") else "C"
        out = np.empty((table.n_rows, len(arrays)), dtype=dtype, order=order)
        for j, a in enumerate(arrays):
            out[:, j] = a
    np.save(path, out, allow_pickle=False)
