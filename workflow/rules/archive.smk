# Provenance, the exact package versions, and the deterministic archive in dist/.
# Uses from the including Snakefile: ALL_TABLES, ALL_FIGURES, PYTHON and ENV; depends on
# results/report.html (rule report_html). All logic lives in scripts/archive.py.
import importlib.util
import json
import os
import tomllib
from hashlib import sha256
from pathlib import Path

#: scripts/archive.py as a module: one definition of archived files, git state and lock.
_spec = importlib.util.spec_from_file_location("deeplinear_archive_tool", "scripts/archive.py")
ARCHIVE_TOOL = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ARCHIVE_TOOL)

PROJECT = tomllib.loads(Path("pyproject.toml").read_text())["project"]

#: The config this run uses (config files merged, schema defaults filled) as canonical JSON.
#: Its hash names the archive, so two configs never share an archive name.
RESOLVED_CONFIG = json.dumps(config, indent=2, sort_keys=True, default=str) + "\n"
CONFIG_HASH = sha256(RESOLVED_CONFIG.encode()).hexdigest()[:8]
ARCHIVE = f"dist/{PROJECT['name']}-{PROJECT['version']}-{CONFIG_HASH}.tar.gz"

#: Code and metadata taken into the archive (folders are walked, caches skipped).
ARCHIVE_CODE = [
    "Snakefile", "workflow", "src", "scripts", "notebooks", "config", "docs", "benchmarks",
    "pyproject.toml", "environment.yml", "README.md", "LICENSE", "CITATION.cff", ".zenodo.json",
]  # fmt: skip
EXECUTED_NOTEBOOKS = sorted({f"results/notebooks/{Path(f).stem}.ipynb" for f in ALL_FIGURES})

#: Rerun provenance and lock when the code version or the installed packages change.
GIT_COMMIT = ARCHIVE_TOOL.git_commit(Path.cwd())
ENV_FINGERPRINT = sha256(ARCHIVE_TOOL.lock_text().encode()).hexdigest()[:16]
RUN_COMMAND = ARCHIVE_TOOL.snakemake_command(workflow.overwrite_configfiles, Path.cwd())


localrules:
    resolved_config,
    provenance,
    lock,
    archive,


rule resolved_config:
    """The resolved config as JSON: what provenance records and what names the archive."""
    output:
        config="results/config.json",
    params:
        text=RESOLVED_CONFIG,
        python=PYTHON,
    conda:
        ENV
    log:
        "results/logs/config.log",
    shell:
        "{params.python} scripts/archive.py config --out {output.config} "
        "--json {params.text:q} > {log} 2>&1"


rule provenance:
    """Command, config and its SHA-256, git commit (or -dirty), package versions, platform."""
    input:
        tables=ALL_TABLES,
        config="results/config.json",
    output:
        provenance=report(
            "results/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    params:
        command=RUN_COMMAND,
        commit=GIT_COMMIT,
        env=ENV_FINGERPRINT,
        python=PYTHON,
    conda:
        ENV
    log:
        "results/logs/provenance.log",
    shell:
        "{params.python} scripts/archive.py provenance --out {output.provenance} "
        "--config-file {input.config} --command {params.command:q} > {log} 2>&1"


rule lock:
    """Every installed distribution with its exact version (pip freeze style)."""
    output:
        lock="results/requirements.lock",
    params:
        env=ENV_FINGERPRINT,
        python=PYTHON,
    conda:
        ENV
    log:
        "results/logs/lock.log",
    shell:
        "{params.python} scripts/archive.py lock --out {output.lock} > {log} 2>&1"


rule archive:
    """Deterministic tarball of code, config, tables, figures, executed notebooks, report,
    lock, provenance and SHA256SUMS; check it with `make verify-archive ARCHIVE=...`."""
    input:
        tables=ALL_TABLES,
        figures=ALL_FIGURES,
        notebooks=EXECUTED_NOTEBOOKS,
        report="results/report.html",
        config="results/config.json",
        provenance="results/provenance.json",
        lock="results/requirements.lock",
        code=ARCHIVE_TOOL.code_files(ARCHIVE_CODE),
    output:
        archive=ARCHIVE,
    params:
        out=lambda wildcards, output: os.path.dirname(output.archive),
        name=PROJECT["name"],
        version=PROJECT["version"],
        code=ARCHIVE_CODE,
        python=PYTHON,
    conda:
        ENV
    log:
        "results/logs/archive.log",
    shell:
        "{params.python} scripts/archive.py build --out {params.out} --name {params.name} "
        "--version {params.version} --config-file {input.config} "
        "--member {params.code:q} {input.tables:q} {input.figures:q} {input.notebooks:q} "
        "{input.report:q} --lock {input.lock} --provenance {input.provenance} > {log} 2>&1"
