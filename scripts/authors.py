"""Snakemake script of rule `authors`: where the authors' step sits in our theory, and what
their curves show in numbers (deeplinear.authors)."""

import pandas as pd

from deeplinear import authors, io, plan, tables
from deeplinear.experiments import critical_steps

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "authors") as say:
    the_plan = plan.Plan.from_config(sm.config)
    parts = []
    for name, runs_path, traj_path, data_path in zip(
        sm.params.experiments, sm.input.runs, sm.input.trajectories, sm.input.data, strict=True
    ):
        dataset = the_plan.experiments[name].dataset
        ds = io.load_dataset(data_path, dataset, sm.config["datasets"][dataset])
        runs = tables.read(runs_path, "runs", the_plan.run_ids(name))
        traj = tables.read(traj_path, "trajectories", the_plan.run_ids(name))
        critical = []
        search = the_plan.threshold.step_search  # the config's search on the authors' starts
        for group in authors.by_architecture(the_plan.experiments[name].runs):
            say(f"{name}: critical steps of {len(group)} starts at depth {group[0].depth}")
            steps = critical_steps(group, ds, search, progress=say)
            critical.append(steps.merge(authors.stable_steps(group, ds, search), on="run_id"))
        parts.append(authors.table(runs, traj, pd.concat(critical)))
    out = pd.concat(parts, ignore_index=True)
    inputs = tables.input_digests([*sm.input.runs, *sm.input.trajectories, *sm.input.data])
    tables.write(out, sm.output.table, "authors", inputs)
    say(
        out[
            ["experiment", "depth", "seed", "eta_over_bound", "eta_over_stable", "position"]
        ].to_string()
    )
