"""The registry of figures: for each, its notebook, the tables and experiments it draws, and
the claims it tests (pipeline.md, "Figures"). The workflow's figure rules, the README's
figure list and the pipeline tests read it; nothing else names a figure's inputs.

A table is either one experiment's (``runs``, ``trajectories``, ``convergence_stats``,
``rank_stats``, ``escape_scaling`` of the experiment bound to a notebook parameter) or
study-wide (``thresholds``, ``step_thresholds``: the threshold search; ``authors``: the
authors' step against our theory, figure 8). A figure therefore
depends on the shards of its own experiments only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Tables computed per experiment, with their file names.
EXPERIMENT_TABLES = {
    "runs": "runs.csv",
    "trajectories": "trajectories.parquet",
    "convergence_stats": "convergence_stats.csv",
    "rank_stats": "rank_stats.csv",
    "escape_scaling": "escape_scaling.csv",
}
#: Study-wide tables, with their file names.
STUDY_TABLES = {
    "runs": "runs.csv",
    "trajectories": "trajectories.parquet",
    "convergence_stats": "convergence_stats.csv",
    "rank_stats": "rank_stats.csv",
    "escape_scaling": "escape_scaling.csv",
    "thresholds": "thresholds.csv",
    "step_thresholds": "step_thresholds.csv",
    "claims": "claims.csv",
    "claim2_fits": "claim2_fits.csv",
    "claim5_onset": "claim5_onset.csv",
    "authors": "authors.csv",
    "authors_tanh_readings": "authors_tanh_readings.csv",
    "authors_tanh_points": "authors_tanh_points.csv",
    "authors_tanh_runs": "authors_tanh_runs.csv",
    "authors_tanh_trajectories": "authors_tanh_trajectories.parquet",
    "tanh_sweep": "tanh_sweep.csv",
    "tanh_outcomes": "tanh_outcomes.csv",
    "tanh_critical": "tanh_critical.csv",
    "tanh_schedule": "tanh_schedule.csv",
}


@dataclass(frozen=True)
class Figure:
    """One figure: ``notebooks/{name}.ipynb`` renders ``{name}.pdf`` and ``{name}.png``.

    ``experiments`` binds notebook parameters to experiment names; ``tables`` maps each
    table parameter of the notebook to ``(table, experiment parameter)``: that experiment's
    table, or the study-wide table when the experiment parameter is ``None``. A parameter
    named like its table may be given as just the experiment parameter (or ``None``).
    ``needs`` names a config section without which the figure is not planned (``tanh``).
    """

    name: str
    claims: tuple[int, ...]
    experiments: Mapping[str, str] = field(default_factory=dict)
    tables: Mapping[str, str | tuple[str, str | None] | None] = field(default_factory=dict)
    needs: str | None = None

    def table_paths(self, tables_dir: str) -> dict[str, str]:
        """Notebook parameter -> path of the table, under ``tables_dir``."""
        out = {}
        for param, spec in self.tables.items():
            table, bound = spec if isinstance(spec, tuple) else (param, spec)
            if bound is None:
                out[param] = f"{tables_dir}/{STUDY_TABLES[table]}"
            else:
                exp = self.experiments[bound]
                out[param] = f"{tables_dir}/experiments/{exp}/{EXPERIMENT_TABLES[table]}"
        return out


FIGURES: tuple[Figure, ...] = (
    Figure(
        "fig1_stepsize",
        claims=(1, 5),
        experiments={"experiment": "stepsize"},
        tables={"runs": "experiment", "trajectories": "experiment"},
    ),
    Figure(
        "fig2_depth",
        claims=(1,),
        experiments={"experiment": "depth"},
        tables={"runs": "experiment", "trajectories": "experiment"},
    ),
    Figure(
        "fig3_bounded",
        claims=(1,),
        experiments={"experiment": "bounded"},
        tables={"runs": "experiment", "trajectories": "experiment"},
    ),
    Figure(
        "fig4_rank",
        claims=(3, 4),
        experiments={"experiment": "rank", "escape_experiment": "escape"},
        tables={
            "runs": "experiment",
            "rank_stats": "experiment",
            "escape_scaling": "escape_experiment",
            "escape_runs": ("runs", "escape_experiment"),
        },
    ),
    Figure(
        "fig5_phase",
        claims=(1, 5),
        experiments={"experiment": "stepsize"},
        tables={"convergence_stats": "experiment", "step_thresholds": None},
    ),
    Figure("fig6_threshold", claims=(2, 5), tables={"thresholds": None}),
    Figure(
        "fig7_digits",
        claims=(1, 3, 4, 5),
        experiments={"experiment": "digits"},
        tables={"runs": "experiment", "trajectories": "experiment", "rank_stats": "experiment"},
    ),
    Figure(
        "fig8_authors",
        claims=(1,),
        experiments={"experiment": "authors"},
        tables={"runs": "experiment", "trajectories": "experiment", "authors": None},
    ),
    Figure(
        "fig9_tanh",
        claims=(6,),
        tables={
            "readings": ("authors_tanh_readings", None),
            "points": ("authors_tanh_points", None),
            "runs": ("authors_tanh_runs", None),
            "trajectories": ("authors_tanh_trajectories", None),
            "outcomes": ("tanh_outcomes", None),
            "critical": ("tanh_critical", None),
            "schedule": ("tanh_schedule", None),
        },
        needs="tanh",
    ),
)


def planned(config: Mapping) -> tuple[Figure, ...]:
    """The figures a config draws: every figure whose ``needs`` section it has."""
    return tuple(f for f in FIGURES if f.needs is None or f.needs in config)


def by_name() -> dict[str, Figure]:
    return {f.name: f for f in FIGURES}


def needed_experiments() -> set[str]:
    """Experiment names the figures draw: a config must define each of them."""
    return {exp for f in FIGURES for exp in f.experiments.values()}
