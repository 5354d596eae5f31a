"""Snakemake script of rule `aggregate_thresholds`: per-start table and per-depth medians."""

import pandas as pd

from deeplinear import io, stats

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "aggregate thresholds") as say:
    starts = pd.concat([io.read_table(p) for p in sm.input.tables], ignore_index=True)
    io.write_csv(starts, sm.output.starts)
    out = stats.step_thresholds(starts)
    io.write_csv(out, sm.output.table)
    say(out[["depth", "eta_cert", "critical_eta", "eos_eta", "acgh_eta"]].to_string())
