"""Snakemake script of rule `threshold_shard`: critical step multiples of one depth."""

from deeplinear import io
from deeplinear.data import Dataset
from deeplinear.experiments import Settings, critical_multiples

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], f"threshold {sm.wildcards.shard}") as say:
    arrays = io.load_npz(sm.input.data)
    ds = Dataset(arrays["X"], arrays["Y"])
    table = critical_multiples(
        sm.params.runs, ds, Settings(**sm.params.settings), **sm.params.search, progress=say
    )
    io.write_csv(table, sm.output.table)
    say(f"critical multiples: {table['critical_multiple'].round(3).tolist()}")
