"""The authors' own experiment (figure 8): where their step size sits in our theory, and
what their curves show in numbers (theory.md 6, 9, 13; pipeline.md, "Figures").

The first author publishes loss and product-norm curves of linear networks of dimension 70,
rank 35, depths 2, 3, 5, at the constant step ``3e-5`` for ``10^6`` iterations. The
experiment ``authors`` of the config replays that setting (config/README.md gives the
reading of the parts the figures leave open). These pure functions turn its ``runs.csv``
and ``trajectories.parquet`` rows, and the critical steps of the same starts
(:func:`deeplinear.experiments.critical_steps`), into the table ``authors.csv``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deeplinear import gd, init, theory
from deeplinear.data import Dataset
from deeplinear.errors import InputError
from deeplinear.experiments import initial_weights, starts_and_bounds, widths_of
from deeplinear.plan import UNUSED, Run, StepSearch, _init_fields
from deeplinear.search import bisect_log_step, probe_runs

#: Excess-loss level whose first passage ``authors.csv`` reports (``iterations_to_excess``).
EXCESS_LEVEL = 1e-6
#: A plateau spans at least this factor in iterations ``k + 1`` ...
PLATEAU_FACTOR = 10.0
#: ... while the loss changes by less than this fraction (``max / min - 1``).
PLATEAU_CHANGE = 0.1

#: Where a step size sits relative to the certified bound and the measured critical step.
INSIDE = "inside the certified bound"
BETWEEN = "between the certified bound and the critical step"
ABOVE_CRITICAL = "above the critical step"
ABOVE_UNMEASURED = "above the certified bound, below the proven edge (critical step not measured)"
ABOVE_EDGE = "above the proven edge of stability"

#: Columns of ``authors.csv``, in order: one row per run of the authors' experiments.
COLUMNS = (
    "experiment",
    "run_id",
    "depth",
    "widths",
    "seed",
    "eta",
    "eta_bound",
    "critical_eta",
    "sharpness_reached",
    "eos_eta_reached",
    "eos_eta",
    "eos_eta_max",
    "stable_eta",
    "stable_at_upper_end",
    "eta_over_bound",
    "eta_over_critical",
    "eta_over_stable",
    "eta_over_eos_reached",
    "eta_over_eos",
    "position",
    "iterations",
    "status",
    "initial_loss",
    "final_loss",
    "final_excess",
    "iterations_to_excess",
    "product_norm_min",
    "product_norm_max",
    "product_norm_final",
    "plateaus",
    "plateau_level",
    "plateau_start",
    "plateau_factor",
)


def by_architecture(runs: Sequence[Run]) -> list[tuple[Run, ...]]:
    """``runs`` grouped by depth and hidden width (what one engine batch can hold), in the
    order of first appearance."""
    groups: dict[tuple[int, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.depth, run.hidden), []).append(run)
    return [tuple(g) for g in groups.values()]


def stable_steps(runs: Sequence[Run], ds: Dataset, search: StepSearch) -> pd.DataFrame:
    """Largest constant step at which GD from each start does not diverge within its budget
    ``min(ceil(T / eta), max_iter)`` (``search.settings``), per run of one architecture.

    Where convergence to a global minimizer is too slow for the critical step of
    :func:`deeplinear.experiments.critical_steps` (a target of lower rank than the network:
    the other singular values of the product decay only like a power of the time), this is
    the step-size limit the run can still show. Bisection on ``log(eta)`` between the
    certified step (GD cannot diverge there, theory.md 6) and ``search.hi`` times the proven
    edge of stability ``eos_eta_max`` (theory.md 13) to relative precision ``search.rtol``;
    divergence is the engine's (loss non-finite or ``1e8`` times its start).
    ``stable_at_upper_end`` flags starts that did not diverge even at the upper end.
    Returns ``run_id, stable_eta, stable_at_upper_end``.
    """
    settings = search.settings
    prob, widths, starts, bounds = starts_and_bounds(runs, ds, settings)
    lo = np.array([b.eta for b in bounds])
    top = search.hi * theory.edge_of_stability_max(prob, len(widths) - 1)
    hi = np.full(lo.size, top)

    def stays(eta: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return probe_runs(ds, prob, starts, settings, eta, idx).status != gd.DIVERGED

    at_top = stays(hi, np.arange(lo.size))
    lo[at_top] = hi[at_top]
    lo, hi = bisect_log_step(stays, lo, hi, search.rtol)
    return pd.DataFrame(
        {"run_id": [r.run_id for r in runs], "stable_eta": lo, "stable_at_upper_end": at_top}
    )


def position(eta: float, eta_bound: float, critical_eta: float, eos_eta_max: float) -> str:
    """Where the step ``eta`` sits: inside the certified bound ``eta_bound`` (theory.md 6),
    between it and the measured ``critical_eta`` (largest converging constant step), above
    that, or (critical step NaN: not measured) above the bound; above ``eos_eta_max`` no
    constant step converges (theory.md 13)."""
    if eta <= eta_bound:
        return INSIDE
    if not math.isnan(critical_eta):
        return BETWEEN if eta <= critical_eta else ABOVE_CRITICAL
    return ABOVE_EDGE if eta > eos_eta_max else ABOVE_UNMEASURED


def first_below(iteration: np.ndarray, values: np.ndarray, level: float) -> float:
    """First logged ``iteration`` at which ``values < level`` (NaN if never): a first passage
    to the resolution of the log grid."""
    below = np.flatnonzero(np.asarray(values) < level)
    return float(np.asarray(iteration)[below[0]]) if below.size else math.nan


def plateaus(
    iteration: np.ndarray,
    loss: np.ndarray,
    factor: float = PLATEAU_FACTOR,
    change: float = PLATEAU_CHANGE,
) -> pd.DataFrame:
    """Plateaus of a logged loss curve: stretches of consecutive logged iterates, at least
    ``factor`` long in ``k = iteration + 1`` (a plateau is a flat stretch on the log-x axis
    of figure 8), over which the loss changes by less than ``change`` (``max / min - 1``).

    Scanning from the left, each plateau is the longest such stretch starting at the first
    iterate not inside an earlier plateau, so plateaus do not overlap. Returns one row per
    plateau: ``start``, ``end`` (iterations), ``factor`` (``(end + 1) / (start + 1)``) and
    ``level`` (geometric mean of the loss over the stretch). ``loss`` must be positive.
    """
    k = np.asarray(iteration, dtype=float) + 1.0
    L = np.asarray(loss, dtype=float)
    rows = []
    i, n = 0, L.size
    while i < n:
        j, lo, hi = i, L[i], L[i]
        while j + 1 < n and max(hi, L[j + 1]) / min(lo, L[j + 1]) - 1.0 < change:
            j += 1
            lo, hi = min(lo, L[j]), max(hi, L[j])
        if k[j] / k[i] >= factor:
            level = float(np.exp(np.mean(np.log(L[i : j + 1]))))
            rows.append((int(k[i] - 1), int(k[j] - 1), float(k[j] / k[i]), level))
            i = j + 1
        else:
            i += 1
    return pd.DataFrame(rows, columns=["start", "end", "factor", "level"])


def curve_numbers(iteration: np.ndarray, loss: np.ndarray, product_norm: np.ndarray,
                  optimal_loss: float) -> dict[str, float]:  # fmt: skip
    """What one run's logged curves show: first iteration with excess loss
    ``loss - optimal_loss`` below :data:`EXCESS_LEVEL`, final excess, min / max / final
    spectral norm of the product, and its plateaus (:func:`plateaus`) after the first: the
    stretch containing iteration 0 is the start, flat on a log-x axis only because ``eta k``
    is still small, and is not counted. ``plateau_*`` describe the longest counted one."""
    iteration, loss = np.asarray(iteration), np.asarray(loss, dtype=float)
    excess = loss - optimal_loss
    flat = plateaus(iteration, loss)
    flat = flat[flat["start"] > iteration[0]]
    longest = flat.loc[flat["factor"].idxmax()] if len(flat) else None
    return {
        "final_excess": float(excess[-1]),
        "iterations_to_excess": first_below(iteration, excess, EXCESS_LEVEL),
        "product_norm_min": float(np.min(product_norm)),
        "product_norm_max": float(np.max(product_norm)),
        "product_norm_final": float(np.asarray(product_norm)[-1]),
        "plateaus": len(flat),
        "plateau_level": math.nan if longest is None else float(longest["level"]),
        "plateau_start": math.nan if longest is None else float(longest["start"]),
        "plateau_factor": math.nan if longest is None else float(longest["factor"]),
    }


def table(runs: pd.DataFrame, trajectories: pd.DataFrame, critical: pd.DataFrame) -> pd.DataFrame:
    """``authors.csv``: one row per run of ``runs`` (runs.csv rows), with its start's
    ``critical_eta`` and ``sharpness_reached`` (rows of ``critical_steps`` keyed by
    ``run_id``, joined with the :func:`stable_steps` columns), the ratios of the run's step
    to the certified bound, the critical step, the largest non-diverging step,
    ``2 / sharpness_reached`` and ``eos_eta`` (2/S of the balanced minimizer), the
    :func:`position` and the :func:`curve_numbers` of its trajectory."""
    crit = critical.set_index("run_id")
    by_run = dict(tuple(trajectories.groupby("run_id")))
    rows = []
    for run in runs.itertuples(index=False):
        c = crit.loc[run.run_id]
        t = by_run[run.run_id].sort_values("iteration")
        eos_reached = 2.0 / c["sharpness_reached"]
        rows.append(
            {
                "experiment": run.experiment,
                "run_id": run.run_id,
                "depth": run.depth,
                "widths": run.widths,
                "seed": run.seed,
                "eta": run.eta,
                "eta_bound": run.eta_bound,
                "critical_eta": c["critical_eta"],
                "sharpness_reached": c["sharpness_reached"],
                "eos_eta_reached": eos_reached,
                "eos_eta": run.eos_eta,
                "eos_eta_max": run.eos_eta_max,
                "stable_eta": c["stable_eta"],
                "stable_at_upper_end": c["stable_at_upper_end"],
                "eta_over_bound": run.eta / run.eta_bound,
                "eta_over_critical": run.eta / c["critical_eta"],
                "eta_over_stable": run.eta / c["stable_eta"],
                "eta_over_eos_reached": run.eta / eos_reached,
                "eta_over_eos": run.eta / run.eos_eta,
                "position": position(run.eta, run.eta_bound, c["critical_eta"], run.eos_eta_max),
                "iterations": run.iterations,
                "status": run.status,
                "initial_loss": run.initial_loss,
                "final_loss": run.final_loss,
                **curve_numbers(
                    t["iteration"].to_numpy(),
                    t["loss"].to_numpy(),
                    t["product_norm"].to_numpy(),
                    run.optimal_loss,
                ),
            }
        )
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.sort_values(["experiment", "depth", "seed"], ignore_index=True)


def depth_labels(table: pd.DataFrame) -> dict[int, str]:
    """Legend label per depth of figure 8: ``N = 2: eta = 0.003 eta_cert`` with the median
    over seeds of ``eta_over_bound`` (rows of ``authors.csv`` of one experiment)."""
    ratio = table.groupby("depth")["eta_over_bound"].median()
    return {int(N): f"N = {int(N)}: $\\eta$ = {r:.2g} $\\eta_{{cert}}$" for N, r in ratio.items()}


# --- The reading search (theory.md 15; config/README.md) ----------

#: Columns of the digitized published loss points (``data/authors_published_loss.csv``).
PUBLISHED_COLUMNS = (
    "depth", "epoch", "loss", "feature", "bound", "epoch_factor", "loss_factor", "source",
)  # fmt: skip
#: ``bound`` of a published point: the curve should pass through it (``point``) or be at or
#: below its loss by its epoch (``at_most``: a flat floor of single-precision rounding,
#: which stops a descent but cannot make it faster, so a float64 curve only has to be there).
POINT, AT_MOST = "point", "at_most"
#: Losses at or below this are left out of the scaled-vs-unscaled comparison (float64
#: rounding; every published loss is above it).
GAP_FLOOR = 1e-10
#: Published features, in the order of the table's per-feature columns.
FEATURES = ("start", "descent", "shoulder", "plateau", "drop", "floor")


def read_published(path) -> pd.DataFrame:
    """The digitized published loss points: one row per point with :data:`PUBLISHED_COLUMNS`
    (``epoch`` and ``loss`` read off a log-log figure to within the factors
    ``epoch_factor`` and ``loss_factor``). Raises :class:`InputError` naming the file and
    the line of a bad row."""
    try:
        pts = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as err:
        raise InputError(f"{path}: cannot read the published points: {err}") from None
    missing = [c for c in PUBLISHED_COLUMNS if c not in pts.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    for i, row in pts.iterrows():
        line = int(i) + 2  # the header is line 1
        values = [row["epoch"], row["loss"], row["epoch_factor"], row["loss_factor"]]
        ok = all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values)
        if not ok or row["epoch_factor"] <= 1 or row["loss_factor"] <= 1:
            raise InputError(f"{path}, line {line}: epoch, loss > 0 and factors > 1 needed")
        if row["bound"] not in (POINT, AT_MOST) or row["feature"] not in FEATURES:
            raise InputError(
                f"{path}, line {line}: bound must be one of {[POINT, AT_MOST]} and feature "
                f"one of {list(FEATURES)}, got {row['bound']!r}, {row['feature']!r}"
            )
    return pts[list(PUBLISHED_COLUMNS)]


def point_distance(epoch: np.ndarray, loss: np.ndarray, point: pd.Series) -> float:
    """Distance of one published ``point`` from a loss curve, in units of its reading
    precision (theory.md 15, "The reading score").

    The curve (``epoch`` increasing, ``loss > 0``) is the polyline through
    ``(log10 epoch, log10 loss)``; both axes are divided by the point's reading precision
    (``log10 epoch_factor``, ``log10 loss_factor``) and the distance is the Euclidean
    distance from the point to the polyline: 1 means "off by one reading precision", and
    a steep drop missed by a small shift in epochs counts as the small shift it is. A point
    with ``bound == "at_most"`` is at distance 0 when the curve at its epoch (linear
    interpolation in log-log, the last value after the curve's end) is at or below its
    loss, and at the polyline distance otherwise. NaN when the curve has no point.
    """
    ex, ly = math.log10(point["epoch_factor"]), math.log10(point["loss_factor"])
    x = np.log10(np.asarray(epoch, dtype=float)) / ex
    y = np.log10(np.maximum(np.asarray(loss, dtype=float), np.finfo(float).tiny)) / ly
    if x.size == 0:
        return math.nan
    px, py = math.log10(point["epoch"]) / ex, math.log10(point["loss"]) / ly
    if point["bound"] == AT_MOST and np.interp(px, x, y) <= py:
        return 0.0
    if x.size == 1:
        return float(math.hypot(x[0] - px, y[0] - py))
    x0, y0, dx, dy = x[:-1], y[:-1], np.diff(x), np.diff(y)
    seg2 = dx * dx + dy * dy
    safe = np.where(seg2 > 0, seg2, 1.0)
    s = np.clip(np.where(seg2 > 0, ((px - x0) * dx + (py - y0) * dy) / safe, 0.0), 0.0, 1.0)
    return float(np.min(np.hypot(x0 + s * dx - px, y0 + s * dy - py)))


def reading_score(curves: pd.DataFrame, points: pd.DataFrame) -> dict[str, float]:
    """Score of one reading: how far its loss curves lie from the published points.

    ``curves`` has columns ``depth, epoch, loss`` (the reading's curve per depth, in the
    published epochs: ``epoch = eta k / eta_published + 1`` for a run at step ``eta``);
    ``points`` rows of :func:`read_published`. Returns ``score``, the mean over the points
    of the squared :func:`point_distance` (0 when the curves pass within reading precision
    of every point's centre; a point one reading precision off adds ``1 / n``), ``score_N``
    per depth (same mean over that depth's points) and one entry per feature of
    :data:`FEATURES` (root mean square distance over its points, NaN without points). A
    depth missing from ``curves`` makes its points NaN and the score NaN.
    """
    by_depth = {int(N): g.sort_values("epoch") for N, g in curves.groupby("depth")}
    d = np.array(
        [
            point_distance(by_depth[int(p.depth)]["epoch"], by_depth[int(p.depth)]["loss"],
                           pd.Series(p._asdict()))
            if int(p.depth) in by_depth else math.nan
            for p in points.itertuples(index=False)
        ]
    )  # fmt: skip
    out = {"score": float(np.mean(d**2))}
    for N in sorted(points["depth"].unique()):
        out[f"score_N{int(N)}"] = float(np.mean(d[(points["depth"] == N).to_numpy()] ** 2))
    for feature in FEATURES:
        sel = (points["feature"] == feature).to_numpy()
        out[feature] = float(np.sqrt(np.mean(d[sel] ** 2))) if sel.any() else math.nan
    return out


#: Columns of ``authors_readings.csv``, in order (then one column per feature of
#: :data:`FEATURES` and ``score_N<depth>`` per depth).
READING_COLUMNS = (
    "reading", "dataset", "hidden_width", "init", "experiment", "rank", "best", "score",
    "starts", "score_worst_start", "scaled", "step_scales", "max_log10_scaled_vs_unscaled",
)  # fmt: skip


def reading_runs(
    readings: Mapping[str, Any], depths: Sequence[int], starts: int = 1
) -> dict[str, list[Run]]:
    """The runs of the reading search: per reading of the config's
    ``authors_readings.readings`` (``name, dataset, hidden_width, init``), one run per
    seed ``0 .. starts - 1`` and depth (seed-major). The start of seed ``s`` is the start
    of seed ``s`` of an experiment with the same dataset, width and init
    (:meth:`deeplinear.plan.Run.init_seed` hashes only those), so the reading that becomes
    experiment ``authors`` is scored on that experiment's first ``starts`` starts.
    """
    out: dict[str, list[Run]] = {}
    for reading in readings:
        if reading["name"] in out:
            raise InputError(f"config key authors_readings: reading {reading['name']!r} twice")
        out[reading["name"]] = [
            Run(
                experiment="authors_readings", dataset=reading["dataset"], depth=int(N),
                hidden=int(reading["hidden_width"]), **_init_fields(reading["init"], int(N)),
                seed=seed, step_rule="constant", tau=UNUSED["tau"], alpha=UNUSED["alpha"],
                step_multiple=1.0, step_unit="absolute",
            )
            for seed in range(starts)
            for N in depths
        ]  # fmt: skip
    return out


def reading_curve(run: Run, ds: Dataset, eta: float, step_scale: float, epochs: int,
                  base_seed: int, log_points: int) -> pd.DataFrame:  # fmt: skip
    """One reading's loss curve at one depth, run at the scaled step (theory.md 15):
    ``step_scale * eta`` for ``ceil(epochs / step_scale)`` iterations, which covers the
    gradient-flow time ``eta * epochs`` of ``epochs`` published epochs as long as the
    scaled step stays far below the edge of stability (the loss is a function of ``eta k``
    there). No convergence stop; guarantees not checked (a curve is all that is read).
    Returns ``depth, iteration, epoch, loss, product_norm`` with
    ``epoch = step_scale * iteration + 1`` (the published axis, epoch 1 = the start)."""
    widths = widths_of(run, ds)
    W = init.stack([initial_weights(run, widths, base_seed)])
    iters = math.ceil(epochs / step_scale)
    res = gd.run(ds.X, ds.Y, W, step_scale * eta, iters, gtol=0.0, ftol=0.0,
                 log_points=log_points, check_guarantees=False)  # fmt: skip
    t = res.trajectory
    return pd.DataFrame(
        {
            "depth": run.depth,
            "iteration": t["iteration"].to_numpy(),
            "epoch": step_scale * t["iteration"].to_numpy() + 1.0,
            "loss": t["loss"].to_numpy(),
            "product_norm": t["product_norm"].to_numpy(),
        }
    )


def log_loss_gap(
    epoch_a: np.ndarray,
    loss_a: np.ndarray,
    epoch_b: np.ndarray,
    loss_b: np.ndarray,
    above: float = GAP_FLOOR,
) -> float:
    """``max |log10 L_a - log10 L_b|`` over the logged epochs of curve ``b`` inside the
    range of curve ``a`` (``a`` interpolated linearly in log-log) where ``L_b > above``:
    how far a scaled-step curve is from the unscaled one (theory.md 15). Below ``above``
    (default :data:`GAP_FLOOR`, under every published loss) both sit in float64 rounding,
    where the two step sizes round differently. NaN without common epochs."""
    xa, xb = np.log10(np.asarray(epoch_a, float)), np.log10(np.asarray(epoch_b, float))
    Lb = np.asarray(loss_b, float)
    inside = (xb >= xa.min()) & (xb <= xa.max()) & (Lb > above)
    if not inside.any():
        return math.nan
    ya = np.interp(xb[inside], xa, np.log10(np.asarray(loss_a, float)))
    return float(np.max(np.abs(ya - np.log10(Lb[inside]))))


def _starts(curves: pd.DataFrame) -> list[pd.DataFrame]:
    """A reading's curves split by ``start`` (one group without that column or without
    rows)."""
    if "start" not in curves.columns or curves.empty:
        return [curves]
    return [g for _, g in curves.groupby("start", sort=True)]


def readings_table(curves: pd.DataFrame, points: pd.DataFrame, readings: Sequence[Mapping],
                   experiments: Mapping[str, str], step_scales: Sequence[float],
                   gaps: Mapping[str, float]) -> pd.DataFrame:  # fmt: skip
    """``authors_readings.csv``: one row per reading (``curves`` rows keyed by ``reading``
    and, with several starts, ``start``; columns of :func:`reading_curve`), with its
    :func:`reading_score` against ``points`` averaged over its starts (every entry: the
    mean over starts; ``starts`` their number, ``score_worst_start`` the largest score of
    one start), its ``rank`` by that mean (1 = best, ``best`` flags it), ``experiment``
    (the config's experiment that runs this reading, from ``experiments``: reading ->
    experiment name, or empty), ``scaled`` (whether any depth ran at a scaled step), the per-depth
    ``step_scales`` and ``max_log10_scaled_vs_unscaled`` (``gaps``: reading -> the
    :func:`log_loss_gap` between its scaled curve and its experiment's unscaled run, NaN
    where not measured)."""
    rows = []
    for reading in readings:
        name = reading["name"]
        c = curves[curves["reading"] == name]
        per_start = [reading_score(g, points) for g in _starts(c)]
        score = {key: float(np.mean([s[key] for s in per_start])) for key in per_start[0]}
        rows.append(
            {
                "reading": name,
                "dataset": reading["dataset"],
                "hidden_width": int(reading["hidden_width"]),
                "init": json.dumps(dict(reading["init"]), sort_keys=True),
                "experiment": experiments.get(name, ""),
                "scaled": any(s != 1 for s in step_scales),
                "step_scales": " ".join(f"{s:g}" for s in step_scales),
                "max_log10_scaled_vs_unscaled": gaps.get(name, math.nan),
                "starts": len(per_start),
                "score_worst_start": float(np.max([s["score"] for s in per_start])),
                **score,
            }
        )
    out = pd.DataFrame(rows)
    out["rank"] = out["score"].rank(method="min", na_option="bottom").astype(int)
    out["best"] = out["rank"] == 1
    rest = [c for c in out.columns if c not in READING_COLUMNS]
    return out[list(READING_COLUMNS) + rest].sort_values(["rank", "reading"], ignore_index=True)


def experiment_readings(readings: Sequence[Mapping], experiments: Mapping[str, Mapping],
                        names: Sequence[str]) -> dict[str, str]:  # fmt: skip
    """Reading name -> name of the experiment of ``names`` (validated config experiments)
    that runs it: same dataset, its only hidden width and its only init."""
    out = {}
    for reading in readings:
        for name in names:
            exp = experiments.get(name)
            if (
                exp is not None
                and exp["dataset"] == reading["dataset"]
                and list(exp["hidden_widths"]) == [reading["hidden_width"]]
                and [dict(i) for i in exp["inits"]] == [dict(reading["init"])]
            ):
                out[reading["name"]] = name
    return out


def chosen_is_best(table: pd.DataFrame, experiment: str = "authors") -> bool | None:
    """Whether the reading that ``experiment`` runs is the best-scoring one of ``table``
    (``authors_readings.csv``); None when no reading of the table is that experiment."""
    rows = table[table["experiment"] == experiment]
    return None if rows.empty else bool(rows["best"].iloc[0])


def points_table(points: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``authors_points.csv``: the published points with the loss of ``curves`` (columns
    ``depth, epoch, loss``: the chosen reading's unscaled runs, one seed) at each point's
    epoch (``model_loss``, log-log interpolation) and the :func:`point_distance`."""
    out = points.copy()
    model, dist = [], []
    for p in points.itertuples(index=False):
        c = curves[curves["depth"] == p.depth].sort_values("epoch")
        if c.empty:
            model.append(math.nan)
            dist.append(math.nan)
            continue
        x = np.log10(c["epoch"].to_numpy(float))
        y = np.log10(c["loss"].to_numpy(float))
        model.append(float(10 ** np.interp(math.log10(p.epoch), x, y)))
        dist.append(point_distance(c["epoch"], c["loss"], pd.Series(p._asdict())))
    out["model_loss"] = model
    out["distance"] = dist
    return out


def check_readings(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """The validated config's ``authors_readings`` after the checks the schema cannot
    express (each error names the key): every reading's dataset exists, ``epochs`` and
    ``step_scales`` have one entry per depth, reading names are unique."""
    ar = cfg["authors_readings"]
    n = len(ar["depths"])
    for key in ("epochs", "step_scales"):
        if len(ar[key]) != n:
            raise InputError(
                f"config key authors_readings.{key}: one entry per depth ({n}), got {len(ar[key])}"
            )
    names = [r["name"] for r in ar["readings"]]
    for i, reading in enumerate(ar["readings"]):
        if reading["dataset"] not in cfg["datasets"]:
            raise InputError(
                f"config key authors_readings.readings[{i}].dataset: unknown dataset "
                f"{reading['dataset']!r}"
            )
        if names.count(reading["name"]) > 1:
            raise InputError(
                f"config key authors_readings.readings[{i}].name: {reading['name']!r} twice"
            )
    return ar


def unscaled_curves(runs: pd.DataFrame, trajectories: pd.DataFrame, eta: float) -> pd.DataFrame:
    """Seed-0 curves of an experiment's runs (``runs.csv``, ``trajectories.parquet`` rows)
    on the published axis: ``depth, epoch, loss, product_norm`` with
    ``epoch = (run eta / eta) * iteration + 1`` (``eta`` the published step)."""
    first = runs[runs["seed"] == runs["seed"].min()][["run_id", "depth", "eta"]]
    t = trajectories.merge(first, on="run_id")
    return pd.DataFrame(
        {
            "depth": t["depth"].to_numpy(),
            "epoch": t["eta"].to_numpy() / eta * t["iteration"].to_numpy() + 1.0,
            "loss": t["loss"].to_numpy(),
            "product_norm": t["product_norm"].to_numpy(),
        }
    ).sort_values(["depth", "epoch"], ignore_index=True)


def curves_gap(scaled: pd.DataFrame, unscaled: pd.DataFrame) -> float:
    """Largest :func:`log_loss_gap` over the depths both hold (columns ``depth, epoch,
    loss``): the scaled-step search curve of a reading against its unscaled run."""
    gaps = [
        log_loss_gap(s["epoch"], s["loss"], u["epoch"], u["loss"])
        for N, s in scaled.groupby("depth")
        for M, u in unscaled.groupby("depth")
        if N == M
    ]
    gaps = [g for g in gaps if not math.isnan(g)]
    return max(gaps) if gaps else math.nan


# --- Single precision: the published floors (theory.md 15) ---------

#: A curve is on its floor where its loss stays within this factor of its final value.
FLOOR_BAND = 2.0
#: Columns of ``authors_floors.csv``, in order: one row per depth and start.
FLOOR_COLUMNS = (
    "depth", "start", "epochs", "final_loss", "flat_from", "flat_factor", "fixed_from",
    "published_floor", "published_from", "floor_ratio", "flat_from_ratio", "within_precision",
)  # fmt: skip


def float32_runs(ar: Mapping[str, Any], experiment: Sequence[Run]) -> list[Run]:
    """The runs of experiment ``authors`` (``experiment``: its runs) that figure 8 repeats
    in single precision: one per depth of ``authors_readings.depths`` (``ar``) and seed
    ``0 .. float32_starts - 1``, depth-major. Raises :class:`InputError` naming the key
    when the experiment lacks one of them."""
    out = []
    for N in ar["depths"]:
        for seed in range(ar["float32_starts"]):
            run = next((r for r in experiment if r.depth == N and r.seed == seed), None)
            if run is None:
                raise InputError(
                    "config key authors_readings.float32_starts: experiment `authors` has "
                    f"no run of depth {N} and seed {seed} to repeat in single precision"
                )
            out.append(run)
    return out


def float32_curve(run: Run, ds: Dataset, eta: float, epochs: int, base_seed: int,
                  log_points: int) -> pd.DataFrame:  # fmt: skip
    """The run's start, taken through ``epochs`` steps of the published constant step
    ``eta`` in single precision (:func:`deeplinear.gd.plain_run`; theory.md 15): the
    rows ``depth, start, iteration, epoch, loss, last_change`` (``epoch = iteration + 1``;
    ``last_change`` the last step that moved a weight, the same on every row)."""
    W0 = initial_weights(run, widths_of(run, ds), base_seed)
    res = gd.plain_run(ds.X, ds.Y, W0, eta, epochs, dtype=np.float32, log_points=log_points)
    return pd.DataFrame(
        {
            "depth": run.depth,
            "start": run.seed,
            "iteration": res.iteration,
            "epoch": res.iteration + 1.0,
            "loss": res.loss,
            "last_change": res.last_change,
        }
    )


def floors_table(curves: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """``authors_floors.csv``: per depth and start of the single-precision ``curves``
    (:func:`float32_curve` rows, ``epochs`` steps), the ``final_loss``; ``flat_from``, the
    first logged epoch from which the loss stays within :data:`FLOOR_BAND` of it, and
    ``flat_factor``, the last epoch over ``flat_from`` (how long the floor lasts: 1 for a
    curve still falling at its end); ``fixed_from``, the epoch from which no weight
    changes any more (NaN: the last step still moved one). Against the published floor of
    that depth (the ``floor`` point of ``points``: its loss ``published_floor`` and epoch
    ``published_from``; NaN if none): ``floor_ratio = final_loss / published_floor``,
    ``flat_from_ratio = flat_from / published_from`` and ``within_precision``, whether
    both are within the point's reading precision (``loss_factor``, ``epoch_factor``;
    empty without a published floor, and for a curve still falling at its last logged
    point, which shows no floor to compare)."""
    rows = []
    for (N, start), c in curves.groupby(["depth", "start"], sort=True):
        c = c.sort_values("iteration")
        loss, epoch = c["loss"].to_numpy(float), c["epoch"].to_numpy(float)
        final = float(loss[-1])
        off = np.flatnonzero((loss > FLOOR_BAND * final) | (loss < final / FLOOR_BAND))
        flat_from = float(epoch[off[-1] + 1] if off.size else epoch[0])
        last, iters = int(c["last_change"].iloc[0]), int(c["iteration"].iloc[-1])
        row = {
            "depth": int(N),
            "start": int(start),
            "epochs": iters,
            "final_loss": final,
            "flat_from": flat_from,
            "flat_factor": float(epoch[-1]) / flat_from,
            "fixed_from": float(last + 2) if last < iters - 1 else math.nan,
            "published_floor": math.nan,
            "published_from": math.nan,
            "floor_ratio": math.nan,
            "flat_from_ratio": math.nan,
            "within_precision": None,
        }
        pub = points[(points["depth"] == N) & (points["feature"] == "floor")]
        if len(pub):
            p = pub.iloc[0]
            row |= {
                "published_floor": float(p["loss"]),
                "published_from": float(p["epoch"]),
                "floor_ratio": final / p["loss"],
                "flat_from_ratio": flat_from / p["epoch"],
            }
        if len(pub) and off.size < len(loss) - 1:  # a floor to compare: flat past one point
            row["within_precision"] = bool(
                abs(math.log(row["floor_ratio"])) <= math.log(p["loss_factor"])
                and abs(math.log(row["flat_from_ratio"])) <= math.log(p["epoch_factor"])
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(FLOOR_COLUMNS))
