"""Snakemake script of rule `authors_tanh`: the best-scoring reading of the tanh setting with
every seed (figure 9; deeplinear.tanh, theory.md 16)."""

import pandas as pd

from deeplinear import io, tables, tanh

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "authors_tanh") as say:
    cfg = sm.config["tanh"]
    reading = tanh.chosen(tables.read(sm.input.readings, "authors_tanh_readings"), cfg["readings"])
    path = dict(zip([r["dataset"] for r in cfg["readings"]], sm.input.data, strict=True))
    ds = io.load_dataset(
        path[reading["dataset"]], reading["dataset"], sm.config["datasets"][reading["dataset"]]
    )
    seeds = list(range(cfg["seeds"]))
    runs, trajectories = [], []
    for N in cfg["depths"]:
        res, iters = tanh.reading_runs(ds.X, ds.Y, reading, N, seeds, cfg, sm.config["seed"])
        runs.append(tanh.runs_table(res, reading, N, seeds, cfg))
        trajectories.append(tanh.curve_table(res, cfg["step_scale"], N, seeds))
        say(f"{reading['name']}: N = {N}, {iters} steps, final loss {list(res.loss)}")
    inputs = tables.input_digests([*sm.input])
    tables.write(pd.concat(runs, ignore_index=True), sm.output.runs, "authors_tanh_runs", inputs)
    trajectories = pd.concat(trajectories, ignore_index=True)
    tables.write(trajectories, sm.output.trajectories, "authors_tanh_trajectories", inputs)
