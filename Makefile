# `make demo` and `make test` work on a fresh machine with Python 3.11, pip and make:
# the first use creates .venv and installs the pinned versions of constraints.txt.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed-stamp
PLUGINS := plugins/art-denoise-torchattacks plugins/art-denoise-foolbox

.PHONY: setup demo test test-all lint format bench clean

$(STAMP): pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(PLUGINS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch would pull a CUDA build of several GB.
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[test]"
	# torchattacks' metadata pins an old requests and asks for torchvision it never imports.
	$(PIP) install -q -c constraints.txt --no-deps torchattacks==3.5.1
	$(PIP) install -q -c constraints.txt foolbox==3.3.4
	$(PIP) install -q --no-deps $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/art-denoise demo

test: setup
	$(PY) -m pytest -m "not slow"

test-all: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy art_denoise

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) benchmarks/attack_overhead.py

clean:
	rm -rf $(VENV) art-denoise-report .pytest_cache .ruff_cache
