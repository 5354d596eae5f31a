"""The registry of figures: for each, its notebook, the tables and experiments it draws, and
the claims it tests (pipeline.md, "Figures"). The workflow's figure rules, the README's
figure list and the pipeline tests read it; nothing else names a figure's inputs.

A table is either one experiment's (``runs``, ``trajectories``, ``convergence_stats``,
``rank_stats``, ``escape_scaling`` of the experiment bound to a notebook parameter) or
study-wide (``thresholds``, ``step_thresholds``: the threshold search; ``authors``: the
authors' step against our theory; ``authors_readings`` and ``authors_points``: the reading
search and the published points, ``authors_float32``: experiment ``authors`` in single
precision, figure 8). A figure therefore
depends on the shards of its own experiments only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from deeplinear import tables
from deeplinear.tables import FILES

#: Tables computed per experiment, and study-wide, with their file names (the registry
#: :data:`deeplinear.tables.FILES`).
EXPERIMENT_TABLES = {name: FILES[name] for name in tables.EXPERIMENT_TABLES}
STUDY_TABLES = dict(FILES)


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
        return {param: path for param, (_, _, path) in self.table_specs(tables_dir).items()}

    def table_specs(self, tables_dir: str) -> dict[str, tuple[str, str | None, str]]:
        """Notebook parameter -> ``(table name, experiment or None, path)``; the experiment
        is ``None`` for a study-wide table."""
        out = {}
        for param, spec in self.tables.items():
            table, bound = spec if isinstance(spec, tuple) else (param, spec)
            if bound is None:
                out[param] = (table, None, f"{tables_dir}/{STUDY_TABLES[table]}")
            else:
                exp = self.experiments[bound]
                path = f"{tables_dir}/experiments/{exp}/{EXPERIMENT_TABLES[table]}"
                out[param] = (table, exp, path)
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
        # the earlier reading: the reading search compares its scaled curves with its runs
        experiments={"experiment": "authors", "variant_experiment": "authors_width70"},
        tables={
            "runs": "experiment",
            "trajectories": "experiment",
            "authors": None,
            "readings": ("authors_readings", None),
            "points": ("authors_points", None),
            "float32": ("authors_float32", None),
        },
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


def claim_problems(figs: tuple[Figure, ...] = FIGURES) -> list[str]:
    """What is wrong between the figures and the claims registry
    (:data:`deeplinear.claims.CLAIMS`): a figure naming a claim the registry lacks, a claim
    of the registry no figure tests. Empty when they agree."""
    from deeplinear.claims import CLAIMS

    numbers = [c.number for c in CLAIMS]
    problems = [
        f"figure {f.name} tests claim {n}, which is not in deeplinear.claims.CLAIMS"
        for f in figs
        for n in f.claims
        if n not in numbers
    ]
    problems += [
        f"claim {n} of deeplinear.claims.CLAIMS is tested by no figure"
        for n in numbers
        if not any(n in f.claims for f in figs)
    ]
    return problems


def parameters_table() -> str:
    """The markdown table of ``notebooks/README.md``: per figure of :data:`FIGURES`, its
    table parameters (with the table read when it is named otherwise, and the experiment
    parameter it is filtered by, or "study-wide") and its experiment parameters."""
    lines = ["| notebook | tables | experiments |", "|---|---|---|"]
    for fig in FIGURES:
        cells = []
        for param, spec in fig.tables.items():
            table, bound = spec if isinstance(spec, tuple) else (param, spec)
            named = f"`{param}`" if table == param else f"`{param}` (`{table}`)"
            cells.append(f"{named} of " + ("the study" if bound is None else f"`{bound}`"))
        experiments = ", ".join(f"`{p}`" for p in fig.experiments) or "none"
        lines.append(f"| `{fig.name}` | {', '.join(cells)} | {experiments} |")
    return "\n".join(lines) + "\n"
