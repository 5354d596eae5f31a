"""Snakemake script of rule `authors_tanh`: the best-scoring reading of the tanh setting with
every seed (figure 9; deeplinear.tanh, theory.md 15)."""

import pandas as pd

from deeplinear import io, tanh

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "authors_tanh") as say:
    cfg = sm.config["tanh"]
    reading = tanh.chosen(io.read_table(sm.input.readings), cfg["readings"])
    path = dict(zip([r["dataset"] for r in cfg["readings"]], sm.input.data, strict=True))
    ds = io.load_dataset(path[reading["dataset"]])
    seeds = list(range(cfg["seeds"]))
    runs, trajectories = [], []
    for N in cfg["depths"]:
        res, iters = tanh.authors_runs(
            ds.X,
            ds.Y,
            reading["activation"],
            reading["init"],
            cfg["hidden_width"],
            N,
            seeds,
            cfg,
            sm.config["seed"],
        )
        runs.append(tanh.runs_table(res, reading, N, seeds, cfg))
        trajectories.append(tanh.curve_table(res, cfg["step_scale"], N, seeds))
        say(f"{reading['name']}: N = {N}, {iters} steps, final loss {list(res.loss)}")
    io.write_csv(pd.concat(runs, ignore_index=True), sm.output.runs)
    io.write_parquet(pd.concat(trajectories, ignore_index=True), sm.output.trajectories)
