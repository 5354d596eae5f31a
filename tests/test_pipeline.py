"""The Snakemake workflow end to end on the smoke config, in a temporary copy of the project."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import copy_project, snakemake

RUNS_COLUMNS = (
    "run_id experiment dataset depth widths init init_scale init_rank seed step_rule "
    "step_multiple eta eta_bound iterations status final_loss optimal_loss final_rank "
    "optimal_loss_at_rank rank_optimal max_weight_norm max_balance_drift bound_drift "
    "final_grad_norm"
).split()
TRAJECTORY_COLUMNS = (
    "run_id iteration loss excess_loss grad_norm product_norm max_weight_norm balance_drift rank"
).split()

pytestmark = pytest.mark.pipeline


def executed_rules(proc: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.M)


def test_contract_tables_have_their_columns(smoke):
    runs = pd.read_csv(smoke / "results/tables/runs.csv")
    assert set(RUNS_COLUMNS) <= set(runs.columns)
    assert set(runs["status"]) <= {"converged", "diverged", "budget_exhausted"}
    assert runs["run_id"].is_unique
    traj = pd.read_parquet(smoke / "results/tables/trajectories.parquet")
    assert set(TRAJECTORY_COLUMNS) <= set(traj.columns)
    assert set(traj["run_id"]) == set(runs["run_id"])
    for name in ("convergence_stats", "rank_stats", "step_thresholds"):
        table = pd.read_csv(smoke / f"results/tables/{name}.csv")
        assert len(table) > 0, name
    thresholds = pd.read_csv(smoke / "results/tables/step_thresholds.csv")
    assert {"depth", "eta_cert", "critical_eta", "eos_eta", "acgh_eta"} <= set(thresholds.columns)


def test_within_bound_never_diverges_and_far_above_does(smoke):
    runs = pd.read_csv(smoke / "results/tables/runs.csv")
    within = runs[(runs["step_multiple"] <= 1) & (runs["step_rule"] == "constant")]
    assert len(within) > 0
    assert set(within["status"]) <= {"converged", "budget_exhausted"}
    assert (within["decrease_failures"] == 0).all()
    assert (within["max_balance_drift"] <= within["bound_drift"]).all()
    assert (within["max_weight_norm"] <= within["bound_weight_norm"]).all()
    far = runs[runs["step_multiple"] >= 100]
    assert (far["status"] == "diverged").any()


def test_figures_are_valid_files(smoke):
    config = yaml.safe_load((smoke / "config/smoke.yaml").read_text())
    assert config["experiments"]
    figures = sorted((smoke / "figures").glob("fig*"))
    assert len(figures) == 14
    for path in figures:
        head = path.read_bytes()[:8]
        magic = b"%PDF" if path.suffix == ".pdf" else b"\x89PNG\r\n\x1a\n"
        assert head.startswith(magic), path.name
        assert path.stat().st_size > 5000, path.name
    executed = sorted((smoke / "results/notebooks").glob("*.ipynb"))
    assert [p.stem for p in executed] == sorted({p.stem for p in figures})


def test_second_run_does_nothing(smoke):
    proc = snakemake(smoke, "--configfile", "config/smoke.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_notebook_reruns_only_that_figure(smoke):
    nb = smoke / "notebooks/fig6_threshold.ipynb"
    nb.write_text(nb.read_text().replace("Figure 6:", "Figure 6 (edited):"))
    proc = snakemake(smoke, "--configfile", "config/smoke.yaml")
    assert [r for r in executed_rules(proc) if r != "all"] == ["figure_fig6_threshold"]


def test_report_renders(smoke):
    snakemake(smoke, "--configfile", "config/smoke.yaml", "--report", "results/report.html")
    html = (smoke / "results/report.html").read_text(errors="replace")
    assert "fig1_stepsize" in html


def bad_config(tmp_path: Path, edit) -> tuple[Path, subprocess.CompletedProcess]:
    workdir = copy_project(tmp_path)
    cfg = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    edit(cfg)
    (workdir / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(workdir, "--configfile", "config/bad.yaml", check=False)
    assert proc.returncode != 0
    assert not (workdir / "results/runs").exists(), "training started despite a bad config"
    return workdir, proc


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["experiments"]["stepsize"].update(stepsizes=[1]), "stepsizes"),
        (lambda c: c["experiments"]["stepsize"].update(step_multiples=[-1, 1]), "step_multiples"),
        (lambda c: c["experiments"]["depth"].update(depths=[0, 2]), "depths"),
        (lambda c: c["experiments"]["depth"].update(dataset="nope"), "experiments.depth.dataset"),
    ],
    ids=["unknown-key", "negative-multiple", "depth-zero", "unknown-dataset"],
)
def test_bad_config_fails_before_training(tmp_path, edit, expected):
    _, proc = bad_config(tmp_path, edit)
    assert expected in proc.stdout + proc.stderr


def test_rank_deficient_dataset_fails_before_training(tmp_path):
    def edit(cfg):  # m < d_x: X X^T cannot have full rank
        cfg["datasets"]["synthetic"].update(d_x=5, m=3)

    _, proc = bad_config(tmp_path, edit)
    message = proc.stdout + proc.stderr
    assert "datasets.synthetic" in message and "condition number" in message
