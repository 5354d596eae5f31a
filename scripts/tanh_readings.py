"""Snakemake script of rule `tanh_readings`: the recorded, scored search over readings of the
authors' tanh setting (deeplinear.tanh, theory.md 16)."""

import pandas as pd

from deeplinear import io, tables, tanh

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "tanh_readings") as say:
    cfg = sm.config["tanh"]
    points = tanh.read_published(sm.input.published)
    points = points[points["depth"].isin(cfg["depths"])]  # the depths this config runs
    datasets = {r["dataset"]: p for r, p in zip(cfg["readings"], sm.input.data, strict=True)}
    curves = []
    for reading in cfg["readings"]:
        name = reading["dataset"]
        ds = io.load_dataset(datasets[name], name, sm.config["datasets"][name])
        for N in cfg["depths"]:
            res, _ = tanh.reading_runs(ds.X, ds.Y, reading, N, [0], cfg, sm.config["seed"])
            c = tanh.curve_table(res, cfg["step_scale"], N, [0])
            curves.append(c.assign(reading=reading["name"]))
            say(f"{reading['name']}: N = {N}, loss {c['loss'].iloc[0]:.3g} -> "
                f"{c['loss'].iloc[-1]:.3g}")  # fmt: skip
    inputs = tables.input_digests([*sm.input])
    table = tanh.readings_table(pd.concat(curves, ignore_index=True), points, cfg["readings"])
    tables.write(table, sm.output.table, "authors_tanh_readings", inputs)
    tables.write(points, sm.output.points, "authors_tanh_points", inputs)
    say(table.to_string())
