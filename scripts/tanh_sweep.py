"""Snakemake script of rule `tanh_sweep`: constant steps at multiples of the linear certified
step on tanh networks (the chosen reading's activation) and on the linear network, their
critical steps, and the linear certified schedule on the tanh weights (theory.md 16)."""

import pandas as pd

from deeplinear import io, model, tables, tanh

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "tanh_sweep") as say:
    cfg = sm.config["tanh"]
    sw = cfg["sweep"]
    reading = tanh.chosen(tables.read(sm.input.readings, "authors_tanh_readings"), cfg["readings"])
    ds = io.load_dataset(
        sm.input.data, cfg["sweep"]["dataset"], sm.config["datasets"][cfg["sweep"]["dataset"]]
    )
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
    inputs = tables.input_digests([*sm.input])
    tables.write(sweep, sm.output.sweep, "tanh_sweep", inputs)
    tables.write(tanh.outcome_fractions(sweep), sm.output.outcomes, "tanh_outcomes", inputs)
    critical = pd.concat(parts["critical"], ignore_index=True)
    tables.write(critical, sm.output.critical, "tanh_critical", inputs)
    schedule = pd.concat(parts["schedule"], ignore_index=True)
    tables.write(schedule, sm.output.schedule, "tanh_schedule", inputs)
