"""The smoke pipeline through a real SLURM scheduler (tests/cluster/start-slurm.sh).

Skips, with the reason, when no SLURM controller answers on this machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SMOKE, copy_project, venv_env

pytestmark = [pytest.mark.cluster, pytest.mark.pipeline]

#: The smoke run's tables and figures (results/smoke/...), compared byte for byte.
COMPARED = ("tables/**/*.csv", "tables/**/*.parquet", "figures/fig*.p*")


def slurm_reason() -> str | None:
    """Why the test cannot run here, or None when a controller answers."""
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH: start a cluster with tests/cluster/start-slurm.sh"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"no SLURM controller answers (scontrol ping: {ping.stdout.strip()!r})"
    return None


def test_smoke_through_slurm_matches_the_local_run(smoke, tmp_path):
    reason = slurm_reason()
    if reason:
        pytest.skip(reason)
    work = copy_project(tmp_path)
    cmd = [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm"]
    proc = subprocess.run(
        [*cmd, "--configfile", "config/smoke.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=3600,
        env=venv_env(),  # sbatch exports it to the jobs
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    ids = sorted(set(re.findall(r"SLURM jobid (\d+)", log)))
    executed = re.findall(r"^rule (\w+):", log, flags=re.M)
    assert len(ids) == len(executed) > 0, (ids, executed)
    sacct = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
    ).stdout
    states = dict(line.split("|", 1) for line in sacct.split())
    assert set(ids) <= set(states), "a job is missing from sacct"
    assert {states[i] for i in ids} == {"COMPLETED"}
    print(f"{len(ids)} jobs went through sbatch: {ids[0]}..{ids[-1]}")
    local = smoke / SMOKE
    paths = sorted(p.relative_to(local) for pattern in COMPARED for p in local.glob(pattern))
    assert any(p.name == "runs.csv" for p in paths) and any(p.suffix == ".png" for p in paths)
    for path in paths:
        if path.name == "runtimes.csv":  # wall times differ between any two runs
            continue
        assert (work / SMOKE / path).read_bytes() == (local / path).read_bytes(), path
