"""Snakemake script of rule `aggregate_experiment`: one experiment's shards, checked against
the plan, and the aggregates the figures plot."""

from pathlib import Path

from deeplinear import experiments, io, plan, stats

sm = snakemake  # noqa: F821 (injected by Snakemake)
name = sm.wildcards.experiment
with io.script_log(sm.log[0], f"aggregate {name}") as say:
    shards = plan.Plan.from_config(sm.config).experiments[name].shards
    expected = {}
    for path in [*sm.input.summaries, *sm.input.trajectories]:
        shard = Path(path).name.removesuffix(".summary.csv").removesuffix(".parquet")
        expected[path] = [run.run_id for run in shards[shard]]
    summaries = {p: io.read_table(p) for p in sm.input.summaries}
    runs = experiments.collect(summaries, expected, experiments.RUNS_COLUMNS)
    traj = {p: io.read_table(p) for p in sm.input.trajectories}
    for path, table in traj.items():  # every planned run has a trajectory, nothing else
        experiments.check_shard(table.drop_duplicates(["run_id"]), expected[path], path)
    traj = experiments.collect_trajectories(traj.values())
    io.write_csv(runs, sm.output.runs)
    io.write_parquet(traj, sm.output.trajectories)
    for key, table in stats.aggregates(runs).items():
        io.write_csv(table, sm.output[key])
    say(f"{len(runs)} runs, {len(traj)} trajectory rows: {runs.status.value_counts().to_dict()}")
