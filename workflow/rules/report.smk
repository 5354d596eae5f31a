# The workflow description shown on the first page of `snakemake --report`.
report: "../report/workflow.rst"


rule report_html:
    """Self-contained HTML report (figures with captions, provenance, runtimes)."""
    input:
        ALL_FIGURES,
        ALL_TABLES,
    output:
        "results/report.html",
    conda:
        ENV
    log:
        "results/logs/report.log",
    params:
        configs=" ".join(f"--configfile {c}" for c in workflow.overwrite_configfiles),
        python=PYTHON,
    shell:
        "{params.python} -m snakemake --nolock {params.configs} --report {output} > {log} 2>&1"
