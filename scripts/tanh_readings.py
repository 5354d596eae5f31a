"""Snakemake script of rule `tanh_readings`: the recorded, scored search over readings of the
authors' tanh setting (deeplinear.tanh, theory.md 15)."""

import pandas as pd

from deeplinear import io, tanh

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "tanh_readings") as say:
    cfg = sm.config["tanh"]
    points = tanh.read_published(sm.input.published)
    points = points[points["depth"].isin(cfg["depths"])]  # the depths this config runs
    datasets = {r["dataset"]: p for r, p in zip(cfg["readings"], sm.input.data, strict=True)}
    curves = []
    for reading in cfg["readings"]:
        ds = io.load_dataset(datasets[reading["dataset"]])
        for N in cfg["depths"]:
            res, _ = tanh.authors_runs(
                ds.X,
                ds.Y,
                reading["activation"],
                reading["init"],
                cfg["hidden_width"],
                N,
                [0],
                cfg,
                sm.config["seed"],
            )
            c = tanh.curve_table(res, cfg["step_scale"], N, [0])
            curves.append(c.assign(reading=reading["name"]))
            say(f"{reading['name']}: N = {N}, loss {c['loss'].iloc[0]:.3g} -> "
                f"{c['loss'].iloc[-1]:.3g}")  # fmt: skip
    table = tanh.readings_table(pd.concat(curves, ignore_index=True), points, cfg["readings"])
    io.write_csv(table, sm.output.table)
    io.write_csv(points, sm.output.points)
    say(table.to_string())
