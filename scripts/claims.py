"""Snakemake script of rule `claims`: the claims table, its evidence tables, its Markdown."""

import pandas as pd

from deeplinear import claims, io

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "claims") as say:
    runs = io.read_table(sm.input.runs)
    thresholds = io.read_table(sm.input.thresholds)
    table = claims.verdicts(runs, thresholds)
    if "tanh_sweep" in sm.input.keys():  # claim 6 (theory.md 13, 15)
        violations = int(io.read_table(sm.input.tanh_schedule)["decrease_violations"].sum())
        row = claims.claim6(io.read_table(sm.input.tanh_sweep),
                            io.read_table(sm.input.tanh_critical), violations)  # fmt: skip
    else:
        row = claims.no_tanh()
    table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    io.write_csv(table, sm.output.table)
    io.write_csv(claims.claim2_fits(thresholds), sm.output.fits)
    io.write_csv(claims.failure_onset(runs, thresholds), sm.output.onset)
    with io.atomic_path(sm.output.markdown) as tmp:
        tmp.write_text(claims.to_markdown(table))
    for row in table.itertuples():
        say(f"claim {row.claim}: {row.verdict} ({row.measured})")
