# Plan of the whole study, computed from the validated config before any job runs.
import sys

from deeplinear import grid

#: Software environment of every rule (used with `--sdm conda`).
ENV = "../envs/deeplinear.yaml"

#: The interpreter running Snakemake: its environment has papermill and the library.
PYTHON = sys.executable

#: Figure -> notebook parameter -> experiment whose runs it plots (the threshold figure
#: uses threshold_search).
FIGURE_EXPERIMENTS = {
    "fig1_stepsize": {"experiment": "stepsize"},
    "fig2_depth": {"experiment": "depth"},
    "fig3_bounded": {"experiment": "bounded"},
    "fig4_rank": {"experiment": "rank", "escape_experiment": "escape"},
    "fig5_phase": {"experiment": "stepsize"},
    "fig7_digits": {"experiment": "digits"},
}
FIGURES = [*FIGURE_EXPERIMENTS, "fig6_threshold"]


def check_config(cfg):
    """Cross-field checks the schema cannot express; errors name the config key."""
    for name, exp in [*cfg["experiments"].items(), ("threshold_search", cfg["threshold_search"])]:
        key = name if name == "threshold_search" else f"experiments.{name}"
        if exp["dataset"] not in cfg["datasets"]:
            raise ValueError(
                f"config key {key}.dataset: unknown dataset {exp['dataset']!r}; "
                f"defined datasets: {sorted(cfg['datasets'])}"
            )
        for i, ini in enumerate(exp["inits"]):
            if "xi" in ini and ini["kind"] != "near_balanced":
                raise ValueError(f"config key {key}.inits[{i}].xi applies only to near_balanced")
            for opt in ("rank", "spread"):
                if opt in ini and ini["kind"] not in ("balanced", "near_balanced"):
                    raise ValueError(
                        f"config key {key}.inits[{i}].{opt} applies only to balanced starts"
                    )
    needed = {exp for params in FIGURE_EXPERIMENTS.values() for exp in params.values()}
    missing = sorted(needed - set(cfg["experiments"]))
    if missing:
        raise ValueError(f"config key experiments: the figures need experiments {missing}")




def check_datasets(cfg):
    """Build and validate every dataset once (cheap), so bad data fails before any job."""
    from deeplinear import data
    from deeplinear.errors import InputError

    for name, spec in cfg["datasets"].items():
        params = {k: v for k, v in spec.items() if k != "kind"}
        try:
            data.validate(data.make(spec["kind"], **params), name=f"dataset {name!r}")
        except InputError as err:
            raise ValueError(f"config key datasets.{name}: {err}") from None


check_config(config)
check_datasets(config)

SHARDS = {name: grid.shards(name, exp) for name, exp in config["experiments"].items()}
THRESHOLD_SEARCH = dict(
    config["threshold_search"],
    step_rules=[{"schedule": "constant"}],
    step_multiples=[1.0],
    shard_size=10**9,
)
THRESHOLD_SHARDS = grid.shards("threshold", THRESHOLD_SEARCH)

ALL_TABLES = [
    "results/tables/runs.csv",
    "results/tables/trajectories.parquet",
    "results/tables/convergence_stats.csv",
    "results/tables/rank_stats.csv",
    "results/tables/escape_scaling.csv",
    "results/tables/step_thresholds.csv",
    "results/tables/claims.csv",
]
ALL_FIGURES = expand("figures/{fig}.{ext}", fig=FIGURES, ext=["pdf", "png"])


def settings_of(exp):
    """Budget and tolerances of an experiment, as plain values (rerun when they change)."""
    return {
        "time": exp["time"],
        "max_iter": exp["max_iter"],
        "gtol": exp.get("gtol", 1e-9),
        "log_points": exp.get("log_points", 200),
        "base_seed": config["seed"],
    }
