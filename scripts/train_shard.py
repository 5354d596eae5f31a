"""Snakemake script of rule `train_shard`: run one shard and write its two tables."""

import time

from deeplinear import io, plan
from deeplinear.experiments import run_shard

sm = snakemake  # noqa: F821 (injected by Snakemake)
shard = f"{sm.wildcards.experiment}/{sm.wildcards.shard}"
with io.script_log(sm.log[0], shard) as say:
    experiment = plan.Plan.from_config(sm.config).experiments[sm.wildcards.experiment]
    runs = experiment.shards[sm.wildcards.shard]
    ds = io.load_dataset(sm.input.data)
    say(f"{len(runs)} runs, depth {runs[0].depth}, hidden width {runs[0].hidden}")
    start = last = time.perf_counter()

    def progress(k: int, active: int) -> None:
        global last
        if time.perf_counter() - last >= 10:  # a line every ten seconds at most
            last = time.perf_counter()
            say(f"iteration {k}: {active} of {len(runs)} runs active")

    summary, traj = run_shard(runs, ds, experiment.settings, progress=progress)
    io.write_parquet(traj, sm.output.trajectories)
    io.write_csv(summary, sm.output.summary)
    counts = summary["status"].value_counts().to_dict()
    say(f"done in {time.perf_counter() - start:.1f} s: {counts}")
