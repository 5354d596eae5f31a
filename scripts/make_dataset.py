"""Snakemake script of rule `dataset`: generate, validate and save one dataset."""

import json

from deeplinear import data, io

spec = dict(snakemake.config["datasets"][snakemake.wildcards.dataset])  # noqa: F821
name = snakemake.wildcards.dataset  # noqa: F821
with io.script_log(snakemake.log[0], f"dataset {name}") as say:  # noqa: F821
    kind = spec.pop("kind")
    ds = data.make(kind, **spec)
    data.validate(ds, name=f"dataset {name!r} (config key datasets.{name})")
    io.save_npz(snakemake.output.npz, X=ds.X, Y=ds.Y, meta=json.dumps(ds.meta))  # noqa: F821
    say(f"{kind}: d_x = {ds.X.shape[0]}, d_y = {ds.Y.shape[0]}, m = {ds.X.shape[1]}")
