rule dataset:
    """One dataset: X, Y and metadata; validated (finite, X X^T of full rank)."""
    output:
        npz=f"{RESULTS}/data/{{dataset}}.npz",
    params:
        spec=lambda wc: PLAN.datasets[wc.dataset],
    conda:
        ENV
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dataset/{{dataset}}.tsv"
    wildcard_constraints:
        dataset="|".join(map(re.escape, PLAN.datasets)),
    script:
        "../../scripts/make_dataset.py"
