"""Snakemake script of rule `aggregate_runs`: concatenate shards, compute aggregates."""

import pandas as pd

from deeplinear import io, stats

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "aggregate runs") as say:
    runs = pd.concat([pd.read_csv(p) for p in sm.input.summaries], ignore_index=True)
    runs = runs.sort_values("run_id", kind="stable", ignore_index=True)
    traj = pd.concat([pd.read_parquet(p) for p in sm.input.trajectories], ignore_index=True)
    traj = traj.sort_values(["run_id", "iteration"], kind="stable", ignore_index=True)
    io.write_csv(runs, sm.output.runs)
    io.write_parquet(traj, sm.output.trajectories)
    io.write_csv(stats.convergence_stats(runs), sm.output.convergence)
    io.write_csv(stats.rank_stats(runs), sm.output.ranks)
    io.write_csv(stats.escape_scaling(runs), sm.output.escape)
    say(f"{len(runs)} runs, {len(traj)} trajectory rows: {runs.status.value_counts().to_dict()}")
