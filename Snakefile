# Replication of Nguegnang, Rauhut, Terstiege, "Convergence of gradient descent for
# learning linear neural networks" (arXiv 2108.02040).
# Data flows one way: config -> datasets -> runs -> tables -> figures -> archive.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/archive.smk"


rule all:
    input:
        ALL_TABLES,
        ALL_FIGURES,
    default_target: True
