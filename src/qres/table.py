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

`format_column` / `write_csv` render the columns back as the same text, byte for byte. Each numeric
column keeps a formatting style (fixed decimals, shortest digits, exponent form, sign, zero padding)
chosen to fit most of its cells, and the cells written otherwise (``007`` among ``7``, ``1.10``
among ``1.1``, a NaN spelt differently) as exceptions in ``meta["cells"]``. ``Table.layout`` keeps
the CSV text around the cells: a BOM, which columns are quoted, the records not written the way
`write_csv` writes them (another line end, quotes where none are needed, no final line end) and
trailing blank lines. ``Column.meta`` and ``Table.layout`` are plain JSON (str keys, lists, ints,
strs, bools) and survive ``json.loads(json.dumps(...))``.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Literal, Sequence

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
# Largest width, number of decimals or digits a column's style may ask for (a damaged file could ask for more).
_MAX_DIGITS = 100
_PIECE_CHARS = 1 << 20  # write_csv writes the text in pieces of about this many characters


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
    """Columns of equal length, in file order, the line ending the CSV text used, and its other layout.

    `layout` (JSON): ``bom`` (the file started with a UTF-8 BOM), ``quoted`` (indexes of the columns
    whose cells are quoted), ``quoted_header``, ``records`` ([[record, text], ...]: records written
    otherwise than `write_csv` would, the header being record 0) and ``tail`` (text after the last record).
    """

    columns: list[Column]
    newline: str = "\n"
    layout: dict = field(default_factory=dict)

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
) -> tuple[Iterable[str], Callable[[], int], Callable[[], None], bool]:
    """(line iterator, bytes-read-so-far function, closer, starts with a UTF-8 BOM) for a path or a text stream."""
    if isinstance(source, (str, os.PathLike)):
        raw = open(source, "rb")  # noqa: SIM115 - closed by the returned closer
        bom = raw.read(3) == codecs.BOM_UTF8
        raw.seek(0)
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        return text, raw.tell, text.close, bom
    if isinstance(source, io.TextIOBase) or hasattr(source, "read"):
        count = [0]

        def counted() -> Iterator[str]:
            for line in source:  # type: ignore[union-attr]
                count[0] += len(line)
                yield line

        return counted(), lambda: count[0], lambda: None, False
    raise TypeError(f"read_csv needs a path or a text stream, not {type(source).__name__}")


class _Lines:
    """The source's lines, keeping the text read since the last `take` (one CSV record)."""

    def __init__(self, lines: Iterable[str]):
        self._lines = iter(lines)
        self._read: list[str] = []

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._read.append(line)
        return line

    def take(self) -> str:
        text = "".join(self._read)
        self._read.clear()
        return text


_ENDS = ("\n", "\r\n", "\r", "")  # a record's line end, by its code in _Records.ends
_END_CODES = {e: i for i, e in enumerate(_ENDS)}


@dataclass
class _Records:
    """The raw text of a CSV file's records, kept cheaply: most records are their cells joined by
    commas plus a line end, so only the line end's code is kept; the others' text is kept whole."""

    ends: bytearray = field(default_factory=bytearray)
    odd: dict[int, str] = field(default_factory=dict)
    tail: str = ""

    def add(self, raw: str, cells: list[str]) -> None:
        line = ",".join(cells)
        end = _END_CODES.get(raw[len(line) :]) if raw.startswith(line) else None
        if end is None or '"' in raw or cells == [""]:
            self.odd[len(self.ends)] = raw
            end = 1 if raw.endswith("\r\n") else _END_CODES[raw[-1:]] if raw[-1:] in ("\n", "\r") else 3
        self.ends.append(end)


def _read_rows(
    lines: Iterable[str], tell: Callable[[], int], progress: Callable[[int], None] | None
) -> tuple[list[str], list[list[str]], _Records]:
    """Header, the cells column by column and the records' text; QresFormatError on an empty file or ragged rows."""
    source = _Lines(lines)
    reader = csv.reader(source)
    records = _Records()
    try:
        header = next(reader, None)
        if header is None:
            raise QresFormatError("CSV is empty: expected a header row on line 1")
        if not header:
            raise QresFormatError(
                f"CSV line {reader.line_num}: the first row is blank; expected a header row naming the columns"
            )
        records.add(source.take(), header)
        n = len(header)
        columns: list[list[str]] = [[] for _ in range(n)]
        chunk: list[list[str]] = []
        blank_lines: list[tuple[int, str]] = []  # blank lines not yet placed; dropped at the end of the file
        for row in reader:
            raw = source.take()
            if not row:
                blank_lines.append((reader.line_num, raw))
                continue
            if len(row) != n:
                raise QresFormatError(
                    f"CSV line {reader.line_num}: row has {len(row)} cells, the header has {n}"
                )
            if blank_lines:
                if n > 1:
                    raise QresFormatError(
                        f"CSV line {blank_lines[0][0]}: blank line inside the data (0 cells, the header has {n})"
                    )
                for _, blank in blank_lines:  # one column: a blank line is an empty cell
                    chunk.append([""])
                    records.add(blank, [""])
                blank_lines.clear()
            chunk.append(row)
            records.add(raw, row)
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
    records.tail = "".join(raw for _, raw in blank_lines)
    if progress is not None:
        progress(tell())
    return header, columns, records


def read_csv(
    source: str | os.PathLike | io.TextIOBase,
    *,
    progress: Callable[[int], None] | None = None,
) -> Table:
    """Parse CSV text with a header row into a Table (see the module docstring for the kinds).

    `progress`, if given, is called every few thousand rows and once at the end with the number of
    bytes read so far (characters for a text stream).
    """
    lines, tell, close, bom = _source_lines(source)
    try:
        header, columns, records = _read_rows(lines, tell, progress)
    finally:
        close()
    newline, layout = _layout(header, columns, records)
    if bom:
        layout["bom"] = True
    return Table([_make_column(name, cells) for name, cells in zip(header, columns)], newline, layout)


def _quoting(raw: str, cells: list[str]) -> list[bool] | None:
    """Which cells the CSV record `raw` quotes, or None if it is not simply its cells, quoted or not, and commas."""
    quoted, pos = [], 0
    for cell in cells:
        if pos:
            if not raw.startswith(",", pos):
                return None
            pos += 1
        text = _quote(cell)
        if raw.startswith(text, pos):
            quoted.append(True)
        elif raw.startswith(cell, pos):
            quoted.append(False)
            text = cell
        else:
            return None
        pos += len(text)
    return quoted


def _layout(header: list[str], columns: list[list[str]], records: _Records) -> tuple[str, dict]:
    """The line end most records use, and the layout (see Table) that writes the records back as they were."""
    newline = max(_ENDS[:3], key=lambda e: records.ends.count(_END_CODES[e]))

    def row(i: int) -> list[str]:
        return header if i == 0 else [col[i - 1] for col in columns]

    # a column (or the header) is quoted when most of its cells that need no quotes have them
    votes = [0] * len(header)
    header_vote = 0
    for i, raw in records.odd.items():
        cells = row(i)
        quoted = _quoting(raw, cells)
        for j, q in enumerate(quoted or []):
            if not _needs_quotes(cells[j]):
                if i:
                    votes[j] += 1 if q else -1
                else:
                    header_vote += 1 if q else -1
    layout: dict = {}
    flags = [v > 0 for v in votes]
    if any(flags):
        layout["quoted"] = [j for j, f in enumerate(flags) if f]
    if header_vote > 0:
        layout["quoted_header"] = True
    nl = _END_CODES[newline]
    other_ends = (i for i, e in enumerate(records.ends) if e != nl)
    check = range(len(records.ends)) if any(flags) else sorted({0, *records.odd, *other_ends})
    diff = []
    for i in check:
        cells = row(i)
        raw = records.odd.get(i) or ",".join(cells) + _ENDS[records.ends[i]]
        if raw != _record(cells, [header_vote > 0] * len(cells) if i == 0 else flags, newline):
            diff.append([i, raw])
    if diff:
        layout["records"] = diff
    if records.tail:
        layout["tail"] = records.tail
    return newline, layout


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
        try:  # counters and ids up to 2^64 - 1
            values = np.array(cells, dtype=np.uint64) if not any("-" in c for c in cells) else None
        except (OverflowError, ValueError):
            values = None
        if values is None:  # digits that fit no 64-bit integer: a float would lose them, so keep the text
            return None
    return _fitted(Column(name, "int", values, {}), cells, lambda: _int_styles(cells, values))


def text_reason(col: Column) -> str:
    """Why a column was kept as text rather than numbers, naming its first telling cell (1-based data row)."""
    cells = [str(c) for c in col.values]
    if not any(c.strip() for c in cells):
        return "every cell is empty"
    for row, cell in enumerate(cells, start=1):
        c = cell.strip(" \t")
        if not c:
            continue
        if _INT_COLUMN.fullmatch(c + "\n") and not -(2**63) <= int(c) < 2**64:
            return f"data row {row}: {cell!r} is an integer outside the 64-bit range (a float would lose its digits)"
        try:
            float(c)
        except ValueError:
            return f"data row {row}: {cell!r} is not a number"
    return "its cells share no one number or date format (e.g. integers beyond 2^63 with negative ones)"


def _most(flags: Iterable[bool]) -> bool:
    """More True than False."""
    return sum(1 if f else -1 for f in flags) > 0


def _int_styles(cells: list[str], values: np.ndarray) -> list[dict]:
    """Styles to try when plain integers do not fit the cells: an explicit +, zero or space padding."""
    stripped = [c.strip(" \t") for c in cells]
    sign = {"plus": True} if _most(c[0] == "+" for c, v in zip(stripped, values.tolist()) if v >= 0) else {}
    styles = [sign] if sign else []
    zeros = Counter(len(c) for c in stripped if len(c.lstrip("+-")) > 1 and c.lstrip("+-")[0] == "0")
    spaced = Counter(len(c) for c in cells if c[:1] == " " and not c.endswith(" "))
    for pad, widths in (("0", zeros), (" ", spaced)):
        if widths and (width := widths.most_common(1)[0][0]) <= _MAX_DIGITS:
            styles.append({**sign, "pad": pad, "width": width})
    return styles


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
    info = [_decimals(c) for c in finite_cells]
    if finite_cells:
        meta["max_decimals"] = max(i[1] for i in info)
        frac_counts = {i[0] for i in info}
        if any(i[2] for i in info):
            style = {"style": "repr"}
        elif len(frac_counts) == 1 and _fixed_round_trips(values[finite], next(iter(frac_counts))):
            style = {"style": "fixed", "decimals": next(iter(frac_counts))}
        else:
            style = {"style": "positional", "min_decimals": min(frac_counts)}
    else:
        style = {"style": "repr"}
        meta["max_decimals"] = 0
    # Integers read into a float column (because of empty cells) must stay exact.
    ints_only = style["style"] != "repr" and meta["max_decimals"] == 0
    if ints_only and finite_cells and float(np.max(np.abs(values[finite]))) >= _FLOAT_EXACT_INT:
        big = np.flatnonzero(finite & (np.abs(values) >= _FLOAT_EXACT_INT)).tolist()
        if any(int(float(stripped[i])) != int(stripped[i].partition(".")[0]) for i in big):
            return None
    if nan.any():
        meta["nan_text"] = Counter(cells[i] for i in np.flatnonzero(nan).tolist()).most_common(1)[0][0]
    col = Column(name, "float", values, {**meta, **style})
    return _fitted(col, cells, lambda: [{**meta, **s} for s in _float_styles(style, finite_cells, info)])


def _float_styles(base: dict, cells: list[str], info: list[tuple[int, int, bool]]) -> list[dict]:
    """Styles to try when `base` does not fit the (stripped, finite) cells: an explicit +, E for e, no +
    in exponents, the most common number of decimals, exponent forms, and %g with enough digits."""
    exps = [c for c, i in zip(cells, info) if i[2]]
    exponents = [c.lower().partition("e")[2] for c in exps]
    mods = {}
    if _most(c[0] == "+" for c in cells if c[0] != "-"):
        mods["plus"] = True
    if _most("E" in c for c in exps):
        mods["upper"] = True
    if not _most(e[0] == "+" for e in exponents if e[0] != "-") and any(e[0] != "-" for e in exponents):
        mods["exp_plus"] = False
    styles = [{**base, **mods}] if mods else []
    plain = Counter(i[0] for i in info if not i[2])
    if plain and (decimals := plain.most_common(1)[0][0]) <= _MAX_DIGITS:
        styles.append({"style": "fixed", "decimals": decimals, **mods})
    if exps:
        digits = min(min(len(e.lstrip("+-")) for e in exponents), 5)
        styles.append({"style": "sci", "exp_digits": digits, **mods})
        precision = Counter(i[0] for i in info if i[2]).most_common(1)[0][0]
        if precision <= _MAX_DIGITS:
            styles.append({"style": "sci", "precision": precision, "exp_digits": digits, **mods})
    significant = max((len(c.lower().partition("e")[0].lstrip("+-").replace(".", "").lstrip("0")) for c in cells), default=0)
    if 0 < significant <= 17:
        styles.append({"style": "general", "precision": significant, **mods})
    return styles


def _fitted(col: Column, cells: list[str], styles: Callable[[], list[dict]]) -> Column:
    """`col` with the meta (its own, else one of `styles()`) whose rendering leaves the fewest
    characters of cells to keep as exceptions, and those cells in ``meta["cells"]``."""
    runs = _differences(format_column(col), cells)
    if runs:
        best = (_cost(runs), col.meta, runs)
        for meta in styles():
            col.meta = meta
            found = _differences(format_column(col), cells)
            if _cost(found) < best[0]:
                best = (_cost(found), meta, found)
            if not found:
                break
        _, meta, runs = best
        col.meta = {**meta, "cells": runs} if runs else meta
    return col


def _differences(rendered: list[str], cells: list[str]) -> list[list]:
    """[[first row, count, text], ...]: the runs of equal cells that `rendered` does not reproduce."""
    runs: list[list] = []
    if rendered == cells:
        return runs
    for r in [i for i, (a, b) in enumerate(zip(rendered, cells)) if a != b]:
        text = cells[r]
        if runs and runs[-1][2] == text and runs[-1][0] + runs[-1][1] == r:
            runs[-1][1] += 1
        else:
            runs.append([r, 1, text])
    return runs


def _cost(runs: list[list]) -> int:
    """About the length of `runs` as JSON."""
    return sum(len(text) + 12 for _, _, text in runs)


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
        values = np.asarray(col.values)
        out = _format_int(values if values.dtype == np.uint64 else values.astype(np.int64), col.meta)
    elif col.kind == "float":
        out = _format_float(np.asarray(col.values, dtype=np.float64), col.meta)
    elif col.kind == "timestamp":
        out = _format_timestamp(np.asarray(col.values, dtype=np.int64), col.meta)
    else:
        raise ValueError(f"column {col.name!r}: unknown kind {col.kind!r}")
    # the cells kept as written ("nan_other": the same, for NaN cells, in files of earlier versions)
    for run in _json_list(col.meta, "nan_other") + _json_list(col.meta, "cells"):
        first, count, text = run if isinstance(run, list) and len(run) == 3 else (None, None, None)
        if not (type(first) is int and type(count) is int and isinstance(text, str) and first >= 0 and 0 < count <= len(out) - first):
            raise QresFormatError(f"column {col.name!r}: damaged cell exception {run!r:.80}")
        out[first : first + count] = [text] * count
    return out


def _meta_int(meta: dict, key: str, default: int | None = None, top: int = _MAX_DIGITS) -> int:
    """meta[key], checked to be an int in 0..top (a damaged file's meta could hold anything)."""
    value = meta.get(key, default)
    if type(value) is not int or not 0 <= value <= top:
        raise QresFormatError(f"damaged column format: {key} = {value!r:.40}")
    return value


def _format_int(values: np.ndarray, meta: dict) -> list[str]:
    if not meta.get("plus") and "pad" not in meta:
        return values.astype(str).tolist()
    pad = meta.get("pad", " ")
    if pad not in ("0", " "):
        raise QresFormatError(f"damaged column format: pad = {pad!r:.40}")
    spec = f"{'+' if meta.get('plus') else ''}{'0' if pad == '0' else ''}{_meta_int(meta, 'width', 0) or ''}d"
    return [format(v, spec) for v in values.tolist()]


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
    """Styles: fixed (`decimals`), positional (shortest, at least `min_decimals`), sci (exponent form:
    shortest or `precision` digits, `exp_digits`), general (%g with `precision`), repr; then `plus`
    (+ on positive numbers), `upper` (E for e) and `exp_plus` False (1e5 for 1e+05)."""
    style = meta.get("style", "repr")
    floats = values.tolist()
    if style == "fixed":
        out = _render_fixed(floats, _meta_int(meta, "decimals"))
    elif style == "positional":
        m = _meta_int(meta, "min_decimals", 0)
        out = [_positional(v, m) for v in floats]
    elif style == "sci":
        digits, precision = _meta_int(meta, "exp_digits", 2, 5), meta.get("precision")
        if precision is None:
            out = [np.format_float_scientific(v, unique=True, trim="-", exp_digits=digits) for v in floats]
        else:
            p = _meta_int(meta, "precision")
            out = [np.format_float_scientific(v, precision=p, unique=False, exp_digits=digits) for v in floats]
    elif style == "general":
        spec = f".{_meta_int(meta, 'precision', 17)}g"
        out = [format(v, spec) for v in floats]
    else:
        out = [repr(v) for v in floats]
    if meta.get("exp_plus") is False:
        out = [s.replace("e+", "e") for s in out]
    if meta.get("upper"):
        out = [s.upper() for s in out]
    finite = np.isfinite(values)
    if meta.get("plus"):
        for i in np.flatnonzero(finite & ~np.signbit(values)).tolist():
            out[i] = "+" + out[i]
    if not finite.all():
        nan_text = meta.get("nan_text", "nan")
        for i in np.flatnonzero(~finite).tolist():
            v = floats[i]
            out[i] = nan_text if v != v else ("inf" if v > 0 else "-inf")
    return out


def _format_timestamp(ticks: np.ndarray, meta: dict) -> list[str]:
    unit = meta.get("unit", "s")
    if unit not in _UNITS:
        raise QresFormatError(f"damaged column format: unit = {unit!r:.40}")
    stamps = ticks.astype(f"datetime64[{unit}]")
    if "sep" not in meta:  # a column built elsewhere: numpy's ISO form at its own unit
        return np.datetime_as_string(stamps).tolist()
    sep = meta["sep"]
    if sep not in ("", " ", "T"):
        raise QresFormatError(f"damaged column format: sep = {sep!r:.40}")
    digits = _meta_int(meta, "fraction_digits", 0, 9)
    render = _render_unit(meta)
    text = np.datetime_as_string(stamps.astype(f"datetime64[{render}]"), unit=render).tolist()
    cut = (-(-digits // 3) * 3 - digits) if digits else 0
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


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')
_QUOTE_OR_BREAK = re.compile(r'["\r\n]')


def _needs_quotes(cell: str) -> bool:
    return _NEEDS_QUOTES.search(cell) is not None


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


def _record(cells: Sequence[str], quoted: list[bool], newline: str) -> str:
    """One CSV record: the cells that need quotes (or are in a quoted column) quoted, then the line end."""
    line = ",".join(cells)
    if line.count(",") == len(cells) - 1 and True not in quoted and not _QUOTE_OR_BREAK.search(line):
        return line + newline if line or len(cells) != 1 else '""' + newline  # a blank line would be no cell
    return ",".join([_quote(c) if q or _needs_quotes(c) else c for c, q in zip(cells, quoted)]) + newline


def write_csv(table: Table, dest: str | os.PathLike | io.TextIOBase) -> None:
    """Write `table` as CSV: header row, then the cells from format_column, in the table's layout."""
    _check_lengths(table)
    cells = [format_column(c) for c in table.columns]
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "w", encoding="utf-8", newline="") as f:
            f.writelines(_csv_text(table, cells))
    else:
        dest.writelines(_csv_text(table, cells))


def _csv_text(table: Table, cells: list[list[str]]) -> Iterator[str]:
    """The CSV text in pieces of about _PIECE_CHARS characters."""
    layout = table.layout
    if not isinstance(layout, dict):
        raise QresFormatError("damaged table layout: not an object")
    n, width = table.n_rows, len(table.columns)
    quoted = [False] * width
    for j in _json_list(layout, "quoted"):
        if type(j) is not int or not 0 <= j < width:
            raise QresFormatError(f"damaged table layout: no column {j!r} to quote")
        quoted[j] = True
    records = {}
    for item in _json_list(layout, "records"):
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int and 0 <= item[0] <= n and isinstance(item[1], str)):
            raise QresFormatError(f"damaged table layout: bad record {str(item)[:80]}")
        records[item[0]] = item[1]
    tail = layout.get("tail", "")
    if not isinstance(tail, str):
        raise QresFormatError("damaged table layout: 'tail' is not text")
    if layout.get("bom"):
        yield "\ufeff"
    yield records.get(0) or _record(table.names, [bool(layout.get("quoted_header"))] * width, table.newline)
    piece: list[str] = []
    size = 0
    for i, row in enumerate(zip(*cells), start=1):
        piece.append(records.get(i) or _record(row, quoted, table.newline))
        size += len(piece[-1])
        if size >= _PIECE_CHARS:
            yield "".join(piece)
            piece.clear()
            size = 0
    yield "".join(piece)
    yield tail


def _json_list(meta: dict, key: str) -> list:
    value = meta.get(key, [])
    if not isinstance(value, list):
        raise QresFormatError(f"damaged table layout: {key!r} is not a list")
    return value


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
