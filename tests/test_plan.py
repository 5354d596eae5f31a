"""The plan: config validation with schema defaults, run ids and seeds, shards, checks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deeplinear import claims, experiments, figures, plan
from deeplinear.errors import InputError
from deeplinear.publish import readme
from tests.conftest import ROOT

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
EXP = {
    "dataset": "synthetic",
    "depths": [2, 3],
    "hidden_widths": [4],
    "inits": [{"kind": "balanced", "scale": 0.5}, {"kind": "gaussian", "scale": 1.0}],
    "step_rules": [{"schedule": "constant"}],
    "step_multiples": [0.5, 1, 10],
    "seeds": 3,
    "time": 1.0,
    "max_iter": 100,
}


def smoke_config() -> dict:
    return yaml.safe_load((ROOT / "config/smoke.yaml").read_text())


def validated(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    plan.validate(cfg, SCHEMA)
    return cfg


def experiment(**changes) -> plan.Experiment:
    cfg = smoke_config()
    cfg["experiments"] = {"e": EXP | changes} | {
        name: cfg["experiments"][name] for name in figures.needed_experiments()
    }
    return plan.Plan.from_config(validated(cfg)).experiments["e"]


def test_defaults_come_from_the_schema_and_fill_nested_entries():
    cfg = validated(smoke_config())
    depth = cfg["experiments"]["depth"]
    assert (depth["gtol"], depth["log_points"], depth["shard_seeds"]) == (1e-9, 200, 10)
    assert depth["inits"][0] == {"kind": "balanced", "scale": 0.4, "rank": None, "spread": 0.1}
    bounded = cfg["experiments"]["bounded"]["step_rules"]
    assert bounded[0] == {"schedule": "constant"}
    assert bounded[1]["alpha"] == 0.5 and bounded[1]["tau"] == 100
    assert cfg["threshold_search"]["lo"] == 0.25 and cfg["figures"]["palette"] == "viridis"


def test_a_cell_does_not_depend_on_which_other_cells_exist():
    full = {r.run_id: r for r in experiment().runs}
    part = experiment(depths=[3], step_multiples=[10], seeds=2).runs
    for run in part:
        assert run.run_id in full
        a, b = run.init_seed(7), full[run.run_id].init_seed(7)
        assert np.array_equal(a.generate_state(4), b.generate_state(4))


def test_runs_differing_only_in_step_share_their_start_and_seeds_differ_otherwise():
    runs = experiment().runs
    by_start: dict[tuple, set] = {}
    for r in runs:
        key = tuple(getattr(r, k) for k in plan.INIT_KEYS)
        by_start.setdefault(key, set()).add(tuple(r.init_seed(0).generate_state(2)))
    assert all(len(v) == 1 for v in by_start.values())
    assert len({next(iter(v)) for v in by_start.values()}) == len(by_start)
    assert len({r.run_id for r in runs}) == len(runs) == 2 * 2 * 3 * 3


def test_adding_a_seed_or_a_step_multiple_leaves_every_existing_shard_unchanged():
    base = experiment(shard_seeds=2)
    more_seeds = experiment(shard_seeds=2, seeds=5)
    more_steps = experiment(shard_seeds=2, step_multiples=[0.5, 1, 10, 20])
    for bigger in (more_seeds, more_steps):
        for name, runs in base.shards.items():
            if name in bigger.shards and set(bigger.shards[name]) != set(runs):
                assert runs[0].seed // 2 == (base.runs[-1].seed // 2), name  # last block grows
            else:
                assert bigger.shards[name] == runs
        assert set(base.shards) <= set(bigger.shards)


def test_shards_hold_one_depth_width_multiple_and_seed_block():
    exp = experiment(shard_seeds=2)
    assert sum(len(v) for v in exp.shards.values()) == len(exp.runs)
    for name, runs in exp.shards.items():
        assert len({(r.depth, r.hidden, r.step_multiple, r.seed // 2) for r in runs}) == 1
        assert name.startswith(f"N{runs[0].depth}-h{runs[0].hidden}-m")


def test_longer_shards_are_expected_to_take_longer():
    """The scheduling priority of a shard: deeper, wider, more seeds or a smaller step
    multiple (a longer budget) each make it larger; multiples below 1 share the cap."""
    exp = experiment(
        depths=[2, 5], hidden_widths=[4, 8], step_multiples=[0.5, 1, 8], seeds=4, shard_seeds=2
    )
    t = {name: exp.expected_seconds(name) for name in exp.shards}
    assert t["N5-h4-m1-s00"] > t["N2-h4-m1-s00"]
    assert t["N2-h8-m1-s00"] > t["N2-h4-m1-s00"]
    assert t["N2-h4-m1-s00"] > t["N2-h4-m8-s00"]
    assert t["N2-h4-m0.5-s00"] == t["N2-h4-m1-s00"] == t["N2-h4-m1-s02"]
    more = experiment(depths=[2], hidden_widths=[4], step_multiples=[1], seeds=4, shard_seeds=4)
    assert more.expected_seconds("N2-h4-m1-s00") > t["N2-h4-m1-s00"]


def test_shard_digest_changes_with_runs_and_settings_only():
    a, b = experiment(), experiment(time=2.0)
    shard = next(iter(a.shards))
    assert a.shard_digest(shard) == experiment().shard_digest(shard)
    assert a.shard_digest(shard) != b.shard_digest(shard)
    assert len(a.shard_digest(shard)) == 16


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["experiments"]["stepsize"].update(step_multiples=[1, 1]), "step_multiples"),
        (lambda c: c["experiments"]["depth"].update(depths=[2, 2]), "experiments.depth.depths"),
        (lambda c: c["threshold_search"].update(lo=10.0, hi=2.0), "threshold_search.lo"),
        (lambda c: c["experiments"]["rank"]["inits"][0].update(rank=99), "rank.inits[0].rank"),
        (lambda c: c["experiments"]["depth"]["inits"][0].update(xi=0.1), "depth.inits[0]"),
        (lambda c: c["experiments"]["depth"].update(log_points=10**9), "log_points"),
        (lambda c: c["figures"].update(palette="nosuchpalette"), "figures.palette"),
        (lambda c: c["experiments"].pop("depth"), "experiments"),
        (lambda c: c["experiments"]["depth"].update(dataset="nope"), "depth.dataset"),
    ],
    ids=[
        "duplicate-multiple",
        "duplicate-depth",
        "lo-above-hi",
        "rank-above-bottleneck",
        "xi-on-balanced",
        "log-points-huge",
        "palette",
        "missing-experiment",
        "unknown-dataset",
    ],
)
def test_bad_values_are_errors_naming_the_key(edit, key):
    cfg = smoke_config()
    edit(cfg)
    with pytest.raises(InputError, match=key.replace("[", r"\[").replace("]", r"\]")):
        plan.Plan.from_config(validated(cfg), {"synthetic": (5, 4)})


def test_tables_that_miss_or_double_a_planned_run_are_errors_naming_the_shard():
    planned = ["a", "b", "c"]
    good = pd.DataFrame({"run_id": ["c", "a", "b"], "x": [3, 1, 2]})
    out = experiments.collect({"s1.csv": good}, {"s1.csv": planned})
    assert out["run_id"].tolist() == ["a", "b", "c"]
    for bad, what in ((good.iloc[:2], "missing"), (pd.concat([good, good.iloc[:1]]), "duplicated")):
        with pytest.raises(InputError, match=f"s1.csv .*{what}.*snakemake --force s1.csv"):
            experiments.collect({"s1.csv": bad}, {"s1.csv": planned})
    extra = pd.concat([good, pd.DataFrame({"run_id": ["z"], "x": [0]})])
    with pytest.raises(InputError, match="unexpected"):
        experiments.collect({"s1.csv": extra}, {"s1.csv": planned})
    # a shard of an older version of the code (a column it did not write yet)
    assert len(experiments.collect({"s1.csv": good}, {"s1.csv": planned}, ["run_id", "x"])) == 3
    with pytest.raises(InputError, match=r"s1.csv .*columns missing: y.*snakemake --force s1.csv"):
        experiments.collect({"s1.csv": good}, {"s1.csv": planned}, ["run_id", "x", "y"])


def test_every_figure_reads_only_its_own_experiments_tables():
    for fig in figures.FIGURES:
        for param, path in fig.table_paths("T").items():
            spec = fig.tables[param]
            bound = spec[1] if isinstance(spec, tuple) else spec
            if bound is None:
                assert path.startswith("T/") and "/experiments/" not in path
            else:
                assert path.startswith(f"T/experiments/{fig.experiments[bound]}/")
        assert (ROOT / f"notebooks/{fig.name}.ipynb").exists()
        assert (ROOT / f"workflow/report/{fig.name}.rst").exists()


def test_readme_block_is_replaced_between_markers_only(tmp_path: Path):
    text = f"head\n{readme.START}\nold\n{readme.END}\ntail\n"
    assert readme.with_block(text, "new\n") == f"head\n{readme.START}\nnew\n{readme.END}\ntail\n"
    with pytest.raises(ValueError, match="markers"):
        readme.with_block("no markers", "x")
    figures = f"{readme.FIGURES_START}\n{readme.FIGURES_END}\n"
    (tmp_path / "README.md").write_text(text + figures)
    (tmp_path / "claims.md").write_text("new\n")  # no headline: claims.md of another version
    args = [str(tmp_path / "README.md"), str(tmp_path / "claims.md")]
    assert readme.main(args) == 1
    assert "old" in (tmp_path / "README.md").read_text()
    table = pd.DataFrame(
        [{"claim": c.number, "verdict": "inconclusive", "headline": f"number {c.number}"}
         for c in claims.CLAIMS]
    )  # fmt: skip
    (tmp_path / "claims.md").write_text(
        "\n".join(claims.headline_line(r, f"#claim-{r.claim}") for r in table.itertuples())
    )
    assert readme.main(args) == 0
    new = (tmp_path / "README.md").read_text()
    block = new.split(readme.START)[1].split(readme.END)[0]
    assert "old" not in block and block.count("\n") == 3 + len(claims.CLAIMS)
    for c in claims.CLAIMS:
        link = f"[{c.number}](claims.md#claim-{c.number})"
        assert f"| {link} | **inconclusive** | number {c.number} |" in block
    # with a committed copy of the evidence, the links point into the copy
    (tmp_path / "docs").mkdir()
    assert readme.main([*args, str(tmp_path / "docs/claims.md")]) == 0
    copy = (tmp_path / "docs/claims.md").read_text()
    assert copy == f"{readme.COPY_NOTE}\n\n{(tmp_path / 'claims.md').read_text()}"
    block = (tmp_path / "README.md").read_text().split(readme.START)[1]
    assert "[1](docs/claims.md#claim-1)" in block


def test_the_readme_lists_the_figures_of_the_registry():
    text = (ROOT / "README.md").read_text()
    block = readme.with_block(
        text, readme.figures_markdown(), readme.FIGURES_START, readme.FIGURES_END
    )
    assert block == text, "README figures block is stale: run `make readme`"
