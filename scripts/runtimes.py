"""Snakemake script of rule `runtimes`: wall time per rule and experiment."""

from deeplinear import io, runtimes

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "runtimes") as say:
    table = runtimes.table(sm.input, sm.params.root)
    with io.atomic_path(sm.output.table) as tmp:  # seconds to 0.1 s, not to 17 digits
        table.to_csv(tmp, index=False, lineterminator="\n")
    say(f"{int(table['jobs'].sum())} jobs, {table['wall_s'].sum():.0f} s of wall time in jobs")
