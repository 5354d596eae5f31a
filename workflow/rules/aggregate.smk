# Every table is written with its digest record `<table>.sha256.json` (deeplinear.tables:
# the file's SHA-256 and those of the inputs it was computed from) and read back against its
# schema, its record and the plan; the records of the tables a rule reads are its inputs too.


rule aggregate_experiment:
    """One experiment's shards -> its runs, trajectories and aggregates, checked against the
    plan (every planned run exactly once, nothing else), the schema and the shards' digests."""
    input:
        summaries=lambda wc: shard_files(wc.experiment, "summary.csv"),
        trajectories=lambda wc: shard_files(wc.experiment, "parquet"),
        digests=lambda wc: seals(
            shard_files(wc.experiment, "summary.csv") + shard_files(wc.experiment, "parquet")
        ),
    output:
        **sealed(
            runs=f"{TABLES}/experiments/{{experiment}}/runs.csv",
            trajectories=f"{TABLES}/experiments/{{experiment}}/trajectories.parquet",
            convergence=f"{TABLES}/experiments/{{experiment}}/convergence_stats.csv",
            ranks=f"{TABLES}/experiments/{{experiment}}/rank_stats.csv",
            escape=f"{TABLES}/experiments/{{experiment}}/escape_scaling.csv",
        ),
    params:
        code=code_digest("scripts/aggregate_experiment.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/aggregate/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_experiment/{{experiment}}.tsv"
    wildcard_constraints:
        experiment="|".join(map(re.escape, PLAN.experiments)),
    script:
        "../../scripts/aggregate_experiment.py"


rule aggregate_study:
    """Every experiment's tables -> the study-wide runs, trajectories and aggregates."""
    input:
        runs=[experiment_table(exp, "runs") for exp in PLAN.experiments],
        trajectories=[experiment_table(exp, "trajectories") for exp in PLAN.experiments],
        digests=seals(
            [experiment_table(exp, t) for exp in PLAN.experiments for t in ("runs", "trajectories")]
        ),
    output:
        **sealed(
            runs=study_table("runs"),
            trajectories=study_table("trajectories"),
            convergence=study_table("convergence_stats"),
            ranks=study_table("rank_stats"),
            escape=study_table("escape_scaling"),
        ),
    params:
        code=code_digest("scripts/aggregate_study.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/aggregate/study.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_study.tsv"
    resources:
        mem_mb=4000,
    script:
        "../../scripts/aggregate_study.py"


rule aggregate_thresholds:
    """Threshold search: one row per start, and per family and depth the median certified
    bound, critical step, 2/sharpness and ACGH bound."""
    input:
        tables=[f"{RESULTS}/thresholds/{shard}.csv" for shard in PLAN.threshold.shards],
        digests=seals([f"{RESULTS}/thresholds/{shard}.csv" for shard in PLAN.threshold.shards]),
    output:
        **sealed(starts=study_table("thresholds"), table=study_table("step_thresholds")),
    params:
        code=code_digest("scripts/step_thresholds.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/aggregate/thresholds.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_thresholds.tsv"
    script:
        "../../scripts/step_thresholds.py"


rule claims:
    """Verdict on each claim of the registry deeplinear.claims.CLAIMS by its documented
    rule, from the tables the registry names (claim 6's only with a `tanh` section).
    `make readme` copies the headlines of claims.md into the README."""
    input:
        **{t: study_table(t) for t in claims_lib.planned_inputs(config)},
        digests=seals([study_table(t) for t in claims_lib.planned_inputs(config)]),
    output:
        **sealed(
            table=study_table("claims"),
            fits=study_table("claim2_fits"),
            onset=study_table("claim5_onset"),
        ),
        markdown=f"{TABLES}/claims.md",
    params:
        code=code_digest("scripts/claims.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/aggregate/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims.tsv"
    script:
        "../../scripts/claims.py"


rule runtimes:
    """Wall time per rule and experiment, from every job's `benchmark:` file (not part of
    the archive: timings differ from run to run)."""
    input:
        BENCHMARKS,
    output:
        table=f"{TABLES}/runtimes.csv",
    params:
        root=lambda wc, input: os.path.commonpath(input),
        code=code_digest("scripts/runtimes.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/aggregate/runtimes.log",
    script:
        "../../scripts/runtimes.py"
