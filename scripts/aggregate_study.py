"""Snakemake script of rule `aggregate_study`: the study-wide tables from every experiment's."""

import pandas as pd

from deeplinear import experiments, io, stats

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "aggregate study") as say:
    runs = pd.concat([io.read_table(p) for p in sm.input.runs], ignore_index=True)
    runs = runs.sort_values("run_id", kind="stable", ignore_index=True)
    traj = experiments.collect_trajectories(io.read_table(p) for p in sm.input.trajectories)
    io.write_csv(runs, sm.output.runs)
    io.write_parquet(traj, sm.output.trajectories)
    for key, table in stats.aggregates(runs).items():
        io.write_csv(table, sm.output[key])
    say(f"{len(runs)} runs, {len(traj)} trajectory rows: {runs.status.value_counts().to_dict()}")
