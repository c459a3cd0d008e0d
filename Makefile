# Two entry points, both self-installing on a machine with only Python 3.11 and pip.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# test workers (pytest-xdist; files are dealt whole to workers, each compiles its own kernels)
TEST_WORKERS ?= auto

.PHONY: repro test install clean-venv bench

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "need python3.11 on PATH"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" ECRAM_CACHE_DIR="$(CURDIR)/.cache/ecram" $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python -m benchmarks.kernels
	$(BIN)/python -m benchmarks.training

clean-venv:
	rm -rf $(VENV)
