"""Snakemake script of rule `aggregate_experiment`: one experiment's shards, each checked
against its schema, its digest record and its plan (every planned run exactly once), and the
aggregates the figures plot. The outputs' digest records chain the shards' digests."""

from pathlib import Path

from deeplinear import experiments, io, plan, tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
name = sm.wildcards.experiment
with io.script_log(sm.log[0], f"aggregate {name}") as say:
    shards = plan.Plan.from_config(sm.config).experiments[name].shards
    expected = {}
    for path in [*sm.input.summaries, *sm.input.trajectories]:
        shard = Path(path).name.removesuffix(".summary.csv").removesuffix(".parquet")
        expected[path] = [run.run_id for run in shards[shard]]
    summaries = {p: tables.read(p, "runs", expected[p]) for p in sm.input.summaries}
    runs = experiments.collect(summaries, expected)
    traj = {p: tables.read(p, "trajectories", expected[p]) for p in sm.input.trajectories}
    traj = experiments.collect_trajectories(traj.values())
    inputs = tables.input_digests([*sm.input.summaries, *sm.input.trajectories])
    experiments.write_run_tables(runs, traj, sm.output, inputs)
    say(f"{len(runs)} runs, {len(traj)} trajectory rows: {runs.status.value_counts().to_dict()}")
