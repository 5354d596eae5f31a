rule aggregate_runs:
    """All shards -> runs.csv, trajectories.parquet and the aggregates the figures plot."""
    input:
        summaries=[
            f"results/runs/{exp}/{shard}.summary.csv" for exp in SHARDS for shard in SHARDS[exp]
        ],
        trajectories=[
            f"results/runs/{exp}/{shard}.parquet" for exp in SHARDS for shard in SHARDS[exp]
        ],
    output:
        runs="results/tables/runs.csv",
        trajectories="results/tables/trajectories.parquet",
        convergence="results/tables/convergence_stats.csv",
        ranks="results/tables/rank_stats.csv",
        escape="results/tables/escape_scaling.csv",
    conda:
        ENV
    log:
        "results/logs/aggregate/runs.log",
    resources:
        mem_mb=4000,
    script:
        "../../scripts/aggregate.py"


rule aggregate_thresholds:
    """Per depth: certified bound, critical step, 2/sharpness and the ACGH bound."""
    input:
        tables=[f"results/thresholds/{shard}.csv" for shard in THRESHOLD_SHARDS],
    output:
        table="results/tables/step_thresholds.csv",
    conda:
        ENV
    log:
        "results/logs/aggregate/thresholds.log",
    script:
        "../../scripts/step_thresholds.py"


rule claims:
    """Verdict on each of the paper's five claims by the documented rules of
    deeplinear.claims; the Markdown version is copied into the README's Results section."""
    input:
        runs="results/tables/runs.csv",
        thresholds="results/tables/step_thresholds.csv",
        escape="results/tables/escape_scaling.csv",
    output:
        table="results/tables/claims.csv",
        markdown="results/tables/claims.md",
    params:
        readme="README.md",
    conda:
        ENV
    log:
        "results/logs/aggregate/claims.log",
    script:
        "../../scripts/claims.py"
