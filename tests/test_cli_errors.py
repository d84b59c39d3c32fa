"""What a user sees when the `qres` command fails: one line on stderr, the right exit code, no
traceback (unless --debug, and never local variables), no secret, and no partial or clobbered file.

These run the real command in a subprocess, as a user would, since how an error is printed is
decided at the process's edge (qres.cli.main).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qres import datasets
from qres.codec import container as ct

QRES = [sys.executable, "-m", "qres.cli"]


def qres(*args, cwd: Path | None = None, shell_prefix: str = "") -> subprocess.CompletedProcess:
    if shell_prefix:  # e.g. a ulimit for this one command
        cmd = shell_prefix + " && exec " + " ".join(f"'{a}'" for a in [*QRES, *map(str, args)])
        return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=cwd, timeout=300)
    return subprocess.run([*QRES, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def one_line_error(r: subprocess.CompletedProcess, code: int = 1) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


@pytest.mark.parametrize("dtype", ["float16", "bool", "complex128", "<U3"])
def test_unsupported_npy_dtypes_are_one_line_errors(dtype, tmp_path):
    src = tmp_path / "x.npy"
    np.save(src, np.zeros(10, dtype))
    line = one_line_error(qres("compress", src))
    assert str(src) in line and "dtype" in line
    assert not (tmp_path / "x.npy.qres").exists()


def test_an_unwritable_output_with_a_key_prints_neither_a_traceback_nor_the_key(tmp_path):
    key_file = tmp_path / "k.key"
    key = ct.generate_key_file(key_file)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    r = qres("compress", datasets.path("waterflow"), "-o", blocker / "x.qres", "--key-file", key_file)
    line = one_line_error(r)
    assert "not-a-folder/x.qres" in line and "not written" in line
    for secret in (key.hex(), repr(key), key.hex().upper()):
        assert secret not in r.stderr + r.stdout


def test_an_existing_output_is_kept_unless_forced(tmp_path):
    src = tmp_path / "w.csv"
    src.write_bytes(datasets.path("waterflow").read_bytes())
    dst = tmp_path / "w.qres"
    dst.write_bytes(b"precious")
    line = one_line_error(qres("compress", src, "-o", dst), code=2)
    assert "exists" in line and "--force" in line
    assert dst.read_bytes() == b"precious"
    assert qres("compress", src, "-o", dst, "--force").returncode == 0
    assert ct.read_header(dst.read_bytes()).body_crc
    back = tmp_path / "back.csv"
    back.write_text("precious")
    one_line_error(qres("decompress", dst, "-o", back), code=2)
    assert back.read_text() == "precious"
    assert qres("decompress", dst, "-o", back, "--force").returncode == 0
    assert back.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_output_equal_to_input_is_refused(command, tmp_path):
    src = tmp_path / "w.csv"
    src.write_bytes(datasets.path("waterflow").read_bytes())
    if command == "decompress":
        assert qres("compress", src, "-o", tmp_path / "w.qres").returncode == 0
        src = tmp_path / "w.qres"
    before = src.read_bytes()
    for same in (src, tmp_path / "." / src.name):
        line = one_line_error(qres(command, src, "-o", same, "--force"), code=2)
        assert "is the input" in line
    assert src.read_bytes() == before


def test_a_failed_decompress_leaves_no_partial_file(tmp_path):
    packed = tmp_path / "ppg.qres"
    assert qres("compress", datasets.path("heartpy_ppg"), "-o", packed).returncode == 0
    out = tmp_path / "ppg.csv"
    r = qres("decompress", packed, "-o", out, shell_prefix="ulimit -f 512")  # 512 blocks: the CSV is 2 MB
    line = one_line_error(r)
    assert "ppg.csv" in line and "not written" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppg.qres"]  # no output, no temporary file


def test_npy_output_is_written_under_the_name_given(tmp_path):
    src = tmp_path / "a.npy"
    np.save(src, np.arange(100, dtype=np.int32))
    assert qres("compress", src).returncode == 0
    r = qres("decompress", tmp_path / "a.npy.qres", "-o", tmp_path / "back.txt")
    assert r.returncode == 0 and "back.txt" in r.stderr
    assert not (tmp_path / "back.txt.npy").exists()
    assert np.array_equal(np.load(tmp_path / "back.txt"), np.arange(100, dtype=np.int32))


def test_bench_into_an_unwritable_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_line_error(qres("bench", "waterflow", "--mode", "lossless", "--out", blocker / "sub"))
    assert "--out" in line and "file/sub" in line and "cannot be written" in line


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path):
    line = one_line_error(qres("compress", tmp_path / "missing.csv"), code=2)
    assert "missing.csv" in line and "qres compress --help" in line
    one_line_error(qres("sim", "--attack", "nonsense"), code=2)
    one_line_error(qres("no-such-command"), code=2)


def test_an_unexpected_error_is_one_line_and_debug_shows_a_traceback_without_locals(tmp_path):
    key_file = tmp_path / "k.key"
    key = ct.generate_key_file(key_file)
    script = (
        "import sys, qres.cli as c\n"
        "def boom(*a, **k):\n"
        "    secret = k.get('key')\n"
        "    raise RuntimeError('boom in the encoder')\n"
        "c.compress_columns = boom\n"
        "c.main(sys.argv[1:])\n"
    )
    args = ["compress", str(datasets.path("waterflow")), "-o", str(tmp_path / "x.qres"), "--key-file", str(key_file)]
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    line = one_line_error(r)
    assert "RuntimeError: boom in the encoder" in line and "--debug" in line
    r = subprocess.run([sys.executable, "-c", script, "--debug", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: RuntimeError")
    assert key.hex() not in r.stderr and repr(key) not in r.stderr  # the encoder's locals hold the key
    assert not (tmp_path / "x.qres").exists()


def test_version():
    r = qres("--version")
    assert r.returncode == 0 and r.stdout.startswith("qres ")


def test_errors_do_not_depend_on_the_terminal_width(tmp_path):
    src = tmp_path / ("a-rather-long-file-name-" * 6 + ".npy")
    np.save(src, np.zeros(3, np.float16))
    env = {**os.environ, "COLUMNS": "40"}
    r = subprocess.run([*QRES, "compress", str(src)], capture_output=True, text=True, env=env, timeout=300)
    assert str(src) in one_line_error(r)


def test_a_csv_without_numbers_says_which_column_and_why(tmp_path):
    src = tmp_path / "big.csv"
    src.write_text("id,label\n18446744073709551616,a\n3,b\n")
    line = one_line_error(qres("compress", src))
    assert "'id': data row 1: '18446744073709551616' is an integer outside the 64-bit range" in line
    assert "'label': data row 1: 'a' is not a number" in line


def test_integers_up_to_2_64_are_compressed_as_numbers(tmp_path):
    src = tmp_path / "counter.csv"
    src.write_text("counter\n" + "".join(f"{2**64 - 1 - 3 * i}\n" for i in range(200)))
    packed = tmp_path / "counter.qres"
    assert qres("compress", src, "-o", packed).returncode == 0
    info = qres("info", packed, "--json")
    assert '"uint64"' in info.stdout
    assert qres("decompress", packed, "-o", tmp_path / "back.csv").returncode == 0
    assert (tmp_path / "back.csv").read_bytes() == src.read_bytes()


def test_info_lists_fallback_columns_beside_coded_ones(tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "mixed.csv"
    walk = np.cumsum(rng.integers(-3, 4, 3000))
    pattern = np.tile(rng.integers(0, 10**9, 1500), 2)
    src.write_text("walk,pattern\n" + "".join(f"{a},{b}\n" for a, b in zip(walk, pattern)))
    packed = tmp_path / "mixed.qres"
    assert qres("compress", src, "-o", packed).returncode == 0
    import json

    info = json.loads(qres("info", packed, "--json").stdout)
    kinds = {c["name"]: c["transform"] for c in info["channels"]}
    assert kinds["pattern"] == "fallback" and kinds["walk"] != "fallback"
    text = qres("info", packed).stdout
    assert "fallback" in text and "Fallback" in text
