# The two commands of the README: `make reproduce` and `make test`.
# Both create the virtual environment .venv with pip when it is absent or stale.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# cffconvert pins jsonschema < 4, which conflicts with Snakemake: it gets its own venv.
CFF    := .venv-cff/bin/cffconvert
CORES  ?= 8
FIG    ?= fig1_stepsize

.PHONY: reproduce test lint smoke figure bench archive verify-archive clean help

help:
	@echo "make reproduce   set up .venv and run the full pipeline (snakemake --cores $(CORES))"
	@echo "make test        set up .venv, lint with ruff, run the test suite"
	@echo "make smoke       run the whole pipeline on the tiny smoke config"
	@echo "make figure FIG=fig1_stepsize   regenerate one figure and only what it needs"
	@echo "make bench       run the engine benchmark (BENCH_ARGS=--profile for a breakdown)"
	@echo "make archive     build the deterministic archive in dist/"
	@echo "make verify-archive ARCHIVE=dist/....tar.gz   check every hash of an archive"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

$(CFF):
	$(PYTHON) -m venv .venv-cff
	.venv-cff/bin/python -m pip install --quiet cffconvert==2.0.0

test: $(STAMP) $(CFF) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

smoke: $(STAMP)
	$(BIN)/snakemake --cores 2 --configfile config/smoke.yaml

figure: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) figures/$(FIG).pdf figures/$(FIG).png

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_gd.py $(BENCH_ARGS)

archive: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) archive

verify-archive: $(STAMP)
	@test -n "$(ARCHIVE)" || { echo "usage: make verify-archive ARCHIVE=dist/<name>.tar.gz"; exit 2; }
	$(BIN)/python scripts/archive.py verify "$(ARCHIVE)"

clean:
	rm -rf results .snakemake dist
