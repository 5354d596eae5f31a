"""Shared fixtures: a copy of the project and one finished smoke run per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "Snakefile",
    "config",
    "workflow",
    "profiles",
    "scripts",
    "notebooks",
    "pyproject.toml",
]
PROJECT_FILES += ["README.md", "LICENSE", "environment.yml", "CITATION.cff", ".zenodo.json"]
PROJECT_FILES += ["Makefile"]  # archived with the code
PROJECT_FILES += ["src", "docs", "benchmarks", "data"]

#: The fields of one ``plan.Run`` (a balanced depth-3 start at its certified step), for
#: tests that build runs by hand: ``plan.Run(**RUN_FIELDS | {...})``.
RUN_FIELDS = {
    "experiment": "e", "dataset": "d", "depth": 3, "hidden": 5, "init": "balanced",
    "init_scale": 0.5, "init_rank": None, "init_xi": 0.0, "init_spread": 0.1, "seed": 0,
    "step_rule": "constant", "tau": 100.0, "alpha": 0.0, "step_multiple": 1.0,
    "step_unit": "certified",
}  # fmt: skip


def copy_project(dest: Path) -> Path:
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_symlink():
            (dest / name).symlink_to(src.readlink())
        elif src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


#: Where the smoke config writes (results_dir and figures_dir of config/smoke.yaml).
SMOKE = Path("results/smoke")


def venv_env() -> dict[str, str]:
    """This environment with this interpreter's bin first on PATH, so rules' `python` is ours."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Snakemake of this interpreter's environment; its rules find `python` on PATH there."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=900, env=venv_env()
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> Path:
    """A finished smoke run: the whole pipeline, figures included."""
    workdir = copy_project(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir, "--configfile", "config/smoke.yaml")
    return workdir
