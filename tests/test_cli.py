"""The `qres` command: CSV and .npy round trips, error bounds, keys, `info`, and clean failures."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qres import datasets
from qres.cli import app

NAMES = datasets.names()


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, f"qres {' '.join(map(str, args))} -> {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def read_cells(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return s.strip() == ""


def column_kinds(rows: list[list[str]], ncols: int) -> list[str]:
    kinds = []
    for c in range(ncols):
        cells = [r[c] for r in rows]
        if all(_is_int(s) for s in cells):
            kinds.append("int")
        elif all(_is_float(s) for s in cells):
            kinds.append("float")
        else:
            kinds.append("text")  # timestamps and labels: must come back as the same text
    return kinds


def _num(s: str) -> float:
    return float(s) if s.strip() else math.nan


def compare_csv(original: Path, decoded: Path, max_error: float | None = None) -> None:
    head0, rows0 = read_cells(original)
    head1, rows1 = read_cells(decoded)
    assert head1 == head0
    assert len(rows1) == len(rows0), f"{len(rows1)} rows, expected {len(rows0)}"
    kinds = column_kinds(rows0, len(head0))
    for r, (a, b) in enumerate(zip(rows0, rows1)):
        assert len(b) == len(a), f"row {r}: {len(b)} cells, expected {len(a)}"
        for c, kind in enumerate(kinds):
            x, y = a[c], b[c]
            where = f"row {r + 2} column {head0[c]!r}: {y!r} for {x!r}"
            if kind == "text":
                assert y == x, where
            elif max_error is None:
                if kind == "int":
                    assert _is_int(y) and int(y) == int(x), where
                else:
                    fx, fy = _num(x), _num(y)
                    assert fy == fx or (math.isnan(fx) and math.isnan(fy)), where
            else:
                fx, fy = _num(x), _num(y)
                if math.isnan(fx) or math.isinf(fx):
                    assert fy == fx or (math.isnan(fx) and math.isnan(fy)), where
                else:
                    assert abs(fy - fx) <= max_error, where
                if kind == "int":
                    assert _is_int(y), where


# ------------------------------------------------------------------------------ CSV


@pytest.mark.parametrize("name", NAMES)
def test_csv_round_trip(name, tmp_path):
    src = datasets.path(name)
    packed, back = tmp_path / f"{name}.qres", tmp_path / f"{name}.csv"
    run("compress", src, "-o", packed)
    assert packed.stat().st_size < src.stat().st_size / 2
    run("decompress", packed, "-o", back)
    compare_csv(src, back)


def test_csv_default_output_names(tmp_path):
    src = tmp_path / "w.csv"
    src.write_bytes(datasets.path("waterflow").read_bytes())
    run("compress", src)
    packed = tmp_path / "w.csv.qres"
    assert packed.is_file()
    src.rename(tmp_path / "orig.csv")
    run("decompress", packed)
    compare_csv(tmp_path / "orig.csv", tmp_path / "w.csv")


@pytest.mark.parametrize("name", NAMES)
def test_csv_max_error(name, tmp_path):
    src = datasets.path(name)
    all_int = all(c.decimals == 0 for c in datasets.channels(name))
    bound = 2.5 if all_int else 0.05
    packed, back = tmp_path / "lossy.qres", tmp_path / "lossy.csv"
    run("compress", src, "-o", packed, "--max-error", bound)
    run("decompress", packed, "-o", back)
    compare_csv(src, back, max_error=bound)  # timestamps and text columns stay exact


def test_csv_max_error_changes_values(tmp_path):
    src = datasets.path("seattle_temps")
    run("compress", src, "-o", tmp_path / "a.qres", "--max-error", "0.5")
    run("decompress", tmp_path / "a.qres", "-o", tmp_path / "a.csv")
    _, rows0 = read_cells(src)
    _, rows1 = read_cells(tmp_path / "a.csv")
    assert any(float(a[1]) != float(b[1]) for a, b in zip(rows0, rows1)), "a 0.5 bound should change some readings"


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf"])
def test_bad_max_error_is_a_clean_error(bad, tmp_path):
    r = run("compress", datasets.path("waterflow"), "-o", tmp_path / "x.qres", "--max-error", bad, ok=False)
    assert r.exit_code != 0
    assert isinstance(r.exception, SystemExit), repr(r.exception)  # a message, not a traceback


# ------------------------------------------------------------------------------ keys


def test_key_file_round_trip_and_errors(tmp_path):
    key, other = tmp_path / "k.key", tmp_path / "other.key"
    run("keygen", key)
    run("keygen", other)
    assert key.read_bytes() != other.read_bytes()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert run("keygen", key, ok=False).exit_code != 0  # never overwrite a key

    src = datasets.path("occupancy")
    packed, back = tmp_path / "o.qres", tmp_path / "o.csv"
    run("compress", src, "-o", packed, "--key-file", key)
    assert b"temperature_c" not in packed.read_bytes()
    run("decompress", packed, "-o", back, "--key-file", key)
    compare_csv(src, back)

    for args in ([], ["--key-file", str(other)]):
        r = run("decompress", packed, "-o", tmp_path / "no.csv", *args, ok=False)
        assert r.exit_code != 0
        msg = (r.stderr + r.stdout).lower()
        assert "key" in msg or "authentication" in msg, msg
        assert "Traceback" not in r.output
        assert not (tmp_path / "no.csv").exists()

    r = run("info", packed, ok=False)
    assert r.exit_code != 0 and "key" in (r.stderr + r.stdout).lower()
    assert json.loads(run("info", packed, "--key-file", key, "--json").stdout)["flags"]["encrypted"] is True


def test_bad_key_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    r = run("compress", datasets.path("waterflow"), "-o", tmp_path / "x.qres", "--key-file", bad, ok=False)
    assert r.exit_code != 0
    assert "key" in (r.stderr + r.stdout).lower()
    assert isinstance(r.exception, SystemExit)


# ------------------------------------------------------------------------------ info


def test_info_text_and_json(tmp_path):
    src = datasets.path("occupancy")
    packed = tmp_path / "o.qres"
    run("compress", src, "-o", packed)
    head, rows = read_cells(src)

    text = run("info", packed).stdout
    assert "QRES 19" in text
    assert f"{len(rows):,} rows" in text, text[:400]
    assert "Manifest" in text and "Epiphany" in text and "Residual" in text

    info = json.loads(run("info", packed, "--json").stdout)
    assert info["bytes"] == packed.stat().st_size
    assert info["version"].startswith("19.")
    assert info["flags"]["body_crc"] is True and info["flags"]["encrypted"] is False
    assert info["rows"] == len(rows)
    assert [b["type"] for b in info["blocks"]][:3] == ["Manifest", "Epiphany", "Residual"]
    names = [c.get("name") for c in info["channels"]]
    for value_column in datasets.VALUE_COLUMNS["occupancy"]:
        assert value_column in names, names
    assert 0 < info["bits_per_value"] < 64


# ------------------------------------------------------------------------------ .npy


NPY_CASES = {
    "int8": np.array([-128, 127, 0, 5, -3] * 40, np.int8),
    "uint16": (np.arange(1000) * 37 % 65536).astype(np.uint16),
    "int64": np.cumsum(np.random.default_rng(0).integers(-9, 10, 2000)),
    "uint64_high": np.array([2**64 - 1, 2**63, 12345, 2**63 + 7] * 25, np.uint64),
    "float32_specials": np.array([1.5, np.nan, -0.0, np.inf, -np.inf, 1e-45, 3.4e38] * 30, np.float32),
    "float64_2d": np.round(np.random.default_rng(1).normal(size=(500, 3)), 3),
    "int32_2d_one_column": np.arange(100, dtype=np.int32).reshape(100, 1),
}


@pytest.mark.parametrize("case", sorted(NPY_CASES))
def test_npy_round_trip(case, tmp_path):
    x = NPY_CASES[case]
    src = tmp_path / f"{case}.npy"
    np.save(src, x)
    run("compress", src, "-o", tmp_path / "a.qres")
    run("decompress", tmp_path / "a.qres", "-o", tmp_path / "back.npy")
    y = np.load(tmp_path / "back.npy")
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(y.view(np.uint8), np.ascontiguousarray(x).view(np.uint8))


def test_npy_max_error(tmp_path):
    x = np.cumsum(np.random.default_rng(2).normal(size=3000))
    np.save(tmp_path / "x.npy", x)
    run("compress", tmp_path / "x.npy", "-o", tmp_path / "x.qres", "--max-error", "0.01")
    run("decompress", tmp_path / "x.qres", "-o", tmp_path / "y.npy")
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.max(np.abs(y - x)) <= 0.01


def test_npy_default_output_names(tmp_path):
    x = np.arange(50, dtype=np.int16)
    np.save(tmp_path / "v.npy", x)
    run("compress", tmp_path / "v.npy")
    (tmp_path / "v.npy").unlink()
    run("decompress", tmp_path / "v.npy.qres")
    y = np.load(tmp_path / "v.npy")
    assert y.dtype == x.dtype and np.array_equal(y, x)


def test_npy_3d_is_a_clean_error(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 2, 2)))
    r = run("compress", tmp_path / "c.npy", "-o", tmp_path / "c.qres", ok=False)
    assert r.exit_code != 0 and isinstance(r.exception, SystemExit)


# ------------------------------------------------------------------------------ clean failures


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The real command in a child process (its stderr as a user sees it, piped)."""
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "qres.cli", *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def _one_line_error(p: subprocess.CompletedProcess) -> None:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected a one-line error, got {len(lines)} lines:\n{p.stderr}"
    assert lines[0].startswith("error:"), lines[0]


def test_garbage_input_to_decompress(tmp_path):
    rng = np.random.default_rng(3)
    garbage = tmp_path / "garbage.qres"
    garbage.write_bytes(rng.bytes(3000))
    p = _cli("decompress", garbage, "-o", tmp_path / "out.csv")
    _one_line_error(p)
    assert not (tmp_path / "out.csv").exists()


def test_damaged_files_to_decompress(tmp_path):
    good = tmp_path / "good.qres"
    run("compress", datasets.path("waterflow"), "-o", good)
    data = good.read_bytes()
    cases = {
        "empty.qres": b"",
        "truncated.qres": data[: len(data) // 2],
        "flipped.qres": data[:300] + bytes([data[300] ^ 0x10]) + data[301:],
        "csv_as_qres.qres": datasets.path("waterflow").read_bytes(),
    }
    for fname, content in cases.items():
        (tmp_path / fname).write_bytes(content)
    # one child process per case would be slow: check all through the runner, and one for real
    for fname in cases:
        r = run("decompress", tmp_path / fname, "-o", tmp_path / "out.csv", ok=False)
        assert r.exit_code != 0, fname
        assert isinstance(r.exception, SystemExit), f"{fname}: {r.exception!r}"
        assert r.stderr.lower().startswith("error:"), f"{fname}: {r.stderr!r}"
    _one_line_error(_cli("decompress", tmp_path / "flipped.qres", "-o", tmp_path / "out.csv"))


def test_regimes_command_lists_changes_and_rejects_unknown_columns(tmp_path):
    import json as _json
    import subprocess
    import sys

    from qres import datasets

    src = str(datasets.path("occupancy"))
    run = subprocess.run(
        [sys.executable, "-m", "qres.cli", "regimes", src, "--column", "co2_ppm", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    changes = _json.loads(run.stdout)["changes"]
    assert changes[0] == [0, "calm"] and any(r == "storm" for _, r in changes)
    bad = subprocess.run(
        [sys.executable, "-m", "qres.cli", "regimes", src, "--column", "nope"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0 and "no numeric column named 'nope'" in bad.stderr
