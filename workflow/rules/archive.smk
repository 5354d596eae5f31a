# Provenance, the exact package versions, and the deterministic archive in dist/.
# Uses from the including Snakefile: ALL_TABLES, ALL_FIGURES and ENV. The logic lives in
# deeplinear.archive, which the jobs run as `python -m deeplinear.archive`.
#
# Nothing here runs git, pip or the network while the workflow is parsed (also `snakemake -n`):
# the git commit and the installed versions are read inside the provenance and lock jobs.
# They are facts about the moment of archiving, so `make report` and `make archive` rerun
# both jobs every time (`--forcerun provenance` / `--forcerun lock`; each takes about a
# second). A bare `snakemake archive` reruns them only when their inputs change.
import json
import os
import tomllib
from hashlib import sha256
from pathlib import Path

from deeplinear import archive as archive_tool

#: The project folder (the Snakefile's), whatever the working directory: code is archived
#: from here, results from the working directory.
PROJECT_ROOT = Path(workflow.basedir)
PROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]

#: The config this run uses (config files merged, schema defaults filled) as canonical JSON.
#: Its hash names the archive, so two configs never share an archive name.
RESOLVED_CONFIG = json.dumps(config, indent=2, sort_keys=True, default=str) + "\n"
CONFIG_HASH = sha256(RESOLVED_CONFIG.encode()).hexdigest()[:8]
ARCHIVE = f"dist/{PROJECT['name']}-{PROJECT['version']}-{CONFIG_HASH}.tar.gz"

#: Code and metadata taken into the archive (folders are walked, caches skipped).
ARCHIVE_CODE = [
    "Snakefile", "workflow", "src", "scripts", "notebooks", "config", "docs", "benchmarks", "data",
    "pyproject.toml", "environment.yml", "README.md", "LICENSE", "CITATION.cff", ".zenodo.json",
    "Makefile",
]  # fmt: skip
EXECUTED_NOTEBOOKS = sorted({f"{RESULTS}/notebooks/{Path(f).stem}.ipynb" for f in ALL_FIGURES})
RUN_COMMAND = archive_tool.snakemake_command(workflow.overwrite_configfiles, Path.cwd())


localrules:
    resolved_config,
    provenance,
    lock,
    archive,


rule resolved_config:
    """The resolved config as JSON: what provenance records and what names the archive."""
    output:
        config=f"{RESULTS}/config.json",
    params:
        text=RESOLVED_CONFIG,
    conda:
        ENV
    log:
        f"{RESULTS}/logs/config.log",
    benchmark:
        f"{RESULTS}/benchmarks/resolved_config.tsv"
    shell:
        "python -m deeplinear.archive config --out {output.config} "
        "--json {params.text:q} > {log} 2>&1"


rule provenance:
    """Command, config and its SHA-256, git commit (or -dirty), package versions, platform."""
    input:
        tables=ALL_TABLES,
        config=f"{RESULTS}/config.json",
    output:
        provenance=report(
            f"{RESULTS}/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    params:
        command=RUN_COMMAND,
        project=str(PROJECT_ROOT),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/provenance.log",
    benchmark:
        f"{RESULTS}/benchmarks/provenance.tsv"
    shell:
        "python -m deeplinear.archive provenance --out {output.provenance} "
        "--config-file {input.config} --command {params.command:q} "
        "--project-dir {params.project:q} > {log} 2>&1"


rule lock:
    """Every installed distribution with its exact version (pip freeze style)."""
    output:
        lock=f"{RESULTS}/requirements.lock",
    conda:
        ENV
    log:
        f"{RESULTS}/logs/lock.log",
    benchmark:
        f"{RESULTS}/benchmarks/lock.tsv"
    shell:
        "python -m deeplinear.archive lock --out {output.lock} > {log} 2>&1"


rule archive:
    """Deterministic tarball of code, config, tables, figures, executed notebooks, report,
    lock, provenance and SHA256SUMS, and its SHA-256 beside it (printed); check it with
    `make verify-archive ARCHIVE=... SHA256=...`."""
    input:
        tables=ALL_TABLES,
        figures=ALL_FIGURES,
        notebooks=EXECUTED_NOTEBOOKS,
        report=made_report,
        config=f"{RESULTS}/config.json",
        provenance=f"{RESULTS}/provenance.json",
        lock=f"{RESULTS}/requirements.lock",
        code=archive_tool.code_files(ARCHIVE_CODE, PROJECT_ROOT),
    output:
        archive=ARCHIVE,
        sha256=f"{ARCHIVE}.sha256",
    params:
        out=lambda wildcards, output: os.path.dirname(output.archive),
        name=PROJECT["name"],
        version=PROJECT["version"],
        code=ARCHIVE_CODE,
        code_root=str(PROJECT_ROOT),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/archive.log",
    benchmark:
        f"{RESULTS}/benchmarks/archive.tsv"
    shell:
        "python -m deeplinear.archive build --out {params.out} --name {params.name} "
        "--version {params.version} --config-file {input.config} "
        "--code-root {params.code_root:q} --code {params.code:q} "
        "--member {input.tables:q} {input.figures:q} {input.notebooks:q} {input.report:q} "
        "--lock {input.lock} --provenance {input.provenance} > {log} 2>&1 "
        "&& cat {output.sha256}"
