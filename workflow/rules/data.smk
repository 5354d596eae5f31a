rule dataset:
    """One dataset: X, Y, metadata and the digest of its config entry, which every job that
    loads it checks; validated (finite, X X^T of full rank)."""
    output:
        npz=f"{RESULTS}/data/{{dataset}}.npz",
    params:
        digest=lambda wc: plan.digest(PLAN.datasets[wc.dataset])[:16],
        code=code_digest("scripts/make_dataset.py"),
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
