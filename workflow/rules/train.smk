rule train_shard:
    """A shard: runs sharing depth and widths, one batch through the GD engine."""
    input:
        data=lambda wc: f"results/data/{config['experiments'][wc.experiment]['dataset']}.npz",
    output:
        trajectories="results/runs/{experiment}/{shard}.parquet",
        summary="results/runs/{experiment}/{shard}.summary.csv",
    params:
        runs=lambda wc: SHARDS[wc.experiment][wc.shard],
        settings=lambda wc: settings_of(config["experiments"][wc.experiment]),
    conda:
        ENV
    log:
        "results/logs/train/{experiment}/{shard}.log",
    threads: 1
    resources:
        runtime=lambda wc: 10 + len(SHARDS[wc.experiment][wc.shard]) // 4,
        mem_mb=2000,
    script:
        "../../scripts/train_shard.py"


rule threshold_shard:
    """Critical step multiple by bisection for the starts of one depth and width."""
    input:
        data=f"results/data/{config['threshold_search']['dataset']}.npz",
    output:
        table="results/thresholds/{shard}.csv",
    params:
        runs=lambda wc: THRESHOLD_SHARDS[wc.shard],
        settings=settings_of(THRESHOLD_SEARCH) | {"gtol": THRESHOLD_SEARCH.get("gtol", 1e-6)},
        search={k: THRESHOLD_SEARCH.get(k, v) for k, v in (("lo", 1.0), ("hi", 1e4), ("rtol", 0.02))},
    conda:
        ENV
    log:
        "results/logs/thresholds/{shard}.log",
    threads: 1
    resources:
        runtime=30,
        mem_mb=2000,
    script:
        "../../scripts/threshold_shard.py"
