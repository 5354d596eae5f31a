"""Bad input stops before any job runs, names the culprit, shows no traceback and leaves
every file in results/ as it was; unreadable result files name themselves and the fix."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deeplinear import data, experiments, gd, init, io, plan, tables, theory
from deeplinear.errors import InputError
from tests.conftest import ROOT, SMOKE, copy_project, snakemake

pytestmark = pytest.mark.pipeline


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project with earlier results in results/ that must survive."""
    work = copy_project(tmp_path_factory.mktemp("bad"))
    for rel in ("results/smoke/tables/runs.csv", "results/tables/claims.csv"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text("run_id\nkept\n")
    return work


def edit(cfg: dict, path: str, value) -> None:
    """Set ``cfg`` at a dotted path (``experiments.depth.depths``; ``[i]`` indexes lists)."""
    keys = [
        int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")
    ]
    target = cfg
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


DELETE = object()
FAMILY = "threshold_search.families[0]"
CASES = {
    "unknown-key": ("experiments.stepsize.stepsizes", [1], "stepsizes"),
    "negative-multiple": ("experiments.stepsize.step_multiples", [-1, 1], "step_multiples"),
    "depth-zero": ("experiments.depth.depths", [0, 2], "experiments.depth.depths[0]"),
    "zero-seeds": ("experiments.depth.seeds", 0, "experiments.depth.seeds"),
    "unknown-dataset": ("experiments.depth.dataset", "nope", "experiments.depth.dataset"),
    "unknown-init": ("experiments.depth.inits[0].kind", "xavier", "experiments.depth.inits[0]"),
    "duplicate-multiple": ("experiments.stepsize.step_multiples", [1, 1], "step_multiples"),
    "duplicate-depth": ("experiments.depth.depths", [2, 2], "experiments.depth.depths"),
    "rank-above-bottleneck": ("experiments.rank.inits[0].rank", 9, "rank.inits[0].rank"),
    "xi-on-balanced": ("experiments.depth.inits[0].xi", 0.1, "experiments.depth.inits[0]"),
    "tau-on-constant": ("experiments.depth.step_rules[0].tau", 5, "depth.step_rules[0]"),
    "scale-and-product-norm": ("experiments.depth.inits[0].product_norm", 1.0, "inits[0]"),
    "log-points-huge": ("experiments.depth.log_points", 10**9, "experiments.depth.log_points"),
    "log-points-text": ("experiments.depth.log_points", "1e9", "experiments.depth.log_points"),
    "max-iter-huge": ("experiments.depth.max_iter", 10**12, "experiments.depth.max_iter"),
    "palette": ("figures.palette", "nosuchpalette", "figures.palette"),
    "missing-figure-experiment": ("experiments.depth", DELETE, "need experiments ['depth']"),
    "lo-above-hi": ("threshold_search.lo", 5.0, "threshold_search.lo"),
    "family-dataset": (f"{FAMILY}.dataset", "nope", f"{FAMILY}.dataset"),
    "rank-deficient-data": ("datasets.synthetic.m", 3, "datasets.synthetic"),
    "whiten-with-few-samples": ("datasets.white.m", 3, "datasets.white"),
    "whiten-and-cond": ("datasets.white.cond", 10, "datasets.white"),
    "cond-below-one": ("datasets.cond10.cond", 0.5, "datasets.cond10.cond"),
    "depth-100000": ("experiments.depth.depths", [2, 100000], "depth.inits[0].scale"),
    "family-depth-underflow": (
        "threshold_search.depths",
        [2, 2000],
        "threshold_search.families[1].init.scale",
    ),
}


@pytest.mark.parametrize(("key", "value", "culprit"), CASES.values(), ids=CASES.keys())
def test_bad_config_stops_before_any_job(project, key, value, culprit):
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    edit(cfg, key, value)
    (project / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    before = snapshot(project / "results")
    proc = snakemake(project, "--configfile=config/bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert culprit in out, out[-2000:]
    assert "bad.yaml" in out and "Traceback" not in out, out[-2000:]
    assert snapshot(project / "results") == before
    assert not (project / SMOKE / "runs").exists()


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("seed: 1\ndatasets:\n  a: {kind: synthetic, d_x: [1, 2}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "deeplinear.plan", "check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert f"{bad}, line 3, column" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreadable_dataset_names_itself_and_the_command_that_rebuilds_it(tmp_path):
    path = tmp_path / "results/data/synthetic.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match=rf"{path}.*snakemake --force {path}"):
        io.load_dataset(path)


def test_a_truncated_shard_names_itself_and_the_command_that_rebuilds_it(tmp_path):
    good = tmp_path / "N2-h5-m1-s00.summary.csv"
    io.write_csv(pd.DataFrame({"run_id": ["a", "b"], "x": [1.0, 2.0]}), good)
    parquet = tmp_path / "N2-h5-m1-s00.parquet"
    io.write_parquet(pd.DataFrame({"run_id": ["a", "b"]}), parquet)
    parquet.write_bytes(parquet.read_bytes()[:40])
    with pytest.raises(InputError, match=rf"{parquet}.*snakemake --force {parquet}"):
        io.read_table(parquet)
    good.write_text("run_id,x\na,1.0\n")  # a row lost
    with pytest.raises(InputError, match=rf"{good}.*missing.*snakemake --force {good}"):
        experiments.collect({str(good): io.read_table(good)}, {str(good): ["a", "b"]})


def test_the_workflow_runs_from_another_directory(tmp_path):
    (tmp_path / "project").mkdir()
    work = copy_project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = snakemake(
        elsewhere, "-s", str(work / "Snakefile"), "-n", f"--configfile={work}/config/smoke.yaml"
    )
    assert "train_shard" in proc.stdout + proc.stderr


# -- damaged tables (issue 21, class 4) ---------------------------------------------------


def small_shard(tmp_path: Path) -> tuple[Path, list[str]]:
    """A real shard summary (two runs through the engine) written with its digest record."""
    ds = data.synthetic(5, 4, 60, 4, 0.05, 1)
    runs = [plan.Run(**RUN | {"seed": s}) for s in range(3)]
    settings = plan.Settings(time=5.0, max_iter=2000, gtol=1e-9, log_points=20, base_seed=0)
    summary, _ = experiments.run_shard(runs, ds, settings)
    path = tmp_path / "N2-h5-m1-s00.summary.csv"
    tables.write(summary, path, "runs")
    return path, [r.run_id for r in runs]


RUN = {
    "experiment": "e", "dataset": "d", "depth": 2, "hidden": 5, "init": "balanced",
    "init_scale": 0.5, "init_rank": None, "init_xi": 0.0, "init_spread": 0.1, "seed": 0,
    "step_rule": "constant", "tau": 100.0, "alpha": 0.0, "step_multiple": 1.0,
    "step_unit": "certified",
}  # fmt: skip


def rewrite(path: Path, edit) -> None:
    """Replace the text of ``path`` by ``edit(text)`` (a damage done after the fact)."""
    path.write_text(edit(path.read_text()))


def cut_last_row(text: str, fields: int = 21) -> str:
    lines = text.rstrip("\n").split("\n")
    return "\n".join([*lines[:-1], ",".join(lines[-1].split(",")[:fields])])


def test_a_checked_table_reads_back(tmp_path):
    path, ids = small_shard(tmp_path)
    assert list(tables.read(path, "runs", ids)["run_id"]) == ids


def test_a_last_row_cut_after_21_fields_names_the_file_and_line(tmp_path):
    path, ids = small_shard(tmp_path)
    rewrite(path, cut_last_row)
    with pytest.raises(InputError, match=rf"{path}, line 4: 21 fields, the header has 42 "
                       rf"\(the file ends inside it.*snakemake --force {path}"):  # fmt: skip
        tables.read(path, "runs", ids)
    rewrite(path, lambda t: t + "\n")  # the same row, but ending in a newline
    with pytest.raises(InputError, match=rf"{path}, line 4: 21 fields.*\(cut or edited\)"):
        tables.read(path, "runs", ids)
    rewrite(path, lambda t: t.rstrip("\n").rsplit("\n", 1)[0])  # whole rows, no final newline
    with pytest.raises(InputError, match=rf"{path}: the last line ends without a newline"):
        tables.read(path, "runs", ids)


def test_an_edited_status_is_caught_by_the_digest(tmp_path):
    path, ids = small_shard(tmp_path)
    assert ",converged," in path.read_text()
    rewrite(path, lambda t: t.replace(",converged,", ",diverged,", 1))
    with pytest.raises(InputError, match=rf"{path} was changed after its rule wrote it"):
        tables.read(path, "runs", ids)


def test_a_table_cut_at_a_line_boundary_misses_planned_runs(tmp_path):
    path, ids = small_shard(tmp_path)
    rewrite(path, lambda t: "\n".join(t.split("\n")[:3]) + "\n")  # header and 2 of 3 runs
    with pytest.raises(InputError, match=r"1 missing run\(s\).*2 of the 3 planned runs"):
        tables.read(path, "runs", ids)
    with pytest.raises(InputError, match="changed after its rule wrote it"):
        tables.read(path, "runs", ids)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace(",converged,", ",convergd,", 1), "status: 'convergd' is not one of"),
        (lambda t: t.replace(",constant,", ",,", 1), "step_rule: nan is empty"),
        (lambda t: t.replace(",balanced,", ",xavier,", 1), "init: 'xavier' is not one"),
        (lambda t: re.sub(",(True|False),", ",maybe,", t, count=1), "is not True/False"),
    ],
    ids=["status", "nan", "init", "bool"],
)
def test_a_value_outside_the_schema_names_file_line_and_column(tmp_path, edit, message):
    path, ids = small_shard(tmp_path)
    rewrite(path, edit)
    with pytest.raises(InputError, match=rf"{path}, line \d+, column .*{message}"):
        tables.read(path, "runs", ids, sealed=False)


def test_a_table_without_its_digest_record_is_refused(tmp_path):
    path, ids = small_shard(tmp_path)
    Path(tables.seal_path(path)).unlink()
    with pytest.raises(InputError, match=rf"{path} has no readable digest record"):
        tables.read(path, "runs", ids)


def test_a_figure_check_refuses_a_table_that_misses_planned_runs(tmp_path):
    path, ids = small_shard(tmp_path)
    expect = {str(path): tables.expectation("runs", [*ids, "e-another"])}
    proc = subprocess.run(
        [sys.executable, "-m", "deeplinear.tables", "check", "--expect", json.dumps(expect)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert f"{path} does not match the plan" in proc.stderr and "Traceback" not in proc.stderr


# -- a dataset replaced by another valid one (class 8) -----------------------------------


def test_a_dataset_overwritten_by_another_names_file_and_dataset(tmp_path):
    specs = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())["datasets"]
    for name in ("white", "cond10"):
        spec = specs[name]
        ds = data.make(spec["kind"], **{k: v for k, v in spec.items() if k != "kind"})
        io.save_dataset(tmp_path / f"{name}.npz", ds, name, spec)
    white = tmp_path / "white.npz"
    assert io.load_dataset(white, "white", specs["white"]).X.shape == (4, 40)
    shutil.copy(tmp_path / "cond10.npz", white)
    with pytest.raises(InputError, match=rf"{white} holds dataset 'cond10'.*datasets.white"):
        io.load_dataset(white, "white", specs["white"])


# -- a step that underflows, a run that cannot move (class 9) ------------------------------


def test_a_run_that_cannot_move_is_an_error_not_converged():
    ds = data.synthetic(5, 4, 50, 4, 0.05, 1)
    settings = plan.Settings(time=10.0, max_iter=100, gtol=1e-9, log_points=20, base_seed=0)
    deep = plan.Run(**RUN | {"experiment": "depth", "depth": 1000, "init_scale": 0.4})
    with pytest.raises(InputError, match=r"cannot move.*depth 1000.*config key depths"):
        experiments.run_shard([deep], ds, settings)


@pytest.mark.parametrize("eta", [0.0, 5e-324, math.inf, math.nan])
def test_a_certified_step_that_underflows_is_an_error(eta):
    with pytest.raises(InputError, match="underflows at depth N = 100000"):
        theory.check_step(eta, 100000)
    theory.check_step(1e-300, 100000)  # small, but a normal float64: a run can use it


@pytest.mark.parametrize("eta", [0.0, -1e-3, math.inf, math.nan])
def test_the_engine_refuses_a_step_that_is_not_finite_and_positive(eta):
    ds = data.synthetic(5, 4, 50, 4, 0.05, 1)
    W = init.stack([init.make("balanced", [5, 5, 4], 0.5, np.random.default_rng(0))])
    with pytest.raises(InputError, match="eta must be finite and > 0"):
        gd.run(ds.X, ds.Y, W, eta, 10)


# -- the same damage done to a finished smoke run --------------------------------------------


def finished_copy(smoke: Path, dest: Path) -> Path:
    """A copy of the finished smoke run (results and Snakemake's records), to damage."""
    shutil.copytree(smoke, dest, symlinks=True)
    return dest


def damage_shard_row(root: Path) -> Path:
    path = sorted((root / SMOKE / "runs/rank").glob("*.summary.csv"))[0]
    rewrite(path, cut_last_row)
    return path


def damage_shard_status(root: Path) -> Path:
    path = next(
        p
        for p in sorted((root / SMOKE / "runs/rank").glob("*.summary.csv"))
        if ",converged," in p.read_text()
    )
    rewrite(path, lambda t: t.replace(",converged,", ",diverged,", 1))
    return path


def damage_runs_table(root: Path) -> Path:
    path = root / SMOKE / "tables/runs.csv"
    rewrite(path, lambda t: "\n".join(t.split("\n")[:76]) + "\n")  # header and 75 of 113 rows
    return path


def damage_dataset(root: Path) -> Path:
    path = root / SMOKE / "data/white.npz"
    shutil.copy(root / SMOKE / "data/cond10.npz", path)
    return path


DAMAGE = {
    "shard-row-cut-after-21-fields": (damage_shard_row, "21 fields, the header has 42"),
    "shard-status-edited": (damage_shard_status, "was changed after its rule wrote it"),
    "runs-cut-to-75-rows": (damage_runs_table, "38 missing run(s)"),
    "white-overwritten-by-cond10": (damage_dataset, "holds dataset 'cond10'"),
}


@pytest.mark.parametrize(("damage", "message"), DAMAGE.values(), ids=DAMAGE.keys())
def test_damage_after_the_fact_fails_the_next_rule_naming_it(smoke, tmp_path, damage, message):
    work = finished_copy(smoke, tmp_path / "work")
    claims = work / SMOKE / "tables/claims.csv"
    verdicts = claims.read_bytes()
    path = damage(work).relative_to(work)
    proc = snakemake(work, "--configfile", "config/smoke.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f"{path}" in out and message in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    logs = [p.read_text() for p in (work / SMOKE / "logs").rglob("*.log")]
    assert any(f"{path}" in log and message in log and "Traceback" not in log for log in logs)
    assert not claims.exists() or claims.read_bytes() == verdicts  # never other verdicts
