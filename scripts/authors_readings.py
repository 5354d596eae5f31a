"""Snakemake script of rule `authors_readings`: the recorded search for the reading of the
authors' setting (deeplinear.authors, theory.md 13, config/README.md)."""

import pandas as pd

from deeplinear import authors, io, plan, tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
with io.script_log(sm.log[0], "authors_readings") as say:
    cfg = sm.config
    ar = authors.check_readings(cfg)
    points = authors.read_published(sm.input.published)
    datasets = {
        n: io.load_dataset(p, n, cfg["datasets"][n])
        for n, p in zip(sm.params.datasets, sm.input.data, strict=True)
    }
    the_plan = plan.Plan.from_config(cfg)
    per_depth = {
        N: (epochs, scale)
        for N, epochs, scale in zip(ar["depths"], ar["epochs"], ar["step_scales"], strict=True)
    }
    curves = []
    for name, runs in authors.reading_runs(ar["readings"], ar["depths"], ar["starts"]).items():
        for run in runs:
            epochs, scale = per_depth[run.depth]
            c = authors.reading_curve(
                run, datasets[run.dataset], ar["eta"], scale, epochs, cfg["seed"], ar["log_points"]
            )
            curves.append(c.assign(reading=name, start=run.seed))
            say(
                f"{name}, start {run.seed}: N = {run.depth}, "
                f"loss {c['loss'].iloc[0]:.3g} -> {c['loss'].iloc[-1]:.3g}"
            )
    curves = pd.concat(curves, ignore_index=True)
    by_experiment = authors.experiment_readings(
        ar["readings"], cfg["experiments"], sm.params.experiments
    )
    unscaled, gaps = {}, {}
    for exp, runs_path, traj_path in zip(
        sm.params.experiments, sm.input.runs, sm.input.trajectories, strict=True
    ):
        ids = the_plan.run_ids(exp)
        unscaled[exp] = authors.unscaled_curves(
            tables.read(runs_path, "runs", ids),
            tables.read(traj_path, "trajectories", ids),
            ar["eta"],
        )
    for name, exp in by_experiment.items():
        first = curves[(curves["reading"] == name) & (curves["start"] == 0)]  # its seed-0 run
        gaps[name] = authors.curves_gap(first, unscaled[exp])
    table = authors.readings_table(
        curves, points, ar["readings"], by_experiment, ar["step_scales"], gaps
    )
    inputs = tables.input_digests([*sm.input.data, *sm.input.runs, *sm.input.trajectories])
    tables.write(table, sm.output.table, "authors_readings", inputs)
    io.write_parquet(curves, sm.output.curves)
    points_table = authors.points_table(points, unscaled.get("authors", curves.iloc[:0]))
    tables.write(points_table, sm.output.points, "authors_points", inputs)
    say(table.to_string())
    if authors.chosen_is_best(table) is not True:
        say(
            "WARNING: experiment `authors` does not run the best-scoring reading of "
            f"authors_readings.csv (best: {table['reading'].iloc[0]}); config/README.md"
        )
