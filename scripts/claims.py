"""Snakemake script of rule `claims`: the claims table and its Markdown."""

from deeplinear import claims, io

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "claims") as say:
    table = claims.verdicts(
        io.read_table(sm.input.runs),
        io.read_table(sm.input.thresholds),
        io.read_table(sm.input.escape),
    )
    io.write_csv(table, sm.output.table)
    with io.atomic_path(sm.output.markdown) as tmp:
        tmp.write_text(claims.to_markdown(table))
    for row in table.itertuples():
        say(f"claim {row.claim}: {row.verdict} ({row.measured})")
