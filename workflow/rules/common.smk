# The plan of the whole study, built from the validated config before any job runs. Every
# rule reads experiment settings from PLAN (deeplinear.plan) and paths from the helpers
# below; a bad config stops here with the config key named and nothing computed.
import json
import os
import re
import shlex
import sys
from pathlib import Path

import deeplinear
from deeplinear import authors, codehash, errors, figures, plan, preflight, tables
from deeplinear import claims as claims_lib
from deeplinear import tanh as tanh_lib
from snakemake.exceptions import WorkflowError

from deeplinear.errors import InputError

#: Software environment of every rule (used with `--sdm conda`).
ENV = "../envs/deeplinear.yaml"


def _plan(cfg):
    """The plan through the front door every config passes (`deeplinear.plan.build`, the
    same checks as `python -m deeplinear.plan check`): config files read strictly, schema and
    defaults, output locations, sizes, every dataset built; exit naming the culprit."""
    files = workflow.overwrite_configfiles or [f"{workflow.basedir}/config/config.yaml"]
    try:
        return plan.build(
            cfg, workflow.source_path("../schemas/config.schema.yaml"), files, workflow.basedir
        )
    except InputError as err:
        sys.exit(f"Error in the config ({', '.join(map(str, files))}): {err}")


PLAN = _plan(config)
# Error messages of the jobs quote the command that rebuilds a damaged file, with these.
os.environ[errors.CONFIGFILES_VARIABLE] = shlex.join(
    os.path.relpath(f) for f in workflow.overwrite_configfiles
)


def _preflight():
    """Before any job: the tools the rules call, and another run alive in this folder."""
    others = preflight.other_runs(os.getcwd())
    if others and "--unlock" in sys.argv:
        sys.exit(f"Refusing --unlock: {preflight.unlock_warning(others)}")
    if others:
        print(f"Note: {preflight.unlock_warning(others)}", file=sys.stderr)
    words = set(sys.argv)
    no_jobs = words & {"-n", "--dry-run", "--dryrun", "--unlock", "--lint", "--touch", "-t"}
    if not no_jobs and not any(w.startswith("--sdm") for w in words):
        problem = preflight.missing_tools()
        if problem is not None:
            sys.exit(f"Cannot run the workflow: {problem}")


if workflow.is_main_process:
    _preflight()
RESULTS = PLAN.results_dir
TABLES = f"{RESULTS}/tables"


def experiment_table(exp, table):
    return f"{TABLES}/experiments/{exp}/{figures.EXPERIMENT_TABLES[table]}"


def study_table(table):
    return f"{TABLES}/{figures.STUDY_TABLES[table]}"


def seals(paths):
    """The digest records (`<table>.sha256.json`, deeplinear.tables) of `paths`: a rule that
    reads tables takes their records as inputs too, so a lost record is rebuilt."""
    return [tables.seal_path(p) for p in paths]


def sealed(**paths):
    """Named table outputs plus the digest record of each (`<name>_sha256`)."""
    return paths | {f"{key}_sha256": tables.seal_path(path) for key, path in paths.items()}


#: The library whose code the jobs run (the installed package, wherever it is imported
#: from), and per entry point (script, notebook, module) the digest of the package files it
#: reaches by imports (deeplinear.codehash): a rule's params carry it, so a library change
#: reruns the rules whose code it touches, and `snakemake -n` says "params changed".
PACKAGE_DIR = Path(deeplinear.__file__).parent
_CODE_DIGESTS = {}


def code_digest(entry):
    """Digest of the library code behind `entry` (a path relative to the Snakefile)."""
    if entry not in _CODE_DIGESTS:
        path = Path(workflow.basedir) / entry
        _CODE_DIGESTS[entry] = codehash.code_digest([path], PACKAGE_DIR)
    return _CODE_DIGESTS[entry]


def figure_paths(fig):
    return [f"{PLAN.figures_dir}/{fig}.{ext}" for ext in ("pdf", "png")]


def dataset_file(name):
    return f"{RESULTS}/data/{name}.npz"


def shard_files(exp, ext):
    return [f"{RESULTS}/runs/{exp}/{shard}.{ext}" for shard in PLAN.experiments[exp].shards]


def papermill_args(fig):
    """`-p name value` pairs: table paths, the experiments shown, the style."""
    pairs = fig.table_paths(TABLES) | dict(fig.experiments) | dict(PLAN.figures)
    return " ".join(f"-p {k} {shlex.quote(str(v))}" for k, v in pairs.items())


#: The study-wide tables (archived), claims.md among them (`make readme` copies it).
ALL_TABLES = [
    *(
        study_table(t)
        for t in (
            "runs",
            "trajectories",
            "convergence_stats",
            "rank_stats",
            "escape_scaling",
            "thresholds",
            "step_thresholds",
            "claims",
            "claim2_fits",
            "claim5_onset",
            "authors",
            "authors_readings",
            "authors_points",
            "authors_float32",
            "authors_floors",
        )
    ),
    f"{TABLES}/claims.md",
]
#: The tanh part (workflow/rules/tanh.smk), planned when the config has `tanh`.
if "tanh" in config:
    ALL_TABLES += [
        study_table(t)
        for t in (
            "authors_tanh_readings", "authors_tanh_points", "authors_tanh_runs",
            "authors_tanh_trajectories", "tanh_sweep", "tanh_outcomes", "tanh_critical",
            "tanh_schedule",
        )
    ]  # fmt: skip
#: Every experiment's own tables (what the figures read), which `all` also asks for, so that
#: deleting one rebuilds it.
EXPERIMENT_TABLES = [
    experiment_table(exp, t) for exp in PLAN.experiments for t in figures.EXPERIMENT_TABLES
]
#: The digest records of every table (deeplinear.tables), also asked for by `all`.
ALL_SEALS = seals([p for p in [*ALL_TABLES, *EXPERIMENT_TABLES] if not p.endswith(".md")])
PLANNED_FIGURES = figures.planned(config)
ALL_FIGURES = [path for fig in PLANNED_FIGURES for path in figure_paths(fig.name)]


#: The benchmark file of every job that `all` runs (rule `runtimes` sums them).
BENCH = f"{RESULTS}/benchmarks"
BENCHMARKS = [
    *(f"{BENCH}/dataset/{name}.tsv" for name in PLAN.datasets),
    *(
        f"{BENCH}/train_shard/{name}/{shard}.tsv"
        for name, exp in PLAN.experiments.items()
        for shard in exp.shards
    ),
    *(f"{BENCH}/threshold_shard/{shard}.tsv" for shard in PLAN.threshold.shards),
    *(f"{BENCH}/aggregate_experiment/{name}.tsv" for name in PLAN.experiments),
    f"{BENCH}/aggregate_study.tsv",
    f"{BENCH}/aggregate_thresholds.tsv",
    f"{BENCH}/claims.tsv",
    f"{BENCH}/authors/authors.tsv",
    f"{BENCH}/authors/authors_readings.tsv",
    f"{BENCH}/authors/authors_float32.tsv",
    *(f"{BENCH}/figures/{fig.name}.tsv" for fig in PLANNED_FIGURES),
    *(
        f"{BENCH}/{job}.tsv"
        for job in ("tanh_readings", "authors_tanh", "tanh_sweep")
        if "tanh" in config
    ),
]

#: Snakemake's HTML report of the finished run (`make report`), an input of the archive.
REPORT_HTML = f"{RESULTS}/report.html"


def made_report(wildcards):
    """The HTML report, which Snakemake's --report makes (`make report`), not a rule."""
    if not os.path.exists(REPORT_HTML):
        raise WorkflowError(
            f"{REPORT_HTML} is missing: `make archive` makes it first; by hand, run "
            f"`snakemake all provenance --report {REPORT_HTML}` (with the same --configfile) "
            "before `snakemake archive`"
        )
    return REPORT_HTML
