"""Snakemake script of rule `claims`: the claims table, its Markdown, the README section."""

from pathlib import Path

import pandas as pd

from deeplinear import claims, io

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "claims") as say:
    table = claims.verdicts(
        pd.read_csv(sm.input.runs),
        pd.read_csv(sm.input.thresholds),
        pd.read_csv(sm.input.escape),
    )
    markdown = claims.to_markdown(table)
    io.write_csv(table, sm.output.table)
    with io.atomic_path(sm.output.markdown) as tmp:
        tmp.write_text(markdown)
    readme = Path(sm.params.readme)
    if readme.exists():
        text = readme.read_text()
        updated = claims.update_readme(text, markdown)
        if updated != text:
            with io.atomic_path(readme) as tmp:
                tmp.write_text(updated)
            say("README results section updated")
    for row in table.itertuples():
        say(f"claim {row.claim}: {row.verdict} ({row.measured})")
