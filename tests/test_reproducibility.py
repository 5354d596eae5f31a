"""Bitwise reproducibility of the smoke pipeline, also across a hard interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SMOKE, copy_project, snakemake, venv_env

pytestmark = pytest.mark.pipeline

TABLES = [f"{SMOKE}/tables/runs.csv", f"{SMOKE}/tables/trajectories.parquet"]


def same_bytes(a: Path, b: Path) -> None:
    for table in TABLES:
        assert (a / table).read_bytes() == (b / table).read_bytes(), table


def test_two_runs_from_scratch_are_bitwise_identical(smoke, tmp_path):
    fresh = copy_project(tmp_path)
    snakemake(fresh, *TABLES, "--configfile", "config/smoke.yaml")
    same_bytes(smoke, fresh)


def test_sigkill_during_training_then_rerun_gives_identical_tables(smoke, tmp_path):
    work = copy_project(tmp_path)
    cmd = [sys.executable, "-m", "snakemake", *TABLES, "--cores", "2"]
    proc = subprocess.Popen(
        [*cmd, "--configfile", "config/smoke.yaml"],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=venv_env(),  # the rules' `python` is this environment's, as in snakemake()
    )
    runs = work / SMOKE / "runs"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(runs.glob("*/*.summary.csv"))) < 3:
        time.sleep(0.05)
    killed_with = len(list(runs.glob("*/*.summary.csv")))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed_with >= 3, "training never started"
    assert not (work / TABLES[0]).exists(), "killed too late: nothing interrupted"
    # A hard kill leaves Snakemake's lock behind: release it, then simply rerun.
    snakemake(work, "--unlock", "--configfile", "config/smoke.yaml")
    snakemake(work, *TABLES, "--configfile", "config/smoke.yaml")
    same_bytes(smoke, work)
