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

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from deeplinear import gd, theory
from deeplinear.data import Dataset
from deeplinear.experiments import starts_and_bounds
from deeplinear.plan import Run, ThresholdSearch

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


def critical_search(threshold: ThresholdSearch, runs: Sequence[Run]) -> ThresholdSearch:
    """The threshold search of the config (its ``lo``, ``hi``, ``rtol`` and settings: time,
    ``max_iter``, ``gtol``) applied to the starts of ``runs`` instead of its families."""
    return ThresholdSearch(
        families=(),
        settings=threshold.settings,
        lo=threshold.lo,
        hi=threshold.hi,
        rtol=threshold.rtol,
        runs=tuple(runs),
        shards={},
    )


def by_architecture(runs: Sequence[Run]) -> list[tuple[Run, ...]]:
    """``runs`` grouped by depth and hidden width (what one engine batch can hold), in the
    order of first appearance."""
    groups: dict[tuple[int, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.depth, run.hidden), []).append(run)
    return [tuple(g) for g in groups.values()]


def stable_steps(runs: Sequence[Run], ds: Dataset, search: ThresholdSearch) -> pd.DataFrame:
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

    def diverges(eta: np.ndarray, idx: np.ndarray) -> np.ndarray:
        res = gd.run(
            ds.X, ds.Y, [Wj[idx] for Wj in starts], eta[idx],
            [settings.budget(e) for e in eta[idx]], gtol=settings.gtol, log_points=2,
            problem=prob, check_guarantees=False,  # a probe reads statuses and weights
        )  # fmt: skip
        return res.status == gd.DIVERGED

    at_top = ~diverges(hi, np.arange(lo.size))
    lo[at_top] = hi[at_top]
    while np.any(open_ := hi / lo > 1 + search.rtol):
        idx = np.flatnonzero(open_)
        mid = np.sqrt(lo * hi)
        bad = diverges(mid, idx)
        hi[idx[bad]] = mid[idx[bad]]
        lo[idx[~bad]] = mid[idx[~bad]]
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
