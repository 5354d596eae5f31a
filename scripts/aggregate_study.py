"""Snakemake script of rule `aggregate_study`: the study-wide tables from every experiment's,
each checked against its schema, its digest record and the experiment's plan."""

import pandas as pd

from deeplinear import experiments, io, plan, tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "aggregate study") as say:
    the_plan = plan.Plan.from_config(sm.config)
    names = list(the_plan.experiments)
    parts = [
        tables.read(p, "runs", the_plan.run_ids(e))
        for e, p in zip(names, sm.input.runs, strict=True)
    ]
    runs = pd.concat(parts, ignore_index=True)
    runs = runs.sort_values("run_id", kind="stable", ignore_index=True)
    traj = experiments.collect_trajectories(
        tables.read(p, "trajectories", the_plan.run_ids(e))
        for e, p in zip(names, sm.input.trajectories, strict=True)
    )
    inputs = tables.input_digests([*sm.input.runs, *sm.input.trajectories])
    experiments.write_run_tables(runs, traj, sm.output, inputs)
    say(f"{len(runs)} runs, {len(traj)} trajectory rows: {runs.status.value_counts().to_dict()}")
