rule dataset:
    """One dataset: X, Y and metadata; validated (finite, X X^T of full rank)."""
    output:
        npz="results/data/{dataset}.npz",
    params:
        spec=lambda wc: config["datasets"][wc.dataset],
    conda:
        ENV
    log:
        "results/logs/data/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(config["datasets"]),
    script:
        "../../scripts/make_dataset.py"
