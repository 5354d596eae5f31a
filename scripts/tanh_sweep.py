"""Snakemake script of rule `tanh_sweep`: constant steps at multiples of the linear certified
step on tanh networks (the chosen reading's activation) and on the linear network, their
critical steps, and the linear certified schedule on the tanh weights (theory.md 15)."""

import pandas as pd

from deeplinear import io, model, tanh

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "tanh_sweep") as say:
    cfg = sm.config["tanh"]
    sw = cfg["sweep"]
    reading = tanh.chosen(io.read_table(sm.input.readings), cfg["readings"])
    ds = io.load_dataset(sm.input.data)
    prob = model.precompute(ds.X, ds.Y)
    parts = {"sweep": [], "critical": [], "schedule": []}
    for activation in (reading["activation"], tanh.IDENTITY):
        for N in sw["depths"]:
            out = tanh.sweep_depth(ds.X, ds.Y, prob, activation, N, sw, sm.config["seed"])
            for key, table in zip(parts, out, strict=True):
                parts[key].append(table)
            say(f"{activation}, N = {N}: critical multiples "
                f"{out[1]['critical_multiple'].round(3).tolist()}, linear schedule "
                f"violations {out[2]['decrease_violations'].tolist()}")  # fmt: skip
    sweep = pd.concat(parts["sweep"], ignore_index=True)
    io.write_csv(sweep, sm.output.sweep)
    io.write_csv(tanh.outcome_fractions(sweep), sm.output.outcomes)
    io.write_csv(pd.concat(parts["critical"], ignore_index=True), sm.output.critical)
    io.write_csv(pd.concat(parts["schedule"], ignore_index=True), sm.output.schedule)
