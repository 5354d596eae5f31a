# Replication of Nguegnang, Rauhut, Terstiege, "Convergence of gradient descent for
# learning linear neural networks" (arXiv 2108.02040).
# Data flows one way: config -> datasets -> runs -> tables -> figures -> archive.
#
# The config is config/config.yaml, or exactly the files given with --configfile (they
# replace the default; they are never merged into it). It is validated against
# workflow/schemas/config.schema.yaml, the only place defaults live, and turned into one
# plan object (deeplinear.plan.Plan) that every rule reads. Outputs go below the working
# directory; the project's own files (config, notebooks) are found beside this Snakefile.
import os

from snakemake.utils import min_version

min_version("9.0")


if not workflow.overwrite_configfiles:

    configfile: os.path.relpath(f"{workflow.basedir}/config/config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/authors.smk"
include: "workflow/rules/tanh.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/archive.smk"


rule all:
    input:
        ALL_TABLES,
        EXPERIMENT_TABLES,
        ALL_SEALS,
        ALL_FIGURES,
        f"{TABLES}/runtimes.csv",
    default_target: True
