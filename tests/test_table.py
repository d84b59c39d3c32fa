"""Tests of qres.table: CSV text / .npy arrays <-> typed columns, and back exactly."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qres import datasets
from qres.cli import columns_to_table, table_to_columns
from qres.codec.stream import compress_columns, decompress_columns
from qres.errors import QresFormatError
from qres.table import Column, Table, format_column, read_csv, read_npy, write_csv, write_npy

BUNDLED = sorted(datasets.data_dir().glob("*.csv"))


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def round_trip(text: str) -> tuple[Table, str]:
    table = read_csv(io.StringIO(text, newline=""))
    out = io.StringIO(newline="")
    write_csv(table, out)
    return table, out.getvalue()


def same_float(new: str, old: str, sign: bool = True) -> bool:
    """float(new) == float(old), NaN stays NaN, the sign of zero kept if `sign` (empty cells stay empty)."""
    if old.strip() == "" or new == "":
        return new == old
    a, b = float(new), float(old)
    if math.isnan(b):
        return math.isnan(a)
    return a == b and (not sign or math.copysign(1.0, a) == math.copysign(1.0, b))


def csv_text(header: list[str], columns: list[list[str]], eol: str = "\n") -> str:
    """CSV text written by the csv module (CRLF line ends when a cell holds a bare CR, so it gets quoted)."""
    if any("\r" in c for c in header) or any("\r" in c for col in columns for c in col):
        eol = "\r\n"
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator=eol)
    writer.writerow(header)
    writer.writerows(zip(*columns))
    return buf.getvalue()


def assert_cells_match(table: Table, old_rows: list[list[str]], new_rows: list[list[str]]) -> None:
    """The rendered cells have the numbers/text of the originals, column by column, by kind."""
    assert new_rows[0] == old_rows[0], "header changed"
    assert len(new_rows) == len(old_rows), "row count changed"
    for j, col in enumerate(table.columns):
        old = [r[j] for r in old_rows[1:]]
        new = [r[j] for r in new_rows[1:]]
        if col.kind == "int":
            assert [int(x) for x in new] == [int(x) for x in old], col.name
        elif col.kind == "float":
            bad = [(i, o, n) for i, (o, n) in enumerate(zip(old, new)) if not same_float(n, o)]
            assert not bad, f"{col.name}: {bad[:5]}"
        else:
            assert new == old, col.name


def assert_meta_is_json(table: Table) -> None:
    for col in table.columns:
        assert json.loads(json.dumps(col.meta, allow_nan=False)) == col.meta, col.name


# ---------------------------------------------------------------------------------------------
# bundled data


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_round_trip(path):
    text = path.read_text(encoding="utf-8")
    table, out = round_trip(text)
    old_rows, new_rows = rows_of(text), rows_of(out)
    assert table.n_rows == len(old_rows) - 1
    assert_cells_match(table, old_rows, new_rows)
    assert_meta_is_json(table)
    # Value arrays are what the text says: float(cell) / int(cell) / the cells themselves.
    for j, col in enumerate(table.columns):
        cells = [r[j] for r in old_rows[1:]]
        if col.kind == "int":
            assert col.values.dtype == np.int64
            assert col.values.tolist() == [int(c) for c in cells]
        elif col.kind == "float":
            assert col.values.dtype == np.float64
            assert np.array_equal(col.values, np.array([float(c) for c in cells]), equal_nan=True)


@pytest.mark.parametrize("name", datasets.names())
def test_bundled_kinds_and_values_match_datasets(name):
    table = read_csv(datasets.path(name))
    for ch in datasets.channels(name):
        col = table[ch.name]
        if ch.decimals == 0:
            assert col.kind == "int", ch.name
            assert np.array_equal(col.values, ch.exact_integers)
        else:
            assert col.kind == "float", ch.name
            if np.abs(ch.exact_integers).max() <= 2**53:  # then n / 10**d is correctly rounded
                assert col.values.tobytes() == ch.values.tobytes(), ch.name
            assert col.decimals_hint == col.meta["max_decimals"] == ch.decimals, ch.name


def test_bundled_time_columns_are_timestamps():
    ppg = read_csv(datasets.path("heartpy_ppg"))["timer_ms"]
    assert ppg.kind == "timestamp" and ppg.values.dtype == np.int64
    assert ppg.meta["unit"] == "ms"  # written with 6 digits, but every value is whole milliseconds
    assert ppg.values[0] == np.datetime64("2016-11-24T13:58:58.081", "ms").astype(np.int64)
    seattle = read_csv(datasets.path("seattle_temps"))
    assert seattle["date"].kind == "timestamp" and seattle["date"].meta["unit"] == "h"
    assert np.all(np.diff(seattle["date"].values) >= 1)
    assert seattle["temp_f"].meta["decimals"] == 1
    assert read_csv(datasets.path("taylor_electricity"))["demand_mw"].meta["decimals"] == 1
    occ = read_csv(datasets.path("occupancy"))
    assert occ["time"].kind == "timestamp"


def test_bundled_files_come_back_byte_identical():
    for path in BUNDLED:
        text = path.read_text(encoding="utf-8")
        assert round_trip(text)[1] == text, path.name


def test_large_file_parses_every_row():
    table = read_csv(datasets.path("heartpy_ppg"))
    assert table.n_rows == 68476


def test_progress_reports_bytes_read(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(50000)))
    seen: list[int] = []
    table = read_csv(path, progress=seen.append)
    assert table.n_rows == 50000
    assert len(seen) >= 2
    assert seen == sorted(seen)
    assert seen[-1] == path.stat().st_size
    stream_seen: list[int] = []
    read_csv(io.StringIO(path.read_text()), progress=stream_seen.append)
    assert stream_seen[-1] == path.stat().st_size  # ASCII: characters == bytes


def test_read_from_path_and_write_to_path(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"\xef\xbb\xbfname,x\n\"a, b\",1.25\nc,2.5\n")  # with a UTF-8 BOM
    table = read_csv(src)
    assert table.names == ["name", "x"] and table.layout == {"bom": True}  # the BOM is not part of a name
    dst = tmp_path / "out.csv"
    write_csv(table, dst)
    assert dst.read_bytes() == src.read_bytes()


# ---------------------------------------------------------------------------------------------
# hand-written CSVs


def test_quotes_and_text_columns():
    text = 'id,label,note\n1,"a, b","say ""hi"""\n2,plain,"two\nlines"\n3,x,\n'
    table, out = round_trip(text)
    assert [c.kind for c in table.columns] == ["int", "text", "text"]
    assert table["label"].values == ["a, b", "plain", "x"]
    assert table["note"].values == ['say "hi"', "two\nlines", ""]
    assert out == text


def test_text_column_mixed_with_numbers_is_kept():
    text = "v,w\n1,7\n2.5,seven\n3,\n,007\n"
    table, out = round_trip(text)
    assert table["v"].kind == "float"
    assert table["w"].kind == "text"
    assert table["w"].values == ["7", "seven", "", "007"]
    assert out == text


def test_empty_cells_nan_and_inf():
    text = "a,b,c\n1.5,,inf\n,nan,-inf\n-2.25,NaN,Infinity\n3,,1e308\n"
    table, out = round_trip(text)
    a, b, c = table.columns
    assert a.kind == b.kind == c.kind == "float"
    assert np.isnan(a.values[1]) and a.values[2] == -2.25
    assert np.isnan(b.values).all()
    assert c.values[:3].tolist() == [math.inf, -math.inf, math.inf]
    new = rows_of(out)
    # NaN keeps its spelling, cell by cell
    assert [r[1] for r in new[1:]] == ["", "nan", "NaN", ""]
    assert [r[0] for r in new[1:]] == ["1.5", "", "-2.25", "3"]
    assert_cells_match(table, rows_of(text), new)
    assert_meta_is_json(table)


def test_ints_with_empty_cells_become_float():
    text = "n\n5\n\n-7\n"  # single column: a blank line between rows is an empty cell
    table, out = round_trip(text)
    col = table["n"]
    assert col.kind == "float"
    assert np.isnan(col.values[1]) and col.values[[0, 2]].tolist() == [5.0, -7.0]
    assert out == text


def test_negative_and_signed_integers():
    text = "a,b\n-1,+3\n-9223372036854775808,9223372036854775807\n 4 ,0\n"
    table, out = round_trip(text)
    assert table["a"].kind == table["b"].kind == "int"
    assert table["a"].values.tolist() == [-1, -(2**63), 4]
    assert table["b"].values.tolist() == [3, 2**63 - 1, 0]
    assert_cells_match(table, rows_of(text), rows_of(out))


def test_integers_beyond_int64_stay_text():
    text = "big\n1\n99999999999999999999999\n"
    table, out = round_trip(text)
    assert table["big"].kind == "text"
    assert out == text
    # with an empty cell a float would round them: keep the text too
    table, out = round_trip("big,x\n9007199254740993,1\n,2\n")
    assert table["big"].kind == "text"
    assert out == "big,x\n9007199254740993,1\n,2\n"
    table, out = round_trip("big,x\n9007199254740992,1\n,2\n")  # 2**53 is a float exactly
    assert table["big"].kind == "float"
    assert out == "big,x\n9007199254740992,1\n,2\n"


def test_scientific_notation():
    text = "s\n8e-05\n1.5E3\n-2.5e+10\n0.001\n1.25e-1\n"
    table, out = round_trip(text)
    col = table["s"]
    assert col.kind == "float"
    assert col.values.tolist() == [8e-05, 1500.0, -2.5e10, 0.001, 0.125]
    assert col.meta["max_decimals"] == 5  # 8e-05 has five decimals
    assert_cells_match(table, rows_of(text), rows_of(out))
    assert rows_of(out)[1] == ["8e-05"]


def test_fixed_decimals_are_kept():
    text = "x,y,z\n1.50,22262.0,0.100\n2.25,21756.0,3.000\n-0.00,0.0,10.010\n"
    table, out = round_trip(text)
    assert [c.meta["decimals"] for c in table.columns] == [2, 1, 3]
    assert out == text
    assert math.copysign(1.0, table["x"].values[2]) == -1.0


def test_mixed_decimals_render_shortest_with_the_least_decimals_seen():
    text = "t\n23.18\n23.0\n20.9175\n1\n"
    table, out = round_trip(text)
    col = table["t"]
    assert col.meta["style"] == "positional" and "decimals" not in col.meta
    assert col.meta["min_decimals"] == 0 and col.meta["max_decimals"] == 4
    assert_cells_match(table, rows_of(text), rows_of(out))
    table, out = round_trip("t\n23.18\n23.0\n20.9175\n")
    assert out == "t\n23.18\n23.0\n20.9175\n"


def test_float_text_not_written_shortest_still_round_trips_numerically():
    text = "v\n0.1000000000000000055511151231257827\n.5\n+3.\n007.25\n"
    table, out = round_trip(text)
    assert table["v"].kind == "float"
    assert_cells_match(table, rows_of(text), rows_of(out))


def test_date_only_and_datetime_layouts():
    text = (
        "d,dt,dm,iso,frac\n"
        "2010-01-01,2010-01-01 00:00:00,2010-01-01 10:30,2010-01-01T00:00:00,2016-11-24 13:58:58.081\n"
        "2010-01-02,2010-01-01 01:00:00,2010-01-01 10:31,2010-01-01T00:00:01,2016-11-24 13:58:58.100\n"
        "1969-12-31,2010-01-01 02:00:00,2010-01-01 10:32,2010-01-01T00:00:02,2016-11-24 13:58:59.000\n"
    )
    table, out = round_trip(text)
    assert [c.kind for c in table.columns] == ["timestamp"] * 5
    d, dt, dm, iso, frac = table.columns
    assert d.meta["unit"] == "D" and d.values.tolist() == [14610, 14611, -1]
    assert dt.meta["unit"] == "h" and dt.values.tolist() == [350640, 350641, 350642]
    assert dm.meta["unit"] == "m"
    assert iso.meta["unit"] == "s" and iso.meta["sep"] == "T"
    assert frac.meta["unit"] == "ms" and frac.meta["fraction_digits"] == 3
    assert out == text
    assert_meta_is_json(table)


def test_zero_fraction_left_out_like_isoformat():
    text = "t\n2016-11-24 13:58:59.990000\n2016-11-24 13:59:00\n2016-11-24 13:59:00.000123\n"
    table, out = round_trip(text)
    assert table["t"].kind == "timestamp" and table["t"].meta["unit"] == "us"
    assert out == text


@pytest.mark.parametrize(
    "cells",
    [
        ["2010-01-01 00:00:00+01:00", "2010-01-01 01:00:00+01:00"],  # zone suffix
        ["2010-01-01T00:00:00Z", "2010-01-01T01:00:00Z"],
        ["2010-01-01", "2010-01-01 01:00:00"],  # mixed layouts
        ["2010-01-01 00:00:00", "2010-01-01T01:00:00"],
        ["2010-01-01 00:00:00.5", "2010-01-01 00:00:00.25"],  # differing fraction widths
        ["2010-01-01 00:00:00.000", "2010-01-01 00:00:01"],  # zero fraction both shown and left out
        ["2015-02-30", "2015-03-01"],  # no such day
        ["2015-02-01", ""],  # empty cell
        ["2015-02-01 24:00:00", "2015-02-01 23:00:00"],
    ],
)
def test_not_quite_timestamps_stay_text(cells):
    text = csv_text(["t"], [cells])
    table, out = round_trip(text)
    assert table["t"].kind == "text"
    assert rows_of(out) == rows_of(text)


def test_header_only_and_all_empty_columns():
    table, out = round_trip("a,b\n")
    assert table.n_rows == 0 and table.names == ["a", "b"]
    assert out == "a,b\n"
    table, out = round_trip("a,b\n,1\n,2\n")
    assert table["a"].kind == "text" and table["b"].kind == "int"
    assert out == "a,b\n,1\n,2\n"


def test_trailing_blank_lines_are_ignored():
    table = read_csv(io.StringIO("a,b\n1,2\n3,4\n\n\n"))
    assert table.n_rows == 2
    table = read_csv(io.StringIO("a\n1\n\n3\n\n"))  # one column: only the inner blank is a cell
    assert table.n_rows == 3 and table["a"].kind == "float"


def test_bare_cr_in_text_is_quoted_on_output():
    table = Table([Column("a\rb", "text", ["x\ry", "z"], {}), Column("n", "int", np.array([1, 2]), {})])
    out = io.StringIO(newline="")
    write_csv(table, out)
    back = read_csv(io.StringIO(out.getvalue(), newline=""))
    assert back.names == ["a\rb", "n"] and back["a\rb"].values == ["x\ry", "z"]


def test_crlf_input():
    table, out = round_trip("a,b\r\n1,x\r\n2,\"y\r\nz\"\r\n")
    assert table["a"].values.tolist() == [1, 2]
    assert table["b"].values == ["x", "y\r\nz"]


# ---------------------------------------------------------------------------------------------
# malformed input


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "line 1"),
        ("\n1,2\n", "line 1"),
        ("a,b\n1,2\n3\n", "line 3"),
        ("a,b\n1,2\n3,4,5\n", "line 3"),
        ('a,b\n1,"x\ny"\n1,2,3\n', "line 4"),  # line numbers count lines, not rows
        ("a,b\n1,2\n\n3,4\n", "line 3"),
    ],
)
def test_malformed_csv_raises_with_the_line(text, where):
    with pytest.raises(QresFormatError, match=where):
        read_csv(io.StringIO(text, newline=""))


def test_non_utf8_file_raises(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n1,\xff\xfe\n")
    with pytest.raises(QresFormatError, match="UTF-8"):
        read_csv(path)


def test_write_rejects_columns_of_different_lengths():
    table = Table([Column("a", "int", np.array([1, 2]), {}), Column("b", "int", np.array([1]), {})])
    with pytest.raises(ValueError, match="'b'"):
        write_csv(table, io.StringIO())


def test_format_column_without_meta():
    assert format_column(Column("f", "float", np.array([0.1, np.nan, 2.0]), {})) == ["0.1", "nan", "2.0"]
    assert format_column(Column("i", "int", np.array([-3, 4]), {})) == ["-3", "4"]
    ts = Column("t", "timestamp", np.array([0, 90]), {"unit": "s"})
    assert format_column(ts) == ["1970-01-01T00:00:00", "1970-01-01T00:01:30"]


# ---------------------------------------------------------------------------------------------
# property: random tables of ints, floats and text


_text_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_text_cell = st.text(_text_chars, max_size=8)


@st.composite
def _column(draw, n_rows):
    kind = draw(st.sampled_from(["int", "float", "fixed", "text"]))
    empty = st.just("")
    if kind == "int":
        cell = st.integers(-(2**63), 2**63 - 1).map(str)
    elif kind == "float":
        cell = st.floats(allow_nan=False, allow_infinity=False).map(repr)
    elif kind == "fixed":
        d = draw(st.integers(0, 6))
        cell = st.floats(-1e9, 1e9).map(lambda v: f"{v:.{d}f}")
    else:
        # letters make it text for sure; numbers may be mixed in
        cell = st.one_of(_text_cell.map(lambda s: "x" + s), st.integers(-99, 99).map(str), empty)
    if kind != "text" and draw(st.booleans()):
        cell = st.one_of(cell, empty)
    cells = draw(st.lists(cell, min_size=n_rows, max_size=n_rows))
    if kind == "text" and n_rows:
        cells[draw(st.integers(0, n_rows - 1))] = "x" + draw(_text_cell)
    return kind, draw(_text_cell), cells


@st.composite
def _tables(draw):
    n_rows = draw(st.integers(0, 12))
    n_cols = draw(st.integers(1, 4))
    return [draw(_column(n_rows)) for _ in range(n_cols)], draw(st.sampled_from(["\n", "\r\n"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables())
def test_random_tables_round_trip(spec):
    cols, eol = spec
    text = csv_text([name for _, name, _ in cols], [cells for _, _, cells in cols], eol)
    table, out = round_trip(text)
    assert_meta_is_json(table)
    new_rows = rows_of(out)
    assert new_rows[0] == [name for _, name, _ in cols]
    assert len(new_rows) == len(cols[0][2]) + 1
    for j, (kind, _, old) in enumerate(cols):
        new = [r[j] for r in new_rows[1:]]
        if kind == "int":
            assert [int(x) if x else None for x in new] == [int(x) if x else None for x in old]
        elif kind in ("float", "fixed"):
            col = table.columns[j]
            assert all(same_float(n, o, sign=col.kind == "float") for n, o in zip(new, old)), (new, old)
            if col.kind == "float":
                parsed = np.array([float(x) if x else np.nan for x in old])
                assert col.values.tobytes() == parsed.tobytes()
        else:
            assert table.columns[j].kind == "text" or not old
            assert new == old
    # rendering is stable: reading the output again gives the same output
    assert round_trip(out)[1] == out


# ---------------------------------------------------------------------------------------------
# byte-exact CSV through the library path `qres compress` / `qres decompress` take


def through_qres(table: Table, max_error: float | None = None) -> Table:
    """table_to_columns -> compress_columns -> decompress_columns -> columns_to_table, as the CLI does."""
    channels, errors, extra = table_to_columns(table, max_error)
    columns, manifest = decompress_columns(compress_columns(channels, max_error=errors, extra=extra))
    return columns_to_table(columns, manifest["extra"])


def qres_round_trip(text: str) -> tuple[Table, str]:
    table = read_csv(io.StringIO(text, newline=""))
    out = io.StringIO(newline="")
    write_csv(through_qres(table), out)
    return table, out.getvalue()


def file_round_trip(data: bytes, where: Path) -> bytes:
    """Through .qres when the CSV has a numeric or timestamp column (else `qres compress` refuses it)."""
    (where / "in.csv").write_bytes(data)
    table = read_csv(where / "in.csv")
    write_csv(through_qres(table) if any(c.kind != "text" for c in table.columns) else table, where / "out.csv")
    return (where / "out.csv").read_bytes()


FORMATTED = {
    "leading zeros": "id,v\n007,1\n012,2\n100,3\n",
    "trailing zeros": "v\n1.10\n2.5\n3.25\n4.0\n",
    "exponent upper case": "v\n2.5E3\n1.5E-3\n7E10\n",
    "printf %e": "v\n1.000000e+00\n-2.500000e-01\n3.000000e+05\n",
    "printf %g": "v\n0.1\n1234.57\n1e-07\n-2.5e+10\n",
    "java doubles": "v\n1.0E-5\n2.5E10\n3.0\n",
    "plus signs": "a,b\n+5,+1.5\n+6,-2.25\n-7,+0.0\n",
    "spaces": "a, b\n1, 2.5\n 3 ,4.5 \n",
    "odd numbers": "v\n.5\n3.\n007.25\n-0.0\n+.5e1\n",
    "nan and inf spellings": "v\n1.5\nNaN\nnan\n\nInfinity\n-INF\n",
    "quoted numbers": 'a,b\n"1","2.5"\n"3","4.5"\n',
    "quoted like R": '"","x","when"\n"1",1.5,"2020-01-01"\n"2",2.5,"2020-01-02"\n',
    "needless quotes": 'a,b\n1,"x"\n2,y\n3,"z, w"\n',
    "quote inside a cell": 'a,b\n1,x"y\n2,"p""q"\n',
    "crlf": "a,b\r\n1,2\r\n3,4\r\n",
    "mixed line ends": "a,b\r\n1,2\n3,4\r\n5,6\r",
    "cr only": "a,b\r1,2\r3,4\r",
    "no final line end": "a,b\n1,2\n3,4",
    "trailing blank lines": "a,b\n1,2\n\n\r\n",
    "blank lines in one column": "v\n1\n\n2\n\n",
    "quoted empty cell in one column": 'v\n1\n""\n2\n',
    "line breaks in cells": 'a,b\n1,"x\r\ny"\n2,"p\rq"\n',
}


@pytest.mark.parametrize("text", FORMATTED.values(), ids=FORMATTED.keys())
def test_formatting_is_kept_byte_for_byte(text):
    table, out = qres_round_trip(text)
    assert out == text
    assert_meta_is_json(table)
    assert json.loads(json.dumps(table.layout)) == table.layout


def test_tables_without_numbers_are_kept_too():
    """`qres compress` refuses them (nothing to compress), but the table layer keeps them exactly."""
    for text in ["a,b", "a,b\r\n", '"a",b\nx,"y"\n\n']:
        assert round_trip(text)[1] == text


def test_numbers_stay_numeric_channels_when_their_text_is_kept():
    table, _ = qres_round_trip(FORMATTED["odd numbers"])
    assert table["v"].kind == "float" and table["v"].values.tolist()[:3] == [0.5, 3.0, 7.25]
    table, _ = qres_round_trip(FORMATTED["quoted like R"])
    assert [c.kind for c in table.columns] == ["int", "float", "timestamp"]
    assert table.layout == {"quoted": [0, 2], "quoted_header": True}
    table, _ = qres_round_trip(FORMATTED["plus signs"])
    assert table["a"].values.tolist() == [5, 6, -7] and table["b"].kind == "float"


@pytest.mark.parametrize(
    "text, meta",
    [
        ("id\n007\n012\n100\n-01\n", {"pad": "0", "width": 3}),
        ("n\n+5\n+16\n-7\n", {"plus": True}),
        ("n\n   5\n  16\n-107\n", {"pad": " ", "width": 4}),
        ("v\n2.5E3\n1.5E-3\n7E10\n", {"style": "sci", "exp_digits": 1, "upper": True, "exp_plus": False}),
        ("v\n1.000000e+00\n-2.500000e-01\n3.000000e+05\n", {"style": "sci", "precision": 6, "exp_digits": 2}),
        ("v\n0.1\n1234.57\n1e-07\n-2.5e+10\n", {"style": "general", "precision": 6}),
        ("v\n1.10\n2.25\n3.00\n4.5\n", {"style": "fixed", "decimals": 2, "cells": [[3, 1, "4.5"]]}),
        ("v\n1.5\nNaN\nNaN\nnan\n", {"style": "fixed", "decimals": 1, "nan_text": "NaN", "cells": [[3, 1, "nan"]]}),
    ],
)
def test_each_column_takes_the_style_that_fits_most_cells(text, meta):
    col = read_csv(io.StringIO(text, newline="")).columns[0]
    assert {k: v for k, v in col.meta.items() if k != "max_decimals"} == meta
    assert round_trip(text)[1] == text


def test_exceptions_are_only_the_cells_no_style_reproduces():
    cells = [f"{v:.2f}" for v in np.linspace(-50, 50, 2000)]
    cells[10], cells[1500:1503] = "1.5", ["", "", ""]
    col = read_csv(io.StringIO(csv_text(["v"], [cells]), newline="")).columns[0]
    assert col.meta["style"] == "fixed" and col.meta["cells"] == [[10, 1, "1.5"]]
    assert col.meta["nan_text"] == ""
    assert round_trip(csv_text(["v"], [cells]))[1] == csv_text(["v"], [cells])


def test_a_bom_is_kept_and_is_not_part_of_a_name(tmp_path):
    data = "\ufeffname,x\r\n\"a, b\",1.10\r\nc,2.5\r\n".encode()
    assert file_round_trip(data, tmp_path) == data
    table = read_csv(tmp_path / "in.csv")
    assert table.names == ["name", "x"] and table.layout["bom"] is True and table.newline == "\r\n"


def test_bundled_files_need_no_exceptions():
    for path in BUNDLED:
        table = read_csv(path)
        assert table.layout == {}, path.name
        assert not any("cells" in c.meta for c in table.columns), path.name


def test_error_bounded_files_keep_the_layout():
    text = '\n'.join(['"t","v"'] + [f'"2020-01-0{d}",{d * 1.1:.3f}' for d in range(1, 8)]) + "\n"
    table = read_csv(io.StringIO(text, newline=""))
    out = io.StringIO(newline="")
    write_csv(through_qres(table, max_error=0.01), out)
    back = out.getvalue()
    assert rows_of(back)[0] == ["t", "v"] and back.startswith('"t","v"\n"2020-01-01",')
    got = [float(r[1]) for r in rows_of(back)[1:]]
    assert max(abs(g - d * 1.1) for g, d in zip(got, range(1, 8))) <= 0.01


@pytest.mark.parametrize(
    "layout",
    [[1], {"records": [[99, "x"]]}, {"records": [["0", "x"]]}, {"records": "x"}, {"quoted": [5]}, {"tail": 3}],
    ids=["not an object", "record out of range", "record index not int", "records not a list", "no such column", "tail"],
)
def test_damaged_layout_is_a_format_error(layout):
    table = Table([Column("a", "int", np.array([1, 2]), {})], "\n", layout)
    with pytest.raises(QresFormatError, match="damaged"):
        write_csv(table, io.StringIO())


@pytest.mark.parametrize(
    "kind, meta",
    [
        ("int", {"cells": [[1, 5, "x"]]}),
        ("int", {"cells": [[0, 1]]}),
        ("int", {"nan_other": [[-1, 1, "x"]]}),
        ("int", {"pad": "x", "width": 3}),
        ("int", {"pad": "0", "width": 10**9}),
        ("float", {"style": "fixed", "decimals": 10**9}),
        ("float", {"style": "fixed"}),
        ("float", {"style": "sci", "exp_digits": 99}),
        ("float", {"style": "general", "precision": "6"}),
        ("timestamp", {"unit": "fortnight"}),
        ("timestamp", {"unit": "s", "sep": "x" * 10**6}),
        ("timestamp", {"unit": "s", "sep": " ", "seconds": True, "fraction_digits": 12}),
    ],
)
def test_damaged_column_format_is_a_format_error(kind, meta):
    with pytest.raises(QresFormatError, match="damaged"):
        format_column(Column("a", kind, np.array([1, 2]), meta))


def test_cell_exceptions_of_earlier_files_still_apply():
    col = Column("v", "float", np.array([1.5, np.nan, np.nan]), {"style": "fixed", "decimals": 1, "nan_text": "", "nan_other": [[2, 1, "NaN"]]})
    assert format_column(col) == ["1.5", "", "NaN"]


# hypothesis: CSV text written with the formatting other programs use


def _digits(draw, lo=1, hi=4) -> str:
    return draw(st.text("0123456789", min_size=lo, max_size=hi))


@st.composite
def _number_cell(draw) -> str:
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    form = draw(st.sampled_from(["int", "zeros", "decimal", "point", "exponent", "special", "empty"]))
    if form == "int":
        body = str(draw(st.integers(0, 10**6)))
    elif form == "zeros":
        body = "0" * draw(st.integers(1, 3)) + _digits(draw)
    elif form == "decimal":
        body = _digits(draw) + "." + _digits(draw, 0, 5)
    elif form == "point":
        body = "." + _digits(draw)
    elif form == "exponent":
        mant = _digits(draw, 1, 1) + draw(st.sampled_from(["", "."])) + _digits(draw, 0, 4)
        body = mant + draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "+", "-"])) + _digits(draw, 1, 3)
    elif form == "special":
        body = draw(st.sampled_from(["nan", "NaN", "inf", "Infinity", "INF"]))
    else:
        return ""
    pad = st.sampled_from(["", "", " ", "  "])
    return draw(pad) + sign + body + draw(pad)


def _styled_column(draw, n: int) -> list[str]:
    """Cells of one column in one program's style, with a few written otherwise."""
    style = draw(st.sampled_from(["%d", "%03d", "%+d", "%.2f", "%.3e", "%.3E", "%g", "%.6g", "repr", "mixed", "%5d"]))
    values = draw(st.lists(st.integers(-(10**5), 10**5), min_size=n, max_size=n))
    scale = draw(st.sampled_from([1, 10, 1000, 10**-3]))
    if style == "repr":
        cells = [repr(v / scale) for v in values]
    elif style == "mixed":
        cells = [draw(_number_cell()) for _ in values]
    elif style.endswith("d"):
        cells = [style % v for v in values]
    else:
        cells = [style % (v / scale) for v in values]
    for i in draw(st.lists(st.integers(0, n - 1), max_size=2)) if n else []:
        cells[i] = draw(_number_cell())
    return cells


@st.composite
def _csv_files(draw) -> tuple[bytes, list[bool]]:
    """CSV bytes as a program other than QRES might write them, and which columns hold numbers."""
    n_cols, n_rows = draw(st.integers(1, 4)), draw(st.integers(0, 10))
    numeric = [draw(st.booleans()) for _ in range(n_cols)]
    header = [draw(st.text("abcxyz _", min_size=1, max_size=5)) for _ in range(n_cols)]
    columns = [_styled_column(draw, n_rows) if num else ["x" + draw(_text_cell) for _ in range(n_rows)] for num in numeric]
    quote_column = [draw(st.sampled_from(["never", "always", "sometimes"])) for _ in range(n_cols)]
    quote_header = draw(st.booleans())
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    records = []
    for r, cells in enumerate([header] + [list(row) for row in zip(*columns)]):
        fields = []
        for j, cell in enumerate(cells):
            how = "always" if r == 0 and quote_header else quote_column[j]
            must = any(ch in cell for ch in ',"\r\n')
            if must or how == "always" or (how == "sometimes" and draw(st.booleans())):
                cell = '"' + cell.replace('"', '""') + '"'
            fields.append(cell)
        records.append(",".join(fields) + (draw(st.sampled_from(["\n", "\r\n", "\r"])) if draw(st.integers(0, 9)) == 0 else eol))
    if draw(st.booleans()):  # no final line end
        records[-1] = records[-1].rstrip("\r\n")
    records.append(draw(st.sampled_from(["", "", "\n", "\r\n\r\n"])))  # blank lines at the end
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + "".join(records)).encode(), numeric


_FLOATISH = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:nan|inf|infinity)|")  # or empty


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_csv_files())
def test_any_csv_the_reader_takes_comes_back_byte_for_byte(spec):
    data, numeric = spec
    with tempfile.TemporaryDirectory() as where:
        assert file_round_trip(data, Path(where)) == data
        table = read_csv(Path(where) / "in.csv")
    for col, num in zip(table.columns, numeric):
        if num and col.kind == "text":  # a numeric column stays numeric unless no cell or not every cell is a number
            assert all(not c for c in col.values) or any(not _FLOATISH.fullmatch(c.strip(" \t")) for c in col.values)


# ---------------------------------------------------------------------------------------------
# .npy


def _npy_cases():
    rng = np.random.default_rng(7)
    out = []
    for dtype in ("int16", "uint32", "float32", "float64"):
        dt = np.dtype(dtype)
        if dt.kind == "f":
            base = rng.normal(0, 1e3, 40).astype(dt)
            base[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, -np.nan]
        else:
            info = np.iinfo(dt)
            base = rng.integers(info.min, info.max, 40, dtype=dt, endpoint=True)
            base[:2] = [info.min, info.max]
        out.append(pytest.param(base, id=f"{dtype}-1d"))
        out.append(pytest.param(base.reshape(10, 4), id=f"{dtype}-2d"))
    nan32 = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    nan32.view(np.uint32)[1] = 0x7F800001  # signalling NaN
    nan32.view(np.uint32)[2] = 0xFFC12345  # negative NaN with a payload
    out.append(pytest.param(nan32, id="float32-snan"))
    nan64 = np.array([np.nan, 1.0])
    nan64.view(np.uint64)[0] = 0x7FF0000000000001
    out.append(pytest.param(nan64, id="float64-snan"))
    out.append(pytest.param(np.arange(12, dtype=">f4").reshape(4, 3), id="big-endian"))
    out.append(pytest.param(np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)), id="fortran"))
    out.append(pytest.param(np.array([0, 2**64 - 1, 2**63], dtype=np.uint64), id="uint64"))
    out.append(pytest.param(np.array([True, False]), id="bool"))
    out.append(pytest.param(np.zeros((0, 3), dtype=np.float32), id="empty-2d"))
    return out


@pytest.mark.parametrize("arr", _npy_cases())
def test_npy_round_trip_is_bit_exact(tmp_path, arr):
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, arr)
    table = read_npy(src)
    assert table.names == [f"c{j}" for j in range(1 if arr.ndim == 1 else arr.shape[1])]
    for col in table.columns:
        assert col.kind == ("float" if arr.dtype.kind == "f" else "int")
        assert col.values.dtype == (np.float64 if col.kind == "float" else np.int64)
    assert_meta_is_json(table)
    write_npy(table, dst)
    back = np.load(dst)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.tobytes(order="A") == arr.tobytes(order="A")
    assert back.flags.f_contiguous == arr.flags.f_contiguous


def test_npy_values_are_the_numbers(tmp_path):
    arr = np.array([[1.5, -0.0], [np.nan, 3.25]], dtype=np.float32)
    np.save(tmp_path / "a.npy", arr)
    c0, c1 = read_npy(tmp_path / "a.npy").columns
    assert c0.values[0] == 1.5 and np.isnan(c0.values[1])
    assert math.copysign(1.0, c1.values[0]) == -1.0 and c1.values[1] == 3.25


@pytest.mark.parametrize(
    "arr",
    [np.zeros((2, 2, 2)), np.array(["a", "b"]), np.array([1 + 2j]), np.array(5.0)],
    ids=["3d", "str", "complex", "0d"],
)
def test_npy_unsupported_arrays_raise(tmp_path, arr):
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(QresFormatError):
        read_npy(tmp_path / "x.npy")


def test_npy_rejects_pickles_and_garbage(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(QresFormatError):
        read_npy(tmp_path / "o.npy")
    (tmp_path / "g.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(QresFormatError):
        read_npy(tmp_path / "g.npy")


def test_csv_table_to_npy(tmp_path):
    table = read_csv(io.StringIO("a,b\n1,2.5\n3,\n"))
    write_npy(table, tmp_path / "t.npy")
    back = np.load(tmp_path / "t.npy")
    assert back.dtype == np.float64
    assert np.array_equal(back, [[1.0, 2.5], [3.0, np.nan]], equal_nan=True)
    with pytest.raises(QresFormatError, match="text"):
        write_npy(read_csv(io.StringIO("a,b\n1,x\n")), tmp_path / "u.npy")
