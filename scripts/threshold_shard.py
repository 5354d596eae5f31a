"""Snakemake script of rule `threshold_shard`: critical step multiples of one family and depth."""

from deeplinear import io, plan, tables
from deeplinear.experiments import critical_steps

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], f"threshold {sm.wildcards.shard}") as say:
    search = plan.Plan.from_config(sm.config).threshold
    family = search.family_of(sm.wildcards.shard)
    ds = io.load_dataset(sm.input.data, family.dataset, sm.config["datasets"][family.dataset])
    runs = search.shards[sm.wildcards.shard]
    table = critical_steps(runs, ds, search.step_search, progress=say, adaptive=True)
    table.insert(1, "family", family.label)
    table.insert(2, "dataset", family.dataset)
    tables.write(table, sm.output.table, "thresholds", tables.input_digests([sm.input.data]))
    say(f"critical multiples: {table['critical_multiple'].round(3).tolist()}")
