"""Snakemake script of rule `train_shard`: run one shard and write its two tables, each with
its digest record (deeplinear.tables)."""

import time

from deeplinear import io, plan, tables
from deeplinear.experiments import run_shard

sm = snakemake  # noqa: F821 (injected by Snakemake)
shard = f"{sm.wildcards.experiment}/{sm.wildcards.shard}"
with io.script_log(sm.log[0], shard) as say:
    experiment = plan.Plan.from_config(sm.config).experiments[sm.wildcards.experiment]
    runs = experiment.shards[sm.wildcards.shard]
    name = experiment.dataset
    ds = io.load_dataset(sm.input.data, name, sm.config["datasets"][name])
    say(f"{len(runs)} runs, depth {runs[0].depth}, hidden width {runs[0].hidden}")
    start = last = time.perf_counter()

    def progress(k: int, active: int) -> None:
        global last
        if time.perf_counter() - last >= 10:  # a line every ten seconds at most
            last = time.perf_counter()
            say(f"iteration {k}: {active} of {len(runs)} runs active")

    summary, traj = run_shard(runs, ds, experiment.settings, progress=progress)
    inputs = tables.input_digests([sm.input.data])
    tables.write(traj, sm.output.trajectories, "trajectories", inputs)
    tables.write(summary, sm.output.summary, "runs", inputs)
    counts = summary["status"].value_counts().to_dict()
    say(f"done in {time.perf_counter() - start:.1f} s: {counts}")
