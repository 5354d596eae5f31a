"""Snakemake script of rule `dataset`: generate, validate and save one dataset, with the
digest of its config entry (checked by every job that loads it)."""

from deeplinear import data, io

sm = snakemake  # noqa: F821 (injected by Snakemake)
name = sm.wildcards.dataset
spec = dict(sm.config["datasets"][name])
with io.script_log(sm.log[0], f"dataset {name}") as say:
    params = {k: v for k, v in spec.items() if k != "kind"}
    ds = data.make(spec["kind"], **params)
    data.validate(ds, name=f"dataset {name!r} (config key datasets.{name})")
    io.save_dataset(sm.output.npz, ds, name, spec)
    say(f"{spec['kind']}: d_x = {ds.X.shape[0]}, d_y = {ds.Y.shape[0]}, m = {ds.X.shape[1]}")
