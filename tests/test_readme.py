"""Every code block of README.md runs as written.

- ```python blocks run in a fresh interpreter, in an empty temporary folder;
- ```sh blocks run with bash (stopping at the first failing command) in an empty temporary
  folder, with this environment's `qres` first on PATH; the block of `make` targets is checked
  with `make -n` (running `make test` from inside the test suite would run it again);
- ```toml blocks are node.toml fragments: every key must be one `qres daemon run` accepts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from qres.node.config import init_node, load_config

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str, int]]:
    """(language, code, line number) of every fenced block of README.md."""
    text = (ROOT / "README.md").read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(text)]


def test_every_block_has_a_language_this_test_runs():
    assert blocks(), "no code blocks found"
    for lang, _, line in blocks():
        assert lang in ("python", "sh", "toml"), f"README.md line {line}: a ```{lang} block that no test runs"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRES_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("lang,code,line", [b for b in blocks() if b[0] == "python"], ids=lambda v: str(v)[:20])
def test_python_blocks_run(lang, code, line, tmp_path):
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README.md line {line}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"


@pytest.mark.parametrize("lang,code,line", [b for b in blocks() if b[0] == "sh"], ids=lambda v: str(v)[:20])
def test_shell_blocks_run(lang, code, line, tmp_path):
    commands = [c.split("#")[0].strip() for c in code.splitlines() if c.split("#")[0].strip()]
    if all(c.startswith("make ") for c in commands):
        for c in commands:
            r = subprocess.run(["make", "-n", *c.split()[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, f"README.md line {line}: {c}: {r.stderr}"
        return
    script = "set -euo pipefail\n" + code
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"README.md line {line}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


@pytest.mark.parametrize("lang,code,line", [b for b in blocks() if b[0] == "toml"], ids=lambda v: str(v)[:20])
def test_toml_blocks_are_valid_node_settings(lang, code, line, tmp_path):
    settings = tomllib.loads(code)
    config = init_node(tmp_path / "node", 7000, 8000)
    env = {}
    for section, keys in settings.items():
        for key, value in keys.items():
            env[f"QRES_{section.upper()}_{key.upper()}"] = ",".join(value) if isinstance(value, list) else str(value)
    cfg = load_config(config, env=env)  # raises ConfigError naming an unknown key or a bad value
    for section, keys in settings.items():
        for key, value in keys.items():
            got = getattr(cfg, "peers" if (section, key) == ("gossip", "peers") else f"{section}_{key}", None)
            got = [f"{h}:{p}" for h, p in got] if key == "peers" else got
            assert got == value, f"README.md line {line}: {section}.{key} is {got!r} once loaded, not {value!r}"
