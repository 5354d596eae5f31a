"""Snakemake script of rule `claims`: the claims table, its evidence tables, its Markdown. The
input tables of every claim of the registry (deeplinear.claims.CLAIMS) are checked against
their schemas and digest records, tables of runs also against the plan (every planned run
exactly once), before any verdict."""

from deeplinear import claims, io, plan, tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "claims") as say:
    the_plan = plan.Plan.from_config(sm.config)
    names = claims.planned_inputs(sm.config)
    inputs = {
        name: tables.read(
            sm.input[name],
            name,
            tables.planned_ids(the_plan, name) if tables.schema(name).runs else None,
        )
        for name in names
    }
    table = claims.verdicts(inputs)
    digests = tables.input_digests([sm.input[name] for name in names])
    runs, thresholds = inputs["runs"], inputs["thresholds"]
    tables.write(table, sm.output.table, "claims", digests)
    tables.write(claims.claim2_fits(thresholds), sm.output.fits, "claim2_fits", digests)
    tables.write(claims.failure_onset(runs, thresholds), sm.output.onset, "claim5_onset", digests)
    with io.atomic_path(sm.output.markdown) as tmp:
        tmp.write_text(claims.to_markdown(table))
    for row in table.itertuples():
        say(f"claim {row.claim}: {row.verdict} ({row.headline})")
