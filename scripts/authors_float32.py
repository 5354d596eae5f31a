"""Snakemake script of rule `authors_float32`: experiment `authors` repeated in single
precision at the published step, and its floors against the published ones
(deeplinear.authors, theory.md 15)."""

import pandas as pd

from deeplinear import authors, io, plan, tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "authors_float32") as say:
    cfg = sm.config
    ar = authors.check_readings(cfg)
    exp = plan.Plan.from_config(cfg).experiments["authors"]
    ds = io.load_dataset(sm.input.data, exp.dataset, cfg["datasets"][exp.dataset])
    epochs = dict(zip(ar["depths"], ar["epochs"], strict=True))  # the published features' span
    curves = []
    for run in authors.float32_runs(ar, exp.runs):
        E = epochs[run.depth]
        c = authors.float32_curve(run, ds, ar["eta"], E, cfg["seed"], ar["log_points"])
        curves.append(c)
        say(
            f"N = {run.depth}, start {run.seed}: {E} steps in float32, "
            f"loss {c['loss'].iloc[0]:.3g} -> {c['loss'].iloc[-1]:.3g}"
        )
    columns = ["depth", "start", "iteration", "epoch", "loss", "last_change"]
    curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=columns)
    floors = authors.floors_table(curves, authors.read_published(sm.input.published))
    inputs = tables.input_digests([sm.input.data, sm.input.published])
    tables.write(curves, sm.output.curves, "authors_float32", inputs)
    tables.write(floors, sm.output.floors, "authors_floors", inputs)
    say(floors.to_string())
