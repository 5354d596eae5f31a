# The workflow description shown on the first page of `snakemake --report`.
# The report itself is made by Snakemake, not by a rule: `make report` runs
# `snakemake all provenance --report results/report.html` after the workflow has finished
# (a report made inside a job would run Snakemake within Snakemake).
report: "../report/workflow.rst"
