"""Bad input stops before any job runs, names the culprit, shows no traceback and leaves
every file in results/ as it was; unreadable result files name themselves and the fix."""

from __future__ import annotations

import hashlib
import json
import math
import os
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
from tests.conftest import ROOT, RUN_FIELDS, SMOKE, copy_project, snakemake

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
    # output locations: never a source folder, never the default run's or committed outputs
    "results-in-project-folder": ("results_dir", ".", "config key results_dir"),
    "results-in-notebooks": ("results_dir", "notebooks/out", "source folder notebooks/"),
    "figures-in-src": ("figures_dir", "src", "source folder src/"),
    "committed-figures": ("figures_dir", "figures", "committed figures/"),
    "default-results": ("results_dir", "results", "default run's results/"),
    "default-results-tables": ("results_dir", "results/tables", "results/tables"),
    # non-finite numbers, sizes the machine cannot hold, checks the plan check shares
    "nan-time": ("experiments.depth.time", float("nan"), "experiments.depth.time"),
    "inf-time": ("experiments.depth.time", float("inf"), "experiments.depth.time"),
    "inf-multiple": ("experiments.stepsize.step_multiples", [1, float("inf")], "multiples[1]"),
    "nan-noise": ("datasets.synthetic.noise", float("nan"), "datasets.synthetic.noise"),
    "billion-seeds": ("experiments.depth.seeds", 10**9, "runs (limit 1,000,000)"),
    "huge-width": ("experiments.depth.hidden_widths", [100000], "shard's arrays"),
    "huge-dataset": ("datasets.synthetic", {"kind": "synthetic", "d_x": 5000000, "d_y": 3,
                                            "m": 5000000, "rank": 2}, "datasets.synthetic"),
    "rank-above-data": ("datasets.synthetic.rank", 40, "datasets.synthetic"),
    "components-above-pixels": ("datasets.digits", {"kind": "digits", "components": 500},
                                "datasets.digits"),
    "duplicate-family-name": (
        "threshold_search.families[1].name", "@0", "threshold_search.families[1].name"
    ),
    "depth-100000": ("experiments.depth.depths", [2, 100000], "depth.inits[0].scale"),
    "family-depth-underflow": (
        "threshold_search.depths",
        [2, 2000],
        "threshold_search.families[1].init.scale",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("key", "value", "culprit"), CASES.values(), ids=CASES.keys())
def test_bad_config_stops_before_any_job(project, key, value, culprit):
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    if value == "@0":  # the name of the first family
        value = cfg["threshold_search"]["families"][0]["name"]
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
    # the plan check runs the same checks (deeplinear.plan.build) and names the same culprit
    check = plan_check(project, "config/bad.yaml")
    assert check.returncode == 1 and culprit in check.stderr, check.stderr[-2000:]
    assert "Traceback" not in check.stderr


def plan_check(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deeplinear.plan", "check", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)


def smoke_text() -> str:
    return (ROOT / "config/smoke.yaml").read_text()


@pytest.mark.parametrize("name", ["../../../tmp/evil_exp", "a/b", "x y"])
@pytest.mark.parametrize("where", ["experiments", "datasets"])
def test_names_that_are_not_identifiers_are_refused(project, name, where):
    cfg = yaml.safe_load(smoke_text())
    first = next(iter(cfg[where]))
    cfg[where][name] = cfg[where].pop(first)
    (project / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(project, "-n", "--configfile=config/bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert f"config key {where}" in out and "does not match" in out, out[-2000:]
    assert not (Path("/tmp") / "evil_exp").exists()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("seed: 1\nseed: 2\n", 2),  # a top-level key twice
        ("seed: 1\ndatasets:\n  a: {kind: digits}\n  a: {kind: random}\n", 4),
    ],
)
def test_a_key_given_twice_is_an_error_naming_the_line(tmp_path, text, line):
    bad = tmp_path / "twice.yaml"
    bad.write_text(text)
    check = plan_check(tmp_path, str(bad))
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert f"{bad}, line {line}" in check.stderr and "given twice" in check.stderr


def test_a_key_given_twice_stops_snakemake_too(project):
    text = smoke_text().replace("\nexperiments:\n", "\nseed: 7\nexperiments:\n", 1)
    (project / "config/bad.yaml").write_text(text)
    proc = snakemake(project, "-n", "--configfile=config/bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "given twice" in out and "bad.yaml, line" in out, out[-2000:]


@pytest.mark.parametrize("content", [b"seed: 1\n\xff\xfe\x00\x01", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_a_binary_config_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "binary.yaml"
    bad.write_bytes(content)
    check = plan_check(tmp_path, str(bad))
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert str(bad) in check.stderr and "UTF-8" in check.stderr


def test_plan_get_and_figure_name_what_exists(tmp_path):
    run = [sys.executable, "-m", "deeplinear.plan"]
    smoke = str(ROOT / "config/smoke.yaml")
    got = subprocess.run([*run, "get", "nosuchkey", smoke], capture_output=True, text=True)
    assert got.returncode == 1 and "no top-level key 'nosuchkey'" in got.stderr
    assert "results_dir" in got.stderr and "Traceback" not in got.stderr
    fig = subprocess.run([*run, "figure", "fig1_stepsize", smoke], capture_output=True, text=True)
    figures_dir = yaml.safe_load(smoke_text())["figures_dir"]
    assert fig.stdout.split() == [f"{figures_dir}/fig1_stepsize.{e}" for e in ("pdf", "png")]
    bad = subprocess.run([*run, "figure", "fig99", smoke], capture_output=True, text=True)
    assert bad.returncode == 1 and "fig1_stepsize" in bad.stderr and "fig99" in bad.stderr


def test_a_huge_grid_is_counted_without_building_it(tmp_path):
    cfg = yaml.safe_load(smoke_text())
    cfg["experiments"]["depth"]["seeds"] = 200_000  # 20,000 shards per grid cell
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(cfg))
    refused = plan_check(tmp_path, "big.yaml")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert re.search(r"the plan is too large: [\d,]+ shards \(limit 50,000\)", refused.stderr)
    assert "allow_large" in refused.stderr and "--allow-large" in refused.stderr


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


def test_unlock_is_refused_while_another_run_is_alive(project, tmp_path):
    fake = tmp_path / "snakemake"  # stands for a run in progress in the project folder
    fake.write_text("#!/bin/sh\nsleep 120\n")
    fake.chmod(0o755)
    alive = subprocess.Popen([str(fake)], cwd=project)
    try:
        proc = snakemake(project, "--unlock", "--configfile=config/smoke.yaml", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Traceback" not in out
        assert "do not use --unlock while it is alive" in out and f"ps -p {alive.pid}" in out
        dry = snakemake(project, "-n", "--configfile=config/smoke.yaml")
        assert f"another Snakemake run (pid {alive.pid})" in dry.stderr
    finally:
        alive.kill()
        alive.wait()
    assert (
        "another Snakemake run"
        not in snakemake(project, "-n", "--configfile=config/smoke.yaml").stderr
    )


def test_snakemake_without_the_environment_on_path_stops_before_any_job(project, tmp_path):
    other = tmp_path / "bin"  # a `python` without the project's packages comes first on PATH
    other.mkdir()
    (other / "python").write_text("#!/bin/sh\necho 'No module named papermill' >&2\nexit 1\n")
    (other / "python").chmod(0o755)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile=config/smoke.yaml"]
    path = f"{other}:/usr/bin:/bin"
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path})  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "Cannot run the workflow" in out and "No module named papermill" in out
    assert "source .venv/bin/activate" in out
    assert not (project / SMOKE / "runs").exists()


@pytest.mark.parametrize(("fig", "ok"), [("fig1_stepsize", True), ("fig99", False)])
def test_make_figure_uses_the_config_figures_dir_and_lists_the_figures(fig, ok):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = Path(sys.executable).parent
    cmd = ["make", "--no-print-directory", "-n" if ok else "figure", f"FIG={fig}",
           "CONFIG=config/smoke.yaml", f"BIN={venv}", "STAMP=pyproject.toml"]  # fmt: skip
    if ok:  # the dry run shows the command; the paths come from the plan
        cmd.insert(3, "figure")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
        assert "deeplinear.plan figure fig1_stepsize config/smoke.yaml" in proc.stdout
        assert "figures/fig1_stepsize.pdf" not in proc.stdout
    else:
        assert proc.returncode != 0 and "no figure 'fig99'" in proc.stderr
        assert "fig1_stepsize" in proc.stderr and "Traceback" not in proc.stderr


def test_the_rebuild_command_names_the_config_of_the_run(project):
    """A damaged file of a non-default run names the command that rebuilds it under its own
    config (the default command would fail: no rule makes results/smoke/... there)."""
    from deeplinear import plan

    cfg = plan.read_yaml(ROOT / "config/smoke.yaml")
    plan.validate(cfg, ROOT / "workflow/schemas/config.schema.yaml")
    exp = plan.Plan.from_config(cfg).experiments["depth"]
    before = set(snapshot(project))
    data = project / SMOKE / "data" / f"{exp.dataset}.npz"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(b"not a zip file")  # present, so Snakemake does not remake it
    target = f"{SMOKE}/runs/depth/{next(iter(exp.shards))}.summary.csv"
    try:
        proc = snakemake(project, "--configfile=config/smoke.yaml", target, check=False)
        logs = "".join(p.read_text() for p in (project / SMOKE / "logs").rglob("*.log"))
        hint = f"snakemake --force {SMOKE}/data/{exp.dataset}.npz --configfile=config/smoke.yaml"
        assert proc.returncode != 0 and hint in proc.stdout + proc.stderr + logs, logs[-2000:]
    finally:  # leave the project's earlier results as they were
        for rel in set(snapshot(project)) - before:
            (project / rel).unlink()


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


RUN = RUN_FIELDS | {"depth": 2}


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
    width = len(tables.RUNS.names)
    with pytest.raises(InputError, match=rf"{path}, line 4: 21 fields, the header has {width} "
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
    rewrite(path, lambda t: "\n".join(t.split("\n")[:76]) + "\n")  # header and 75 rows
    return path


def damage_dataset(root: Path) -> Path:
    path = root / SMOKE / "data/white.npz"
    shutil.copy(root / SMOKE / "data/cond10.npz", path)
    return path


DAMAGE = {
    "shard-row-cut-after-21-fields": (
        damage_shard_row,
        f"21 fields, the header has {len(tables.RUNS.names)}",
    ),
    "shard-status-edited": (damage_shard_status, "was changed after its rule wrote it"),
    "runs-cut-to-75-rows": (damage_runs_table, "missing run(s)"),
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
