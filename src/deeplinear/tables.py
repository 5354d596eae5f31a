"""The result tables: their files, column schemas, digests and checked reading and writing
(pipeline.md, "Output contracts" and "Table integrity").

Every table a rule writes goes through :func:`write` and every table a rule reads through
:func:`read`, so a table is never silently damaged between two rules:

- **Schema.** Each table has a :class:`Schema`: its columns in order, each with a kind
  (``str``, ``int``, ``float``, ``bool`` or ``any``), whether it may be empty (NaN) and,
  for some, the values allowed (``status`` in :data:`deeplinear.gd.STATUSES`). A CSV is
  read so that a row with too few or too many fields (a truncated last row) is an error
  naming the line, not a row padded with NaN.
- **Plan.** A table with one row per run (``runs``, ``trajectories``, ``thresholds``,
  ``authors``) must hold every run its plan lists exactly once (:func:`check_runs`);
  tables of counts per cell must count exactly the planned runs (:func:`check_total`).
- **Digests.** :func:`write` records the SHA-256 of the file it wrote and of the inputs it
  was computed from in a sidecar ``<table>.sha256.json`` (:func:`seal_path`); :func:`read`
  recomputes the file's digest and compares, so a table changed after its rule wrote it
  (an edited status, a cut file) is an error naming it. The sidecars chain: each records
  the digests of the tables it was computed from.

Every problem raises :class:`~deeplinear.errors.InputError` naming the file and the
command that rebuilds it. ``python -m deeplinear.tables check --expect JSON`` runs the
same checks on the tables a figure reads, before its notebook runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deeplinear.errors import InputError, rebuild_command
from deeplinear.gd import STATUSES
from deeplinear.init import INITS
from deeplinear.io import file_digest

if TYPE_CHECKING:
    import pandas as pd

    from deeplinear.plan import Plan

#: Suffix of the digest record written beside every table.
SEAL_SUFFIX = ".sha256.json"

#: Step schedules (theory.md 11) and init kinds: the values runs.csv may hold (statuses:
#: :data:`deeplinear.gd.STATUSES`).
STEP_RULES = ("constant", "decreasing", "adaptive")
#: What a step multiple multiplies (config key ``step_unit``): the run's certified step, or 1.
STEP_UNITS = ("certified", "absolute")
INIT_KINDS = tuple(INITS)
#: Verdicts of the claims table (:mod:`deeplinear.claims`).
VERDICTS = ("supported", "not supported", "inconclusive")


@dataclass(frozen=True)
class Column:
    """One column: ``kind`` is ``str``, ``int``, ``float`` (ints allowed, ``inf`` allowed),
    ``bool`` or ``any`` (not checked); ``nullable`` allows NaN (an empty CSV field);
    ``allowed`` is the fixed set of values of a ``str`` column (``None``: any)."""

    name: str
    kind: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Schema:
    """A table: its ``name`` (a key of :data:`FILES`), its columns in order, ``key``
    (columns that identify a row: no two rows share them), ``runs`` (whether every row
    belongs to one planned run, by ``run_id``), ``total`` (a count column that adds up
    to the planned runs) and ``open`` (columns beyond the listed ones are allowed: the
    listed ones must be there, in any order)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    runs: bool = False
    total: str | None = None
    open: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _cols(spec: str, kind: str, nullable: bool = False) -> tuple[Column, ...]:
    return tuple(Column(n, kind, nullable) for n in spec.split())


#: ``trajectories.parquet`` and each shard's ``.parquet``: logged iterates per run.
TRAJECTORIES = Schema(
    "trajectories",
    (
        Column("run_id", "str"),
        Column("iteration", "int"),
        # NaN where an iterate overflowed (the run diverged there, theory.md 12)
        *_cols(
            "loss excess_loss grad_norm product_norm max_weight_norm balance_drift",
            "float",
            nullable=True,
        ),
        Column("rank", "int"),
    ),
    key=("run_id", "iteration"),
    runs=True,
)

#: ``thresholds.csv`` and each threshold shard's table: one row per start of the search.
THRESHOLDS = Schema(
    "thresholds",
    (
        *_cols("run_id family dataset widths", "str"),
        Column("depth", "int"),
        Column("init", "str", allowed=INIT_KINDS),
        *_cols("init_scale init_spread init_xi", "float"),
        Column("seed", "int"),
        Column("eta_cert", "float"),
        *_cols("critical_eta critical_multiple", "float", nullable=True),
        Column("critical_at_upper_end", "bool"),
        *_cols("sharpness_reached critical_times_sharpness", "float", nullable=True),
        *_cols("eps0 delta0 sharpness eos_eta eos_eta_max", "float"),
        Column("acgh_eta", "float", nullable=True),
        Column("acgh_reason", "str", nullable=True),
        Column("acgh_eta_near_target", "float", nullable=True),
        Column("acgh_near_target_reason", "str", nullable=True),
        # the adaptive schedule from the same start (theory.md 14); NaN: not measured, or
        # (iterations_cert) the constant eta_cert run did not converge within its budget
        *_cols(
            "eta_adaptive_free eta_adaptive_start eta_adaptive_max eta_adaptive_end "
            "iterations_adaptive iterations_cert",
            "float",
            nullable=True,
        ),
    ),
    key=("run_id",),
    runs=True,
)

#: Columns of a grid cell (all seeds of one setting), first columns of the aggregates.
CELL = (
    *_cols("experiment dataset", "str"),
    Column("depth", "int"),
    Column("widths", "str"),
    Column("init", "str", allowed=INIT_KINDS),
    Column("init_scale", "float"),
    Column("init_rank", "int"),
    *_cols("init_xi init_spread", "float"),
    Column("step_rule", "str", allowed=STEP_RULES),
    Column("step_multiple", "float"),
)

#: The cell's step columns: in runs.csv they follow the start's columns and ``seed``.
_STEP = ("step_rule", "step_multiple")

#: ``runs.csv`` (one row per run; pipeline.md, "Output contracts"), also each shard's
#: ``summary.csv``: ``run_id``, the :data:`CELL` columns with ``seed`` before the step
#: columns, then the run's own. ``step_unit`` says what ``step_multiple`` multiplies:
#: the run's certified step (``eta_bound``) or 1 (an absolute step, ``eta``).
RUNS = Schema(
    "runs",
    (
        Column("run_id", "str"),
        *(c for c in CELL if c.name not in _STEP),
        Column("seed", "int"),
        *(c for c in CELL if c.name in _STEP),
        Column("step_unit", "str", allowed=STEP_UNITS),
        *_cols("eta eta_bound eos_eta eos_eta_max", "float"),
        Column("iterations", "int"),
        Column("budget_capped", "bool"),
        *_cols("gtol flow_time", "float"),
        Column("status", "str", allowed=STATUSES),
        *_cols("initial_loss eps0 delta0", "float"),
        Column("final_loss", "float", nullable=True),  # NaN: values overflowed (diverged)
        Column("optimal_loss", "float"),
        *_cols("final_rank target_rank", "int"),
        Column("optimal_loss_at_rank", "float", nullable=True),
        *_cols("rank_optimal global_optimal", "bool"),
        *_cols("max_weight_norm max_balance_drift", "float", nullable=True),
        *_cols("bound_drift bound_weight_norm", "float"),
        *_cols("decrease_failures drift_failures norm_failures", "int"),
        *_cols("final_grad_norm escape_level escape_time", "float", nullable=True),
        # the largest, smallest and last step taken (theory.md 11, 14); NaN without a step
        *_cols("eta_largest eta_smallest eta_final", "float", nullable=True),
    ),
    key=("run_id",),
    runs=True,
)


def _without(columns: Sequence[Column], name: str) -> tuple[Column, ...]:
    return tuple(c for c in columns if c.name != name)


CONVERGENCE_STATS = Schema(
    "convergence_stats",
    (
        *CELL,
        Column("n_runs", "int"),
        *_cols(
            "frac_converged frac_diverged frac_budget_exhausted frac_global_optimal "
            "frac_rank_optimal frac_decrease_kept",
            "float",
        ),
        *_cols("iterations_q10 iterations_q50 iterations_q90", "float", nullable=True),
    ),
    key=tuple(c.name for c in CELL),
    total="n_runs",
)

RANK_STATS = Schema(
    "rank_stats",
    (
        *_without(CELL, "step_multiple"),
        Column("status", "str", allowed=STATUSES),
        Column("final_rank", "int"),
        *_cols("n_runs n_rank_optimal n_global_optimal target_rank", "int"),
        Column("frac_of_cell", "float"),
    ),
    key=(*(c.name for c in _without(CELL, "step_multiple")), "status", "final_rank"),
    total="n_runs",
)

ESCAPE_SCALING = Schema(
    "escape_scaling",
    (
        *_without(CELL, "init_xi"),
        *_cols("n_runs n_escaped n_levels n_levels_fitted", "int"),
        *_cols(
            "xi_min_fitted xi_max_fitted predicted_exponent fitted_exponent power_prefactor "
            "log_intercept log_slope rms_power rms_log",
            "float",
            nullable=True,
        ),
    ),
    key=tuple(c.name for c in _without(CELL, "init_xi")),
)

STEP_THRESHOLDS = Schema(
    "step_thresholds",
    (
        *_cols("family dataset", "str"),
        Column("depth", "int"),
        Column("widths", "str"),
        Column("init", "str", allowed=INIT_KINDS),
        *_cols("init_scale init_spread", "float"),
        Column("n_starts", "int"),
        *_cols("eta_cert eta_cert_min eta_cert_max", "float"),
        *_cols("critical_eta critical_eta_min critical_eta_max critical_multiple", "float", True),
        Column("n_critical_found", "int"),
        Column("eos_eta", "float"),
        Column("acgh_eta", "float", nullable=True),
        Column("acgh_defined", "int"),
        *_cols("acgh_eta_near_target sharpness_reached", "float", nullable=True),
        Column("delta0", "float"),
        Column("cert_over_critical", "float", nullable=True),
    ),
    key=("family", "dataset", "depth", "widths", "init", "init_scale", "init_spread"),
    total="n_starts",
)

CLAIMS = Schema(
    "claims",
    (
        Column("claim", "int"),
        *_cols("statement evidence", "str"),
        Column("n_runs", "int"),
        Column("measured", "str"),
        Column("verdict", "str", allowed=VERDICTS),
        Column("headline", "str"),
        Column("rule", "str"),
    ),
    key=("claim",),
)


#: Columns of a depth law fit (:func:`deeplinear.stats.depth_law`), after its group and
#: ``column``.
DEPTH_LAW_COLUMNS = (
    "n_starts", "n_depths", "depths", "p", "p_lo", "p_hi", "q", "q_lo", "q_hi",
    "log_rss_ratio", "log_rss_ratio_lo", "log_rss_ratio_hi", "decision",
)  # fmt: skip

CLAIM2_FITS = Schema(
    "claim2_fits",
    (
        Column("family", "str"),
        Column("balanced", "bool"),
        Column("column", "str"),
        *_cols("n_starts n_depths", "int"),
        Column("depths", "any", nullable=True),  # "2,3,4"; a single depth reads as a number
        *_cols(" ".join(DEPTH_LAW_COLUMNS[3:-1]), "float", nullable=True),
        Column("decision", "str"),
    ),
    key=("family", "column"),
)

#: Columns of ``claim5_onset.csv`` (:func:`deeplinear.claims.failure_onset`).
ONSET_COLUMNS = (
    "source", "family", "dataset", "depth", "widths", "n_starts", "n_paired",
    "n_converged_within", "multiples", "fail_within", "fail_above", "onset_lo", "onset_hi",
    "eos_multiple", "max_converged_over_eos", "diverged_within", "critical_times_sharpness",
    "below_bound", "above_eos", "in_window",
)  # fmt: skip

CLAIM5_ONSET = Schema(
    "claim5_onset",
    (
        Column("source", "str", allowed=("grid", "search")),
        *(Column(c, "any", nullable=True) for c in ONSET_COLUMNS[1:-3]),
        *_cols("below_bound above_eos in_window", "bool"),
    ),
)

#: ``authors.csv`` (:data:`deeplinear.authors.COLUMNS`, figure 8): the columns below are
#: required and checked; the others, which :mod:`deeplinear.authors` defines, are not
#: fixed here (``open``).
AUTHORS = Schema(
    "authors",
    (
        *_cols("experiment run_id", "str"),
        Column("depth", "int"),
        Column("seed", "int"),
        *_cols("eta eta_bound", "float"),
        Column("status", "str", allowed=STATUSES),
    ),
    key=("run_id",),
    runs=True,
    open=True,
)


#: ``authors_readings.csv`` and ``authors_points.csv`` (:mod:`deeplinear.authors`, the
#: reading search of figure 8, theory.md 15): the listed columns are checked, the
#: others (one per depth and feature) follow the config's grid (``open``).
AUTHORS_READINGS = Schema(
    "authors_readings",
    (Column("reading", "str"), Column("score", "float", nullable=True)),
    key=("reading",),
    open=True,
)
AUTHORS_POINTS = Schema(
    "authors_points",
    (Column("depth", "int"), Column("epoch", "float"), Column("loss", "float")),
    open=True,
)
#: ``authors_float32.parquet`` and ``authors_floors.csv`` (:mod:`deeplinear.authors`,
#: figure 8): experiment ``authors`` repeated in single precision, and its floors.
AUTHORS_FLOAT32 = Schema(
    "authors_float32",
    (
        *_cols("depth start iteration", "int"),
        *_cols("epoch loss", "float"),
        Column("last_change", "int"),
    ),
    key=("depth", "start", "iteration"),
)
AUTHORS_FLOORS = Schema(
    "authors_floors",
    (
        *_cols("depth start epochs", "int"),
        *_cols("final_loss flat_from flat_factor", "float"),
        *_cols(
            "fixed_from published_floor published_from floor_ratio flat_from_ratio",
            "float",
            nullable=True,
        ),
        Column("within_precision", "bool", nullable=True),
    ),
    key=("depth", "start"),
)


#: The tanh part (:mod:`deeplinear.tanh`, theory.md 16; figure 9, claim 6): the listed
#: columns are checked, the rest are :mod:`deeplinear.tanh`'s (``open``).
_TANH = ("between", "output", "identity")
TANH_SCHEMAS = (
    Schema(
        "authors_tanh_readings",
        (Column("reading", "str"), Column("score", "float", nullable=True)),
        key=("reading",),
        open=True,
    ),
    Schema(
        "authors_tanh_points",
        (Column("depth", "int"), Column("epoch", "float"), Column("loss", "float")),
        open=True,
    ),
    Schema(
        "authors_tanh_runs",
        (Column("reading", "str"), Column("depth", "int"), Column("seed", "int")),
        key=("depth", "seed"),
        open=True,
    ),
    Schema(
        "authors_tanh_trajectories",
        (Column("depth", "int"), Column("seed", "int"), Column("iteration", "int")),
        key=("depth", "seed", "iteration"),
        open=True,
    ),
    Schema(
        "tanh_sweep",
        (
            Column("activation", "str", allowed=_TANH),
            *_cols("depth seed", "int"),
            *_cols("multiple eta", "float"),
            Column("status", "str", allowed=STATUSES),
        ),
        key=("activation", "depth", "seed", "multiple"),
        open=True,
    ),
    Schema("tanh_outcomes", (Column("activation", "str", allowed=_TANH),), open=True),
    Schema(
        "tanh_critical",
        (Column("activation", "str", allowed=_TANH), *_cols("depth seed", "int")),
        key=("activation", "depth", "seed"),
        open=True,
    ),
    Schema(
        "tanh_schedule",
        (
            Column("activation", "str", allowed=_TANH),
            *_cols("depth seed decrease_violations", "int"),
        ),
        key=("activation", "depth", "seed"),
        open=True,
    ),
)


#: The registry: every table's name and file. Tables computed per experiment live in
#: ``tables/experiments/<experiment>/``, study-wide ones in ``tables/``.
FILES = {
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
    "authors_readings": "authors_readings.csv",
    "authors_points": "authors_points.csv",
    "authors_float32": "authors_float32.parquet",
    "authors_floors": "authors_floors.csv",
    "authors_tanh_readings": "authors_tanh_readings.csv",
    "authors_tanh_points": "authors_tanh_points.csv",
    "authors_tanh_runs": "authors_tanh_runs.csv",
    "authors_tanh_trajectories": "authors_tanh_trajectories.parquet",
    "tanh_sweep": "tanh_sweep.csv",
    "tanh_outcomes": "tanh_outcomes.csv",
    "tanh_critical": "tanh_critical.csv",
    "tanh_schedule": "tanh_schedule.csv",
}
EXPERIMENT_TABLES = ("runs", "trajectories", "convergence_stats", "rank_stats", "escape_scaling")
STUDY_TABLES = tuple(FILES)

_SCHEMAS = {
    s.name: s
    for s in (
        RUNS, TRAJECTORIES, CONVERGENCE_STATS, RANK_STATS, ESCAPE_SCALING, THRESHOLDS,
        STEP_THRESHOLDS, CLAIMS, CLAIM2_FITS, CLAIM5_ONSET, AUTHORS, AUTHORS_READINGS,
        AUTHORS_POINTS, AUTHORS_FLOAT32, AUTHORS_FLOORS, *TANH_SCHEMAS,
    )
}  # fmt: skip


def schema(name: str) -> Schema:
    """The schema of table ``name`` (one of :data:`STUDY_TABLES`)."""
    if name in _SCHEMAS:
        return _SCHEMAS[name]
    raise KeyError(f"no table named {name!r}; tables: {', '.join(STUDY_TABLES)}")


def file_name(name: str) -> str:
    """File name of table ``name`` (``runs`` -> ``runs.csv``)."""
    return FILES[name]


# -- digests ---------------------------------------------------------------------------


def seal_path(path: str | os.PathLike) -> str:
    """The digest record beside a table: ``<path>.sha256.json``."""
    return f"{os.fspath(path)}{SEAL_SUFFIX}"


def input_digests(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """``path -> SHA-256`` of the files a table is computed from (what its record chains)."""
    return {os.fspath(p): file_digest(p) for p in paths}


def seal(path: str | os.PathLike, inputs: Mapping[str, str] | None = None) -> None:
    """Write the digest record of the table at ``path``: its SHA-256 and the digests of
    its ``inputs`` (``path -> SHA-256``)."""
    from deeplinear import io

    record = {"file": Path(path).name, "sha256": file_digest(path), "inputs": dict(inputs or {})}
    io.write_json(record, seal_path(path))


def _rebuild(path: str | os.PathLike) -> str:
    return f"Rebuild it with: {rebuild_command(os.fspath(path))}"


def check_seal(path: str | os.PathLike) -> None:
    """Raise :class:`InputError` unless ``path`` has the SHA-256 its record holds."""
    record_path = seal_path(path)
    try:
        record = json.loads(Path(record_path).read_text())
        recorded = record["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"table {path} has no readable digest record {record_path} ({type(err).__name__}: "
            f"{err}): it was not written by this version of the workflow. {_rebuild(path)}"
        ) from None
    actual = file_digest(path)
    if actual != recorded:
        raise InputError(
            f"table {path} was changed after its rule wrote it (SHA-256 {actual[:16]}..., "
            f"recorded {recorded[:16]}... in {record_path}). {_rebuild(path)}"
        )


# -- schema checks ---------------------------------------------------------------------


def _csv_rows(path: Path, width: int) -> None:
    """Raise :class:`InputError` naming the line of the first row of ``path`` whose number
    of fields differs from ``width`` (the header's), or if the file ends inside a row (no
    final newline: every table writer ends its last row with one)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    cut = bool(text) and not text.endswith("\n")
    lines = text.splitlines()
    reader = csv.reader(lines)
    for row in reader:
        if len(row) != width:
            last = reader.line_num == len(lines)
            why = "the file ends inside it: it was cut short" if cut and last else "cut or edited"
            raise InputError(
                f"table {path}, line {reader.line_num}: {len(row)} fields, the header has "
                f"{width} ({why}). {_rebuild(path)}"
            )
    if cut:
        raise InputError(
            f"table {path}: the last line ends without a newline (the file was cut short). "
            f"{_rebuild(path)}"
        )


def _bad_values(column: Column, series: pd.Series) -> tuple[str, pd.Series] | None:
    """``(problem, mask of bad rows)`` of one column, or ``None``."""
    import pandas as pd

    missing = series.isna()
    if missing.any() and not column.nullable:
        return "empty (NaN) where the schema allows none", missing
    present = series[~missing]
    if column.kind == "int":
        ok = pd.api.types.is_integer_dtype(present) and not pd.api.types.is_bool_dtype(present)
        if not ok:
            num = pd.to_numeric(present, errors="coerce")
            bad = num.isna() | (num != num.round())
            return "not an integer", bad.reindex(series.index, fill_value=False)
    elif column.kind == "float":
        if pd.api.types.is_bool_dtype(present) or not pd.api.types.is_numeric_dtype(present):
            bad = pd.to_numeric(present, errors="coerce").isna()
            return "not a number", bad.reindex(series.index, fill_value=False)
    elif column.kind == "bool":
        if not pd.api.types.is_bool_dtype(present):
            bad = ~present.astype(str).isin(["True", "False"])
            return "not True/False", bad.reindex(series.index, fill_value=False)
    if column.allowed is not None:
        bad = ~present.astype(str).isin(column.allowed)
        if bad.any():
            shown = ", ".join(map(repr, column.allowed))
            return f"not one of {shown}", bad.reindex(series.index, fill_value=False)
    return None


def check_frame(table: pd.DataFrame, spec: Schema, source: str | os.PathLike) -> None:
    """Raise :class:`InputError` naming ``source`` unless ``table`` has exactly the columns
    of ``spec`` (in order), values of their kinds and allowed values, no NaN where the
    schema has none and no two rows with the same key."""
    names = list(spec.names)
    if spec.open:
        names = [*names, *(c for c in table.columns if c not in names)]
        if list(table.columns) != names and set(table.columns) == set(names):
            names = list(table.columns)  # listed columns present, order not fixed
    if list(table.columns) != names:
        missing = [c for c in names if c not in table.columns]
        extra = [c for c in table.columns if c not in names]
        what = (
            f"columns missing: {', '.join(missing) or 'none'}; unexpected: "
            f"{', '.join(map(str, extra)) or 'none'}"
            if missing or extra
            else "columns in another order"
        )
        raise InputError(
            f"table {source} does not have the columns of table {spec.name!r} ({what}): it was "
            f"written by another version of the code. {_rebuild(source)}"
        )
    if not len(table):
        return
    csv_line = str(source).endswith(".csv")
    for column in spec.columns:
        if column.kind == "any" and column.allowed is None:
            continue
        found = _bad_values(column, table[column.name])
        if found is not None and found[1].any():
            problem, mask = found
            first = int(mask.to_numpy().nonzero()[0][0])
            where = f"line {first + 2}" if csv_line else f"row {first}"
            value = table[column.name].iloc[first]
            raise InputError(
                f"table {source}, {where}, column {column.name}: {value!r} is {problem} "
                f"({int(mask.sum())} such row(s)). {_rebuild(source)}"
            )
    if spec.key:
        dup = table.duplicated(list(spec.key))
        if dup.any():
            first = int(dup.to_numpy().nonzero()[0][0])
            where = f"line {first + 2}" if csv_line else f"row {first}"
            key = ", ".join(f"{k} = {table[k].iloc[first]!r}" for k in spec.key)
            raise InputError(
                f"table {source}, {where}: a second row with {key} ({int(dup.sum())} "
                f"duplicated row(s)). {_rebuild(source)}"
            )


def check_runs(
    table: pd.DataFrame, expected: Iterable[str], source: str | os.PathLike, what: str = "plan"
) -> None:
    """Raise :class:`InputError` naming ``source`` unless the ``run_id`` of ``table`` are
    exactly the runs ``expected`` (a run may have several rows only in a trajectory table,
    whose key includes the iteration; :func:`check_frame` checks keys)."""
    ids = table["run_id"].astype(str)
    expected = set(map(str, expected))
    present = set(ids)
    problems = []
    for label, found in (
        ("missing", sorted(expected - present)),
        ("unexpected", sorted(present - expected)),
    ):
        if found:
            shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            problems.append(f"{len(found)} {label} run(s) ({shown})")
    if problems:
        raise InputError(
            f"table {source} does not match the {what}: {'; '.join(problems)}; it has "
            f"{len(present & expected)} of the {len(expected)} planned runs. {_rebuild(source)}"
        )


def check_total(table: pd.DataFrame, spec: Schema, count: int, source) -> None:
    """Raise :class:`InputError` unless the counts ``spec.total`` of ``table`` add up to
    ``count`` (the planned runs or starts the table summarizes)."""
    total = int(table[spec.total].sum()) if len(table) else 0
    if total != count:
        raise InputError(
            f"table {source} counts {total} runs in column {spec.total}, the plan has "
            f"{count}. {_rebuild(source)}"
        )


# -- reading and writing ---------------------------------------------------------------


def read(
    path: str | os.PathLike,
    name: str,
    expected: Iterable[str] | None = None,
    count: int | None = None,
    sealed: bool = True,
) -> pd.DataFrame:
    """Table ``name`` at ``path``, checked: its digest record (``sealed``), its schema
    (:func:`check_frame`; for a CSV every row has the header's number of fields) and, if
    given, the planned runs ``expected`` (:func:`check_runs`) or the planned ``count`` of
    a table of counts (:func:`check_total`). Returns the frame as ``pandas`` reads it."""
    from deeplinear import io

    path = Path(path)
    spec = schema(name)
    problems = []
    frame = None
    try:
        if path.suffix == ".csv" and path.is_file():
            _csv_rows(path, _header_width(path))
        frame = io.read_table(path)
        check_frame(frame, spec, path)
        if expected is not None and spec.runs:
            check_runs(frame, expected, path)
        if count is not None and spec.total:
            check_total(frame, spec, count, path)
    except InputError as err:
        problems.append(str(err))
    if sealed and path.is_file():
        try:
            check_seal(path)
        except InputError as err:
            problems.append(str(err))
    if problems:
        raise InputError(" Also: ".join(problems))
    return frame


def _header_width(path: Path) -> int:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh), [])
    return len(header)


def write(
    table: pd.DataFrame,
    path: str | os.PathLike,
    name: str,
    inputs: Mapping[str, str] | None = None,
) -> None:
    """Check ``table`` against the schema of ``name``, write it atomically (CSV or Parquet
    by the suffix of ``path``) and its digest record with the digests of ``inputs``."""
    from deeplinear import io

    check_frame(table, schema(name), path)
    if Path(path).suffix == ".parquet":
        io.write_parquet(table, path)
    else:
        io.write_csv(table, path)
    seal(path, inputs)


# -- expectations from the plan ------------------------------------------------------------


def planned_ids(plan: Plan, name: str, experiments: Sequence[str] | None = None) -> list[str]:
    """Run ids a table of ``name`` must hold: the runs of ``experiments`` (all experiments
    if ``None``) for tables of runs, the threshold search's starts for ``thresholds`` and
    ``step_thresholds``."""
    if name in ("thresholds", "step_thresholds"):
        return [r.run_id for r in plan.threshold.runs]
    names = list(plan.experiments) if experiments is None else list(experiments)
    return [rid for e in names for rid in plan.run_ids(e)]


def ids_digest(ids: Iterable[str]) -> str:
    """Short digest of a set of run ids (sorted, one per line)."""
    return hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()[:16]


def expectation(name: str, ids: Sequence[str]) -> dict:
    """What a reader checks a table of ``name`` against (JSON-ready): the number of
    planned runs and a digest of their ids (:func:`check_expectation`)."""
    return {"table": name, "runs": len(ids), "ids": ids_digest(ids)}


def check_expectation(path: str | os.PathLike, exp: Mapping) -> pd.DataFrame:
    """:func:`read` of table ``exp["table"]`` at ``path`` against an :func:`expectation`:
    a table of runs must hold ``exp["runs"]`` runs with the id digest ``exp["ids"]``, a
    table of counts must count ``exp["runs"]`` runs; other tables only their schema."""
    spec = schema(exp["table"])
    frame = read(path, spec.name, count=exp["runs"] if spec.total else None)
    if spec.runs:
        ids = frame["run_id"].astype(str)
        if ids.nunique() != exp["runs"] or ids_digest(ids) != exp["ids"]:
            raise InputError(
                f"table {path} does not match the plan: it has {ids.nunique()} distinct runs, "
                f"the plan has {exp['runs']} (run id digest {ids_digest(ids)}, planned "
                f"{exp['ids']}). {_rebuild(path)}"
            )
    return frame


def main(argv: list[str] | None = None) -> int:
    """``python -m deeplinear.tables check --expect JSON``: check each table of the JSON
    object ``{path: expectation}`` (:func:`check_expectation`); exit 1 with the problem
    named, no traceback."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "check" or args[1] != "--expect":
        print("usage: python -m deeplinear.tables check --expect JSON", file=sys.stderr)
        return 2
    try:
        for path, exp in json.loads(args[2]).items():
            check_expectation(path, exp)
            print(f"{path}: {exp['table']} checked ({exp['runs']} planned runs)")
    except InputError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
