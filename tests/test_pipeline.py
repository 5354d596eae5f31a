"""The Snakemake workflow end to end on the smoke config, in a temporary copy of the project."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deeplinear import figures, gd
from deeplinear.experiments import RUNS_COLUMNS
from tests.conftest import ROOT, SMOKE, copy_project, snakemake, venv_env

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
    # within the bound by the step itself (an absolute step, as in `authors`, may be above)
    within = runs[
        (runs["eta"] <= runs["eta_bound"] * (1 + 1e-9)) & (runs["step_rule"] == "constant")
    ]
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
    # params are digests, not run lists (file listings left out: every table is listed with
    # its digest record)
    lists = ("input:", "output:", "reason:")
    text = (proc.stdout + proc.stderr).splitlines()
    assert sum(len(line) for line in text if not line.lstrip().startswith(lists)) < 20_000


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


def test_reading_search_scores_every_reading_and_marks_the_experiments(smoke):
    """Rule authors_readings: one row per reading of the smoke config, ranked by score,
    the readings that experiments run marked with their scaled-vs-unscaled gap."""
    from deeplinear import authors

    cfg = yaml.safe_load((smoke / "config/smoke.yaml").read_text())
    table = pd.read_csv(smoke / SMOKE / "tables/authors_readings.csv", keep_default_na=False)
    assert list(table.columns[: len(authors.READING_COLUMNS)]) == list(authors.READING_COLUMNS)
    names = [r["name"] for r in cfg["authors_readings"]["readings"]]
    assert sorted(table["reading"]) == sorted(names)
    assert table["rank"].is_monotonic_increasing and table["best"].sum() == 1
    assert (table["starts"] == cfg["authors_readings"]["starts"]).all()  # every start scored
    assert (table["score_worst_start"].astype(float) >= table["score"].astype(float)).all()
    marked = table[table["experiment"] != ""]
    assert set(marked["experiment"]) == {"authors", "authors_width70"}
    assert (marked["max_log10_scaled_vs_unscaled"].astype(float) < 0.5).all()
    points = pd.read_csv(smoke / SMOKE / "tables/authors_points.csv")
    assert len(points) == len(authors.read_published(smoke / "data/authors_published_loss.csv"))


def test_deleted_tables_are_planned_again(smoke, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(smoke, work, symlinks=True)
    tables = work / SMOKE / "tables"
    for name in ("claims.md", "claim2_fits.csv"):
        (tables / name).unlink()
    shutil.rmtree(tables / "experiments/depth")
    proc = snakemake(work, "-n", "--configfile", "config/smoke.yaml")
    out = proc.stdout + proc.stderr
    assert "Nothing to be done" not in out
    assert "rule claims:" in out and "wildcards: experiment=depth" in out
    assert set(executed_rules(proc)) >= {"claims", "aggregate_experiment"}


def test_the_archive_holds_the_claims_evidence(smoke, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(smoke, work, symlinks=True)
    (work / SMOKE / "report.html").write_text("<html></html>")
    proc = snakemake(work, "-n", "archive", "--configfile", "config/smoke.yaml")
    job = (proc.stdout + proc.stderr).split("rule archive:")[1].split("\n\n")[0]
    for name in ("claims.csv", "claims.md", "claim2_fits.csv", "claim5_onset.csv"):
        assert f"{SMOKE}/tables/{name}" in job, name


def with_library(work: Path) -> dict[str, str]:
    """The environment that makes the workflow and its jobs import the copy's library."""
    return {**venv_env(), "PYTHONPATH": str(work / "src")}


def test_a_library_change_reruns_the_rules_whose_code_it_touches(smoke, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(smoke, work, symlinks=True)

    def dry_run() -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile",
             "config/smoke.yaml"],
            cwd=work, capture_output=True, text=True, timeout=900, env=with_library(work),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    assert "Nothing to be done" in dry_run()  # the same code, imported from the copy
    plotting = work / "src/deeplinear/plotting.py"
    plotting.write_text(plotting.read_text() + "\n# edited\n")
    out = dry_run()
    rules = set(re.findall(r"^rule (\w+):", out, flags=re.M))
    assert rules and all(r.startswith("figure_") or r in ("runtimes", "all") for r in rules), rules
    theory = work / "src/deeplinear/theory.py"
    doubled = theory.read_text().replace("2.0 * self.eta * self.eps0", "4.0 * self.eta * self.eps0")
    assert doubled != theory.read_text()
    theory.write_text(doubled)
    out = dry_run()
    rules = set(re.findall(r"^rule (\w+):", out, flags=re.M))
    assert {"train_shard", "threshold_shard", "claims"} <= rules
    assert "dataset" not in rules  # the dataset code does not reach theory.py
    assert "Params have changed since last execution" in out or "params changed" in out
