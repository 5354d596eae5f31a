rule train_shard:
    """A shard: runs sharing depth, width, step multiple and a block of seeds, as one batch
    through the GD engine. Its params are a digest of its runs and settings (PLAN)."""
    input:
        data=lambda wc: dataset_file(PLAN.experiments[wc.experiment].dataset),
    output:
        **sealed(
            trajectories=f"{RESULTS}/runs/{{experiment}}/{{shard}}.parquet",
            summary=f"{RESULTS}/runs/{{experiment}}/{{shard}}.summary.csv",
        ),
    params:
        digest=lambda wc: PLAN.experiments[wc.experiment].shard_digest(wc.shard),
        code=code_digest("scripts/train_shard.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/train/{{experiment}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_shard/{{experiment}}/{{shard}}.tsv"
    wildcard_constraints:
        experiment="|".join(map(re.escape, PLAN.experiments)),
    threads: 1
    # Longest shards first, so that no long shard starts last and runs alone at the end.
    priority: lambda wc: PLAN.experiments[wc.experiment].expected_seconds(wc.shard)
    resources:
        runtime=lambda wc: PLAN.experiments[wc.experiment].runtime_minutes(wc.shard),
        mem_mb=2000,
    script:
        "../../scripts/train_shard.py"


rule threshold_shard:
    """Critical step multiple by bisection for the starts of one family and depth."""
    input:
        data=lambda wc: dataset_file(PLAN.threshold.family_of(wc.shard).dataset),
    output:
        **sealed(table=f"{RESULTS}/thresholds/{{shard}}.csv"),
    params:
        digest=lambda wc: PLAN.threshold.shard_digest(wc.shard),
        code=code_digest("scripts/threshold_shard.py"),
    conda:
        ENV
    log:
        f"{RESULTS}/logs/thresholds/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/threshold_shard/{{shard}}.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=2000,
    script:
        "../../scripts/threshold_shard.py"
