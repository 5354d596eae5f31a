# The authors' own experiment (figure 8): for each of its runs, where the step sits relative
# to our certified bound and the measured critical step of the same start, and what the
# curves show in numbers (deeplinear.authors). Covers `authors` and, if the config has them,
# the variants `authors_c630_layer` (the previous choice of the reading search),
# `authors_c1430_levels` (the choice before that), `authors_c80_r06` (an earlier one),
# `authors_width70` (the earlier reading) and `authors_bottleneck`.
AUTHORS_EXPERIMENTS = [
    e
    for e in (
        "authors",
        "authors_c630_layer",
        "authors_c1430_levels",
        "authors_c80_r06",
        "authors_width70",
        "authors_bottleneck",
    )
    if e in PLAN.experiments
]
try:
    READINGS = authors.check_readings(config)
    FLOAT32_RUNS = authors.float32_runs(READINGS, PLAN.experiments["authors"].runs)
except InputError as err:
    sys.exit(f"Error in the config: {err}")
READING_DATASETS = sorted({r["dataset"] for r in READINGS["readings"]})


rule authors:
    """Certified bound, critical step and 2/S of the authors' starts against their step."""
    input:
        runs=[experiment_table(e, "runs") for e in AUTHORS_EXPERIMENTS],
        trajectories=[experiment_table(e, "trajectories") for e in AUTHORS_EXPERIMENTS],
        data=[dataset_file(PLAN.experiments[e].dataset) for e in AUTHORS_EXPERIMENTS],
        digests=seals(
            [experiment_table(e, t) for e in AUTHORS_EXPERIMENTS for t in ("runs", "trajectories")]
        ),
    output:
        **sealed(table=study_table("authors")),
    params:
        experiments=AUTHORS_EXPERIMENTS,
        digest=lambda wc: plan.digest(
            [PLAN.experiments[e].shard_digest(s) for e in AUTHORS_EXPERIMENTS
             for s in PLAN.experiments[e].shards]
            + [PLAN.threshold.lo, PLAN.threshold.hi, PLAN.threshold.rtol,
               str(PLAN.threshold.settings)]
        )[:16],
        code=code_digest("scripts/authors.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/aggregate/authors.log",
    benchmark:
        f"{RESULTS}/benchmarks/authors/authors.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=2000,
    script:
        "../../scripts/authors.py"


rule authors_readings:
    """The recorded search for the reading of the authors' setting (figure 8): every
    reading's scaled-step curves at each depth, scored against the published points."""
    input:
        # relative to the project, like the notebooks (the workflow may run elsewhere)
        published=os.path.relpath(os.path.join(workflow.basedir, READINGS["published"])),
        data=[dataset_file(d) for d in READING_DATASETS],
        runs=[experiment_table(e, "runs") for e in AUTHORS_EXPERIMENTS],
        trajectories=[experiment_table(e, "trajectories") for e in AUTHORS_EXPERIMENTS],
        digests=seals(
            [experiment_table(e, t) for e in AUTHORS_EXPERIMENTS for t in ("runs", "trajectories")]
        ),
    output:
        **sealed(table=study_table("authors_readings"), points=study_table("authors_points")),
        curves=f"{TABLES}/authors_reading_curves.parquet",
    params:
        datasets=READING_DATASETS,
        experiments=AUTHORS_EXPERIMENTS,
        digest=lambda wc: plan.digest(
            [READINGS, PLAN.seed, [PLAN.datasets[d] for d in READING_DATASETS]]
        )[:16],
        code=code_digest("scripts/authors_readings.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/aggregate/authors_readings.log",
    benchmark:
        f"{RESULTS}/benchmarks/authors/authors_readings.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=2000,
    script:
        "../../scripts/authors_readings.py"


rule authors_float32:
    """Experiment `authors` repeated in single precision at the published step (figure 8):
    its floors of rounding against the published ones."""
    input:
        published=os.path.relpath(os.path.join(workflow.basedir, READINGS["published"])),
        data=dataset_file(PLAN.experiments["authors"].dataset),
    output:
        **sealed(
            curves=study_table("authors_float32"),
            floors=study_table("authors_floors"),
        ),
    params:
        digest=lambda wc: plan.digest(
            [
                [r.key() for r in FLOAT32_RUNS],
                READINGS["depths"],
                READINGS["epochs"],
                READINGS["eta"],
                READINGS["log_points"],
                PLAN.seed,
                PLAN.datasets[PLAN.experiments["authors"].dataset],
            ]
        )[:16],
        code=code_digest("scripts/authors_float32.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/aggregate/authors_float32.log",
    benchmark:
        f"{RESULTS}/benchmarks/authors/authors_float32.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=1000,
    script:
        "../../scripts/authors_float32.py"
