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
# A config file replaces config/config.yaml (it is never merged into it): CONFIG=my.yaml.
CONFIG ?=
CONFIG_ARG := $(if $(CONFIG),--configfile=$(CONFIG),)
CONFIG_FILE := $(or $(CONFIG),config/config.yaml)
CHECK  = $(BIN)/python -m deeplinear.plan check $(or $(1),config/config.yaml)
# The config's results_dir (results/ by default), read from the validated config.
RESULTS_DIR = $$($(BIN)/python -m deeplinear.plan get results_dir $(CONFIG_FILE))
# Rules run `python` from their environment: with .venv, that is .venv/bin/python.
export PATH := $(abspath $(BIN)):$(PATH)
# A fixed string hash for everything make starts (the archive also canonicalizes the parts
# of Snakemake's report that follow hash order: deeplinear.publish.archive.canonical_report).
export PYTHONHASHSEED := 0

.PHONY: reproduce readme test lint smoke figure bench archive verify-archive clean help

help:
	@echo "make reproduce   set up .venv and run the full pipeline (snakemake --cores $(CORES));"
	@echo "                 CONFIG=my.yaml runs that config instead of config/config.yaml"
	@echo "make test        set up .venv, lint with ruff, run the test suite"
	@echo "make readme      copy the claims' headlines of results/tables/claims.md into README.md"
	@echo "make smoke       run the whole pipeline on the tiny smoke config (into results/smoke)"
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
	$(call CHECK,$(CONFIG))
	$(BIN)/snakemake --cores $(CORES) $(CONFIG_ARG)
	$(if $(CONFIG),,$(MAKE) readme)

readme: $(STAMP)
	$(BIN)/python -m deeplinear.publish.readme README.md results/tables/claims.md docs/claims.md

$(CFF):
	$(PYTHON) -m venv .venv-cff
	.venv-cff/bin/python -m pip install --quiet cffconvert==2.0.0

test: $(STAMP) $(CFF) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

smoke: $(STAMP)
	$(call CHECK,config/smoke.yaml)
	$(BIN)/snakemake --cores 2 --configfile=config/smoke.yaml

# The figure's files under the config's figures_dir; an unknown FIG lists the figures.
figure: $(STAMP)
	$(call CHECK,$(CONFIG))
	@$(BIN)/python -m deeplinear.plan figure $(FIG) $(CONFIG_FILE) > /dev/null
	$(BIN)/snakemake --cores $(CORES) $$($(BIN)/python -m deeplinear.plan figure $(FIG) $(CONFIG_FILE)) $(CONFIG_ARG)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_gd.py $(BENCH_ARGS)

# --- report, archive, deposit (README "Archive and cite") ------------------------------------
.PHONY: report deposit
# The report and the archive describe the run of CONFIG (default config/config.yaml).
# Snakemake with the venv first on PATH, so that `python` in the rules is the venv's.
SNAKEMAKE_VENV = PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake

# Snakemake's own report of the finished run; provenance (shown in it) is always recomputed.
report: $(STAMP)
	$(SNAKEMAKE_VENV) all provenance --cores $(CORES) --forcerun provenance --configfile=$(CONFIG_FILE)
	$(SNAKEMAKE_VENV) all provenance --report "$(RESULTS_DIR)/report.html" --configfile=$(CONFIG_FILE)

# The report first (a plain input of the archive rule), then the tarball; prints its SHA-256,
# also written to dist/<name>.tar.gz.sha256.
archive: report
	$(SNAKEMAKE_VENV) archive --cores $(CORES) --forcerun lock --configfile=$(CONFIG_FILE)
	@echo "SHA-256 of the archive (publish it with the archive):"
	@cat "$$(ls -t dist/*.tar.gz.sha256 | head -n 1)"

# Needs only Python's standard library (no venv): a reader with the tarball can run it.
verify-archive:
	@test -n "$(ARCHIVE)" || { echo "usage: make verify-archive ARCHIVE=dist/<name>.tar.gz [SHA256=<published hash>] [DOI=<record DOI>]"; exit 2; }
	PYTHONPATH="$(CURDIR)/src" $(PYTHON) -m deeplinear.publish verify "$(ARCHIVE)" $(if $(SHA256),--sha256 "$(SHA256)") $(if $(DOI),--doi "$(DOI)")

# Upload the archive to a Zenodo draft (token in $$ZENODO_TOKEN); PUBLISH=1 publishes it,
# SANDBOX=1 uses sandbox.zenodo.org, RECORD_ID=<id> makes a new version of that record (the
# default when CITATION.cff has a Zenodo DOI), DEPOSITION=<id> continues an existing draft;
# an archive of a config other than config/config.yaml needs OTHER_CONFIG=1.
deposit:
	PYTHONPATH="$(CURDIR)/src" $(PYTHON) -m deeplinear.publish deposit $(if $(ARCHIVE),"$(ARCHIVE)") $(if $(filter 1,$(PUBLISH)),--publish) $(if $(filter 1,$(SANDBOX)),--sandbox) $(if $(RECORD_ID),--record-id "$(RECORD_ID)") $(if $(DEPOSITION),--deposition "$(DEPOSITION)") $(if $(filter 1,$(OTHER_CONFIG)),--other-config)

clean:
	rm -rf results .snakemake dist
