"""Snakemake script of rule `aggregate_thresholds`: per-start table and per-depth medians, each
threshold shard checked against its schema, its digest record and its plan."""

from pathlib import Path

import pandas as pd

from deeplinear import io, plan, stats, tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "aggregate thresholds") as say:
    shards = plan.Plan.from_config(sm.config).threshold.shards
    parts = [
        tables.read(p, "thresholds", [r.run_id for r in shards[Path(p).stem]])
        for p in sm.input.tables
    ]
    starts = pd.concat(parts, ignore_index=True)
    inputs = tables.input_digests(sm.input.tables)
    tables.write(starts, sm.output.starts, "thresholds", inputs)
    out = stats.step_thresholds(starts)
    tables.write(out, sm.output.table, "step_thresholds", inputs)
    say(out[["depth", "eta_cert", "critical_eta", "eos_eta", "acgh_eta"]].to_string())
