"""Snakemake script of rule `claims`: the claims table, its evidence tables, its Markdown. The
runs and the threshold search are checked against their schemas, their digest records and
the plan (every planned run exactly once) before any verdict; the tanh tables (claim 6)
against their schemas and digest records."""

import pandas as pd

from deeplinear import claims, io, plan, tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "claims") as say:
    the_plan = plan.Plan.from_config(sm.config)
    runs = tables.read(sm.input.runs, "runs", tables.planned_ids(the_plan, "runs"))
    thresholds = tables.read(
        sm.input.thresholds, "thresholds", tables.planned_ids(the_plan, "thresholds")
    )
    read = [sm.input.runs, sm.input.thresholds]
    table = claims.verdicts(runs, thresholds)
    if "tanh_sweep" in sm.input.keys():  # claim 6 (theory.md 13, 16)
        sweep, critical, schedule = (
            tables.read(sm.input[t], t) for t in ("tanh_sweep", "tanh_critical", "tanh_schedule")
        )
        violations = int(schedule["decrease_violations"].sum())
        row = claims.claim6(sweep, critical, violations)
        read += [sm.input.tanh_sweep, sm.input.tanh_critical, sm.input.tanh_schedule]
    else:
        row = claims.no_tanh()
    table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    inputs = tables.input_digests(read)
    tables.write(table, sm.output.table, "claims", inputs)
    tables.write(claims.claim2_fits(thresholds), sm.output.fits, "claim2_fits", inputs)
    tables.write(claims.failure_onset(runs, thresholds), sm.output.onset, "claim5_onset", inputs)
    with io.atomic_path(sm.output.markdown) as tmp:
        tmp.write_text(claims.to_markdown(table))
    for row in table.itertuples():
        say(f"claim {row.claim}: {row.verdict} ({row.measured})")
