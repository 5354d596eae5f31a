"""Snakemake script of rule `aggregate_thresholds`."""

import pandas as pd

from deeplinear import io, stats

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "aggregate thresholds") as say:
    table = pd.concat([pd.read_csv(p) for p in sm.input.tables], ignore_index=True)
    out = stats.step_thresholds(table)
    io.write_csv(out, sm.output.table)
    say(out[["depth", "eta_cert", "critical_eta", "eos_eta", "acgh_eta"]].to_string())
