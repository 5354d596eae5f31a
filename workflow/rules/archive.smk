# Provenance, the exact package versions, and the deterministic archive in dist/.
import hashlib
from pathlib import Path

CONFIG_FILE = str(workflow.configfiles[-1])
CONFIG_HASH = hashlib.sha256(Path(CONFIG_FILE).read_bytes()).hexdigest()[:8]
ARCHIVE = f"dist/deeplinear-0.1.0-{CONFIG_HASH}.tar.gz"
CODE = [
    "Snakefile", "workflow", "src", "scripts", "notebooks", "config", "docs", "benchmarks",
    "pyproject.toml", "environment.yml", "README.md", "LICENSE", "CITATION.cff", ".zenodo.json",
]  # fmt: skip


rule provenance:
    """Config, git commit (or -dirty), package versions, platform and command."""
    input:
        ALL_TABLES,
    output:
        report(
            "results/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    params:
        config=CONFIG_FILE,
        python=PYTHON,
    conda:
        ENV
    log:
        "results/logs/archive/provenance.log",
    shell:
        "{params.python} scripts/archive.py provenance --out {output} "
        "--config-file {params.config} --command 'snakemake --configfile {params.config}' "
        "> {log} 2>&1"


rule lock:
    """Every installed distribution with its exact version (pip freeze style)."""
    output:
        "results/requirements.lock",
    params:
        python=PYTHON,
    conda:
        ENV
    log:
        "results/logs/archive/lock.log",
    shell:
        "{params.python} scripts/archive.py lock --out {output} > {log} 2>&1"


rule archive:
    """Deterministic tarball of code, config, tables, figures, notebooks, report, lock,
    provenance and SHA256SUMS; check it with `make verify-archive ARCHIVE=...`."""
    input:
        tables=ALL_TABLES,
        figures=ALL_FIGURES,
        notebooks=expand("results/notebooks/{fig}.ipynb", fig=FIGURES),
        report="results/report.html",
        provenance="results/provenance.json",
        lock="results/requirements.lock",
    output:
        ARCHIVE,
    params:
        config=CONFIG_FILE,
        code=" ".join(CODE),
        python=PYTHON,
    conda:
        ENV
    log:
        "results/logs/archive/archive.log",
    shell:
        "{params.python} scripts/archive.py build --out dist --name deeplinear "
        "--version 0.1.0 --config-file {params.config} {params.code} "
        "{input.tables} {input.figures} {input.notebooks} {input.report} "
        "{input.provenance} {input.lock} > {log} 2>&1"
