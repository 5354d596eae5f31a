"""Snakemake script of rule `claims`: the claims table, its evidence tables, its Markdown. The
runs and the threshold search are checked against their schemas, their digest records and
the plan (every planned run exactly once) before any verdict."""

from deeplinear import claims, io, plan, tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "claims") as say:
    the_plan = plan.Plan.from_config(sm.config)
    runs = tables.read(sm.input.runs, "runs", tables.planned_ids(the_plan, "runs"))
    thresholds = tables.read(
        sm.input.thresholds, "thresholds", tables.planned_ids(the_plan, "thresholds")
    )
    inputs = tables.input_digests([sm.input.runs, sm.input.thresholds])
    table = claims.verdicts(runs, thresholds)
    tables.write(table, sm.output.table, "claims", inputs)
    tables.write(claims.claim2_fits(thresholds), sm.output.fits, "claim2_fits", inputs)
    tables.write(claims.failure_onset(runs, thresholds), sm.output.onset, "claim5_onset", inputs)
    with io.atomic_path(sm.output.markdown) as tmp:
        tmp.write_text(claims.to_markdown(table))
    for row in table.itertuples():
        say(f"claim {row.claim}: {row.verdict} ({row.measured})")
