"""Bad input stops before any job runs, names the culprit, shows no traceback and leaves
every file in results/ as it was; unreadable result files name themselves and the fix."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deeplinear import experiments, io
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
