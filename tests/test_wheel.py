"""The package as a user installs it: a wheel built from this checkout, installed into a fresh
virtual environment in a temporary folder outside the checkout, runs its first commands there.

This is what `pip install qres` gives: no source tree to fall back on, so bundled recordings, the
compiled kernels' cache and every asset must come from the installed package itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QRES_"))}
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh virtual environment with the wheel of this checkout installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp / "dist", ROOT], cwd=tmp)
    wheels = list((tmp / "dist").glob("qres-*.whl"))
    assert len(wheels) == 1, wheels
    _run([sys.executable, "-m", "venv", tmp / "venv"], cwd=tmp)
    _run([tmp / "venv" / "bin" / "python", "-m", "pip", "install", "--quiet", wheels[0]], cwd=tmp)
    return tmp / "venv" / "bin"


def test_the_wheel_carries_the_recordings_and_runs_outside_the_checkout(installed, tmp_path):
    where = _run([installed / "python", "-c", "import qres, qres.datasets as d; print(qres.__file__); print(d.data_dir())"], cwd=tmp_path).stdout.split()
    assert all(not Path(p).is_relative_to(ROOT) for p in where), where  # nothing comes from this checkout
    assert Path(where[1], "PROVENANCE.json").is_file()


def test_demo_runs_from_the_wheel(installed, tmp_path):
    r = _run([installed / "qres", "demo"], cwd=tmp_path)
    assert "identical" in r.stdout and "differs" not in r.stdout
    assert "error" not in r.stderr.lower()


def test_sim_runs_from_the_wheel(installed, tmp_path):
    r = _run([installed / "qres", "sim", "--nodes", "20", "--rounds", "5", "--out", tmp_path / "report"], cwd=tmp_path)
    assert (tmp_path / "report" / "summary.json").is_file() and (tmp_path / "report" / "index.html").is_file()
    assert "Traceback" not in r.stdout + r.stderr


def test_compress_round_trip_from_the_wheel(installed, tmp_path):
    src = tmp_path / "readings.csv"
    src.write_text("t,temp_c,count\n" + "".join(f"{i},{20 + (i % 17) / 10:.1f},{i * 7 % 11}\n" for i in range(500)))
    _run([installed / "qres", "compress", src, "-o", tmp_path / "readings.qres"], cwd=tmp_path)
    _run([installed / "qres", "decompress", tmp_path / "readings.qres", "-o", tmp_path / "back.csv"], cwd=tmp_path)
    assert (tmp_path / "back.csv").read_bytes() == src.read_bytes()
