"""The Snakemake workflow end to end on the smoke config, in a temporary copy of the project."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deeplinear import figures, gd
from deeplinear.experiments import RUNS_COLUMNS
from tests.conftest import ROOT, SMOKE, copy_project, snakemake

TRAJECTORY_COLUMNS = ["run_id", *gd.TRAJECTORY_COLUMNS[1:]]

pytestmark = pytest.mark.pipeline


def executed_rules(proc: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.M)


def planned_shards(proc: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """``(experiment, shard)`` of every train_shard job in a dry run's output."""
    text = proc.stdout + proc.stderr
    return re.findall(r"wildcards: experiment=([\w-]+), shard=([\w.-]+)", text)


def test_contract_tables_have_their_columns(smoke):
    runs = pd.read_csv(smoke / SMOKE / "tables/runs.csv")
    assert list(runs.columns) == list(RUNS_COLUMNS)
    assert set(runs["status"]) <= set(gd.STATUSES)
    assert runs["run_id"].is_unique
    traj = pd.read_parquet(smoke / SMOKE / "tables/trajectories.parquet")
    assert list(traj.columns) == TRAJECTORY_COLUMNS
    assert set(traj["run_id"]) == set(runs["run_id"])
    for name in ("convergence_stats", "rank_stats", "step_thresholds", "thresholds", "claims"):
        assert len(pd.read_csv(smoke / SMOKE / f"tables/{name}.csv")) > 0, name
    for exp in yaml.safe_load((smoke / "config/smoke.yaml").read_text())["experiments"]:
        part = pd.read_csv(smoke / SMOKE / f"tables/experiments/{exp}/runs.csv")
        assert set(part["experiment"]) == {exp}
        whole = runs[runs["experiment"] == exp].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, whole, check_dtype=False)  # an all-NaN column
        # of one experiment reads as float, the same column of the whole table may not


def test_tanh_tables_and_the_claim6_row(smoke):
    from deeplinear import tanh

    tables = smoke / SMOKE / "tables"
    readings = pd.read_csv(tables / "authors_tanh_readings.csv")
    assert readings["best"].sum() >= 1 and readings["score"].notna().all()
    runs = pd.read_csv(tables / "authors_tanh_runs.csv")
    assert list(runs.columns) == list(tanh.RUNS_COLUMNS)
    assert set(runs["reading"]) == {readings.loc[readings["rank"] == 1, "reading"].iloc[0]}
    sweep = pd.read_csv(tables / "tanh_sweep.csv")
    assert list(sweep.columns) == list(tanh.SWEEP_COLUMNS)
    assert set(sweep["activation"]) == {runs["activation"].iloc[0], "identity"}
    assert set(sweep["status"]) <= set(gd.STATUSES)
    critical = pd.read_csv(tables / "tanh_critical.csv")
    assert list(critical.columns) == list(tanh.CRITICAL_COLUMNS)
    schedule = pd.read_csv(tables / "tanh_schedule.csv")
    assert (schedule["decrease_violations"] >= 0).all()
    claims_table = pd.read_csv(tables / "claims.csv")
    assert list(claims_table["claim"]) == [1, 2, 3, 4, 5, 6]
    assert "decrease violations" in claims_table.iloc[5]["measured"]


def test_within_bound_never_diverges_and_far_above_does(smoke):
    runs = pd.read_csv(smoke / SMOKE / "tables/runs.csv")
    within = runs[(runs["step_multiple"] <= 1) & (runs["step_rule"] == "constant")]
    assert len(within) > 0
    assert set(within["status"]) <= {"converged", "budget_exhausted"}
    assert (within["decrease_failures"] == 0).all()
    assert (within["max_balance_drift"] <= within["bound_drift"]).all()
    assert (within["max_weight_norm"] <= within["bound_weight_norm"]).all()
    far = runs[runs["step_multiple"] >= 100]
    assert (far["status"] == "diverged").any()


def test_figures_are_valid_files_and_the_committed_ones_are_untouched(smoke):
    rendered = sorted((smoke / SMOKE / "figures").glob("fig*"))
    assert [p.name for p in rendered] == sorted(
        f"{f.name}.{ext}" for f in figures.FIGURES for ext in ("pdf", "png")
    )
    for path in rendered:
        head = path.read_bytes()[:8]
        magic = b"%PDF" if path.suffix == ".pdf" else b"\x89PNG\r\n\x1a\n"
        assert head.startswith(magic), path.name
        assert path.stat().st_size > 5000, path.name
    executed = sorted((smoke / SMOKE / "notebooks").glob("*.ipynb"))
    assert [p.stem for p in executed] == sorted(f.name for f in figures.FIGURES)
    assert not (smoke / "figures").exists()  # the committed figures' folder: never written
    assert (smoke / "README.md").read_bytes() == (ROOT / "README.md").read_bytes()
    assert not (smoke / "results/tables").exists()


def test_second_run_does_nothing(smoke):
    proc = snakemake(smoke, "--configfile", "config/smoke.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_notebook_reruns_only_that_figure(smoke):
    nb = smoke / "notebooks/fig6_threshold.ipynb"
    nb.write_text(nb.read_text().replace("Figure 6", "Figure 6 (edited)", 1))
    proc = snakemake(smoke, "--configfile", "config/smoke.yaml")
    # (the runtime table sums every job's benchmark file, so it follows any rerun)
    rerun = [r for r in executed_rules(proc) if r not in ("all", "runtimes")]
    assert rerun == ["figure_fig6_threshold"]


def test_report_renders(smoke):
    snakemake(smoke, "--report", "report.html", "--configfile", "config/smoke.yaml")
    html = (smoke / "report.html").read_text(errors="replace")
    assert "fig1_stepsize" in html


def test_every_rule_leaves_a_benchmark_file(smoke):
    bench = smoke / SMOKE / "benchmarks"
    assert (bench / "aggregate_study.tsv").exists()
    assert len(list((bench / "train_shard").rglob("*.tsv"))) >= 10
    assert len(list((bench / "figures").glob("*.tsv"))) == len(figures.FIGURES)


@pytest.mark.parametrize("fig", figures.FIGURES, ids=lambda f: f.name)
def test_one_figure_plans_only_the_shards_of_its_experiments(tmp_path, fig):
    work = copy_project(tmp_path)
    target = f"{SMOKE}/figures/{fig.name}.pdf"
    proc = snakemake(work, "-n", target, "--configfile", "config/smoke.yaml")
    shards = planned_shards(proc)
    assert {exp for exp, _ in shards} == set(fig.experiments.values())
    threshold = "rule threshold_shard" in proc.stdout + proc.stderr
    assert threshold == bool({"thresholds", "step_thresholds"} & set(fig.tables))


def test_a_new_step_multiple_reruns_only_its_new_shards(smoke, tmp_path):
    cfg = yaml.safe_load((smoke / "config/smoke.yaml").read_text())
    cfg["experiments"]["stepsize"]["step_multiples"].append(3)
    (smoke / "config/more.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(smoke, "-n", "--configfile", "config/more.yaml")
    shards = planned_shards(proc)
    depths = cfg["experiments"]["stepsize"]["depths"]
    assert sorted(shards) == sorted(("stepsize", f"N{d}-h5-m3-s00") for d in depths)
    assert len(proc.stdout + proc.stderr) < 20_000  # params are digests, not run lists


def bad_config(tmp_path: Path, edit) -> subprocess.CompletedProcess:
    workdir = copy_project(tmp_path)
    cfg = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    edit(cfg)
    (workdir / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(workdir, "--configfile", "config/bad.yaml", check=False)
    assert proc.returncode != 0
    assert not (workdir / SMOKE).exists(), "a job ran despite a bad config"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["experiments"]["stepsize"].update(stepsizes=[1]), "stepsizes"),
        (lambda c: c["experiments"]["depth"].update(dataset="nope"), "experiments.depth.dataset"),
        (lambda c: c["datasets"]["synthetic"].update(d_x=5, m=3), "datasets.synthetic"),
        (lambda c: c["tanh"]["readings"][0].update(dataset="nope"), "tanh.readings.0.dataset"),
    ],
    ids=["unknown-key", "unknown-dataset", "rank-deficient-data", "tanh-unknown-dataset"],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, edit, expected):
    proc = bad_config(tmp_path, edit)
    assert expected in proc.stdout + proc.stderr
