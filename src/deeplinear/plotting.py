"""Data preparation and shared drawing for the figure notebooks (pipeline.md, "Figures").

The notebooks only load tables, call these functions and draw. Every quantity a figure
shows that is not a plain column of a table is computed here, by a small pure function
over DataFrames or arrays, and tested in ``tests/test_plotting.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from deeplinear import stats
from deeplinear.io import atomic_path

#: Readable names of the run statuses (theory.md 12), in plotting order.
STATUS_LABELS = {
    "converged": "converged",
    "budget_exhausted": "not converged within budget",
    "diverged": "diverged",
}
STATUS_COLORS = {"converged": "#1b9e77", "budget_exhausted": "#7570b3", "diverged": "#d95f02"}
#: Where a run ended, in plotting order (figures 4 and 7, theory.md 8), with colours.
OUTCOME_COLORS = {
    "global minimum": "#1b9e77",
    "rank-r optimum (r < target)": "#e6ab02",
    "not converged / not rank-optimal": "#7570b3",
    "diverged": "#d95f02",
}

#: Excess losses are clipped below at this value so that a run that reaches the optimum
#: to machine precision (excess 0 or a tiny negative rounding residue of ``loss - L*``)
#: still has a point on a log axis.
EXCESS_FLOOR = 1e-16

#: Below this value the balance-drift guarantee ``2 eta_cert (eps0 - eps(k))`` (theory.md 6,
#: guarantee 2) is smaller than the rounding error of the drift itself, and the ratio
#: measures rounding, not GD: such points are not drawn. The logged drift
#: ``max_j ||D_j(k) - D_j(0)||_2`` is a difference of ``O(||W||^2)`` matrices, so evaluating
#: it costs an absolute error of order ``1e-16 ||W||^2``, and every floating-point GD step
#: moves ``D_j`` by rounding of the same order (theory.md 4: exact arithmetic moves it only
#: by ``eta^2`` terms), which accumulates over the run. ``1e-13`` is an order-of-magnitude
#: allowance (about a thousand such errors for layers of norm ``O(1)``), not a derived
#: bound; it matters only for the very small certified steps of unbalanced deep starts.
#: One constant here until the engine logs an exact per-iteration rounding allowance.
ROUNDING_FLOOR = 1e-13


# --- Runs and trajectories (figures 1, 2, 3, 7) ---------------------------------------------


def of_experiment(table: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The rows of ``table`` whose ``experiment`` column is ``experiment``; a table without
    that column (already one experiment's) is returned whole. Raises ``ValueError`` naming
    the experiment if a table with the column has no row of it."""
    if "experiment" not in table.columns:
        return table
    rows = table[table["experiment"] == experiment]
    if rows.empty and not table.empty:
        found = sorted(table["experiment"].unique())
        raise ValueError(f"no rows of experiment {experiment!r} in the table (it has {found})")
    return rows


def merge_runs(
    trajectories: pd.DataFrame, runs: pd.DataFrame, columns: Sequence[str]
) -> pd.DataFrame:
    """The trajectory rows of the runs in ``runs``, with the run columns ``columns`` added.

    ``trajectories`` is trajectories.parquet (one row per logged iteration of a run),
    ``runs`` a selection of runs.csv (one row per run). Every trajectory row of a selected
    run is kept, in its original order; rows of other runs are dropped. Raises ``KeyError``
    naming a missing column and ``ValueError`` if ``runs`` repeats a ``run_id``.
    """
    columns = [c for c in columns if c != "run_id"]
    missing = [c for c in ["run_id", *columns] if c not in runs.columns]
    if missing:
        raise KeyError(f"runs table has no column(s) {missing}")
    if "run_id" not in trajectories.columns:
        raise KeyError("trajectories table has no column 'run_id'")
    if runs["run_id"].duplicated().any():
        raise ValueError("runs table repeats a run_id; cannot merge it into trajectories")
    return trajectories.merge(runs[["run_id", *columns]], on="run_id")


def loss_curves(traj: pd.DataFrame) -> pd.DataFrame:
    """A copy of merged trajectories with the columns the loss figures plot.

    Needs ``iteration``, ``loss`` and ``optimal_loss`` (the run's ``L*_{r_max}``); adds
    ``excess = loss - optimal_loss`` clipped below at :data:`EXCESS_FLOOR`,
    ``k = iteration + 1`` (so iteration 0 fits on a log axis) and, if the run's step size
    ``eta`` is a column, the gradient-flow time ``t = eta * iteration``.
    """
    out = traj.copy()
    out["excess"] = (out["loss"] - out["optimal_loss"]).clip(lower=EXCESS_FLOOR)
    out["k"] = out["iteration"] + 1
    if "eta" in out.columns:
        out["t"] = out["eta"] * out["iteration"]
    return out


def excess_cap(curves: pd.DataFrame, decades: float) -> float:
    """Top of the loss axis: ``10**decades`` times the largest initial excess loss.

    Diverging runs grow to 1e100 and beyond; capping the axis a few decades above the
    start keeps the converging runs readable (figures 1 and 7). ``curves`` as returned by
    :func:`loss_curves`.
    """
    return float(10.0**decades * curves.loc[curves["iteration"] == 0, "excess"].max())


def cap_curves(curves: pd.DataFrame, top: float) -> pd.DataFrame:
    """A copy of ``curves`` with ``excess_shown = min(excess, top)`` and, per row, whether
    its run ``diverged`` (needs the run column ``status``): a diverged run is drawn up to
    the axis cap ``top`` and marked at its last iteration on the top edge (figure 1)."""
    out = curves.copy()
    out["excess_shown"] = out["excess"].clip(upper=top)
    out["diverged"] = out["status"] == "diverged"
    return out


def drift_bound(eta_cert: np.ndarray, eps0: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Guarantee 2 of theory.md 6: ``max_j ||D_j(k) - D_j(0)||_2 <= 2 eta_cert (eps0 - eps(k))``.

    Arrays (or Series) of equal shape: the certified step, the initial excess loss and the
    excess loss ``eps(k)`` at iteration ``k``.
    """
    return 2 * eta_cert * (eps0 - eps)


def guarantee_ratios(traj: pd.DataFrame) -> pd.DataFrame:
    """Figure 3: logged quantities over the theorem's bounds (theory.md 6, guarantees 2, 3).

    ``traj`` is trajectories merged with the run columns ``eta_bound`` (``eta_cert``),
    ``eps0`` and ``bound_weight_norm`` (``K``). Returns a copy of the rows with
    ``iteration > 0`` plus ``k = iteration``, ``norm_ratio = max_weight_norm / K`` and
    ``drift_ratio = balance_drift / (2 eta_cert (eps0 - eps(k)))``; the drift ratio is NaN
    where that bound is at most :data:`ROUNDING_FLOOR`. Both ratios are <= 1 when the
    guarantees hold. Runs of the adaptive schedule (``step_rule`` and ``bound_drift``
    given) use its cap ``eta_max = bound_drift / (2 eps0)`` for ``eta_cert`` (theory.md 14).
    """
    out = traj[traj["iteration"] > 0].copy()
    out["k"] = out["iteration"]
    out["norm_ratio"] = out["max_weight_norm"] / out["bound_weight_norm"]
    eta = out["eta_bound"]
    if {"step_rule", "bound_drift"} <= set(out.columns):
        adaptive = out["step_rule"] == "adaptive"
        eta = eta.where(~adaptive, out["bound_drift"] / (2 * out["eps0"]))
    bound = drift_bound(eta, out["eps0"], out["excess_loss"])
    out["drift_ratio"] = out["balance_drift"] / bound.where(bound > ROUNDING_FLOOR)
    return out


# --- Outcomes and limit ranks (figures 4 and 7) ---------------------------------------------


def outcomes(runs: pd.DataFrame) -> pd.Series:
    """One key of :data:`OUTCOME_COLORS` per row of runs.csv."""
    choice = np.select(
        [runs["status"] == "diverged", runs["global_optimal"], runs["rank_optimal"]],
        ["diverged", "global minimum", "rank-r optimum (r < target)"],
        default="not converged / not rank-optimal",
    )
    return pd.Series(choice, index=runs.index, name="outcome")


def start_labels(runs: pd.DataFrame) -> pd.Series:
    """``"<init> s=<scale> r0=<rank>"``, plus ``" xi=<xi>"`` for perturbed starts."""
    xi = np.where(runs["init_xi"] > 0, " xi=" + runs["init_xi"].astype(str), "")
    label = runs["init"] + " s=" + runs["init_scale"].astype(str)
    return (label + " r0=" + runs["init_rank"].astype(str) + xi).rename("start")


def start_depth_labels(runs: pd.DataFrame) -> pd.Series:
    """``"<start label>, N = <depth>"`` per run (one bar per start and depth, figure 7)."""
    return (start_labels(runs) + ", N = " + runs["depth"].astype(str)).rename("row")


def outcome_shares(
    runs: pd.DataFrame, by: str | Sequence[str], ascending: bool = True
) -> pd.DataFrame:
    """Fraction of runs per outcome (:func:`outcomes`) in each group of ``by``.

    One row per group (sorted, ascending or not), one column per key of
    :data:`OUTCOME_COLORS` in that order (0 where no run ended so); every row sums to 1.
    """
    table = (
        runs.assign(outcome=outcomes(runs))
        .groupby(by if isinstance(by, str) else list(by))["outcome"]
        .value_counts(normalize=True)
        .unstack(fill_value=0)
        .reindex(columns=list(OUTCOME_COLORS), fill_value=0)
    )
    return table.sort_index(ascending=ascending)


def draw_outcome_bars(ax: plt.Axes, shares: pd.DataFrame) -> None:
    """Stacked horizontal bars of :func:`outcome_shares`, one bar per row, the first row at
    the bottom, coloured by :data:`OUTCOME_COLORS` (figures 4 and 7)."""
    shares.plot.barh(
        stacked=True, ax=ax, color=[OUTCOME_COLORS[c] for c in shares.columns], legend=False,
        width=0.8,
    )  # fmt: skip


def outcome_legend() -> tuple[list[plt.Rectangle], list[str]]:
    """Legend handles and labels of the outcome colours, in :data:`OUTCOME_COLORS` order."""
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in OUTCOME_COLORS.values()]
    return handles, list(OUTCOME_COLORS)


def target_rank_text(runs: pd.DataFrame) -> str:
    """``"<target rank> (hidden <width>), ..."`` per width string of ``runs`` (figure 4)."""
    targets = runs.groupby("widths")["target_rank"].first()
    return ", ".join(f"{t} (hidden {w.split('-')[1]})" for w, t in targets.items())


def limit_ranks(runs: pd.DataFrame) -> list[int]:
    """Sorted distinct limit ranks ``final_rank`` of the runs that did not diverge."""
    return sorted(int(r) for r in runs.loc[runs["status"] != "diverged", "final_rank"].unique())


def converged_share(runs: pd.DataFrame) -> pd.DataFrame:
    """Fraction of runs that converged within their budget, depth (rows, deepest first)
    by step multiple (columns, labelled ``f"{m:g}"``): figure 7's heatmap."""
    return (
        runs.assign(converged=runs["status"] == "converged")
        .pivot_table(index="depth", columns="step_multiple", values="converged", aggfunc="mean")
        .sort_index(ascending=False)
        .rename(columns=lambda m: f"{m:g}")
    )


# --- Escape from the rank-r manifold (figure 4, theory.md 8) --------------------------------


def escape_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Perturbed starts with an escape level, with ``escaped`` (bool) and the time ``t``:
    the escape time ``eta k`` if the run escaped, else the time ``eta * iterations`` at
    which it ended still on the rank-r plateau (a censored observation)."""
    out = runs[(runs["init_xi"] > 0) & runs["escape_level"].notna()].copy()
    out["escaped"] = out["escape_time"].notna()
    out["t"] = out["escape_time"].where(out["escaped"], out["eta"] * out["iterations"])
    return out


def power_law_prefactor(xi: np.ndarray, t: np.ndarray, exponent: float) -> float:
    """Least-squares ``c`` of ``log t = log c + exponent * log xi`` with the exponent fixed:
    the geometric mean of ``t / xi**exponent`` (the predicted ``t ~ c xi^(2-N)``)."""
    xi, t = np.asarray(xi, dtype=float), np.asarray(t, dtype=float)
    if xi.size == 0:
        return float("nan")
    return float(np.exp(np.mean(np.log(t) - exponent * np.log(xi))))


def escape_curves(fit: pd.Series, escaped: pd.DataFrame, n: int = 100) -> dict[str, np.ndarray]:
    """Fitted and predicted escape-time curves over the fitted ``xi`` range of one row of
    escape_scaling.csv (theory.md 8).

    Returns ``{"xi": grid}`` plus, for ``N = 2``, ``"log"`` (``a + b log(1/xi)``) and
    ``"power"`` (the best power law ``c xi^s``); for ``N >= 3``, ``"predicted"``:
    ``c xi^(2-N)`` with ``c`` from :func:`power_law_prefactor` over the escaped runs
    (``escaped``, columns ``init_xi`` and ``t``) inside the fitted range.
    """
    depth = int(fit["depth"])
    xs = np.geomspace(fit["xi_min_fitted"], fit["xi_max_fitted"], n)
    if depth == 2:
        log = fit["log_intercept"] - fit["log_slope"] * np.log(xs)
        return {
            "xi": xs,
            "log": log,
            "power": fit["power_prefactor"] * xs ** fit["fitted_exponent"],
        }
    inside = escaped["init_xi"].between(fit["xi_min_fitted"], fit["xi_max_fitted"])
    c = power_law_prefactor(escaped.loc[inside, "init_xi"], escaped.loc[inside, "t"], 2 - depth)
    return {"xi": xs, "predicted": c * xs ** (2.0 - depth)}


# --- Phase diagram (figure 5) ----------------------------------------------------------------


def phase_grid(stats: pd.DataFrame) -> pd.DataFrame:
    """Mean fractions converged / diverged / budget exhausted per depth and step multiple
    over the cells of convergence_stats.csv (all starts and widths of a depth)."""
    cols = ["frac_converged", "frac_diverged", "frac_budget_exhausted"]
    return stats.groupby(["depth", "step_multiple"])[cols].mean()


def heatmap_position(value: float, columns: Sequence[float]) -> float:
    """x position of ``value`` on a heatmap whose cell ``i`` (centre ``i + 0.5``) is the
    sorted column value ``columns[i]``, interpolating in ``log``."""
    centres = np.arange(len(columns)) + 0.5
    return float(np.interp(np.log(value), np.log(np.asarray(columns, dtype=float)), centres))


def heatmap_edge_after(value: float, columns: Sequence[float]) -> int:
    """x position of the cell edge right after the last sorted column value ``<= value``
    (the certified bound at multiple 1 is drawn there, between its cell and the next)."""
    return int(np.searchsorted(np.asarray(columns, dtype=float), value, side="right"))


def critical_multiples(
    step_thresholds: pd.DataFrame, dataset: str | None = None, inits: Sequence[str] = ()
) -> tuple[pd.Series, str]:
    """Median empirical critical step multiple per depth, and a note on where it is from.

    Without a ``family`` column (one threshold search), the median over all rows of a
    depth. With one, only a family on ``dataset`` (the data of the step-size experiment)
    is comparable: the families whose ``dataset`` column equals it, preferring one whose
    ``init`` is among ``inits``, the first by name if several remain. If none matches (or
    the table has no ``dataset`` column) the Series is empty and the note says why.
    """
    if "family" not in step_thresholds.columns:
        return step_thresholds.groupby("depth")["critical_multiple"].median(), ""
    empty = pd.Series(dtype=float, name="critical_multiple")
    if "dataset" not in step_thresholds.columns:
        return empty, "critical multiple not marked: step_thresholds has no dataset column"
    same = step_thresholds[step_thresholds["dataset"] == dataset]
    if same.empty:
        return empty, f"critical multiple not marked: no threshold family on data {dataset!r}"
    preferred = same[same["init"].isin(list(inits))]
    family = sorted((preferred if len(preferred) else same)["family"].unique())[0]
    chosen = same[same["family"] == family]
    return chosen.groupby("depth")["critical_multiple"].median(), f"family {family}"


# --- Maximal step size against depth (figure 6, claim 2) -------------------------------------


#: The adaptive schedule's steps in thresholds.csv (theory.md 14): at the start and at the
#: point an adaptive run reaches.
ADAPTIVE_STEPS = ("eta_adaptive_start", "eta_adaptive_end", "eta_adaptive_free")


def threshold_summary(thresholds: pd.DataFrame) -> pd.DataFrame:
    """Per family and depth of thresholds.csv (one row per start): what figure 6 draws.

    Columns: ``family, depth, n_starts, n_critical_found``, the critical step
    ``critical_eta`` (median over the starts where one was found) with ``critical_eta_min``
    and ``critical_eta_max``; ``eos_reached = median(2 / sharpness_reached)`` (the linear
    stability limit of the minimizer GD actually reached at the critical step, theory.md 9);
    ``eos_eta`` (median, balanced minimizer); the certified ``eta_cert`` (median, min,
    max); ``acgh_eta``, the median ACGH 2019 bound over the starts where it is finite (NaN
    where it is nowhere defined) and ``n_acgh_defined``; where the table has the adaptive
    schedule's columns (theory.md 14), its certified step at the start and at the point
    reached: ``eta_adaptive_start``, ``eta_adaptive_end`` and the start's step before the
    cap ``eta_adaptive_free`` (medians, with ``_min``, ``_max``). Sorted by family, then depth.
    """
    t = thresholds.assign(
        eos_reached=2.0 / thresholds["sharpness_reached"],
        acgh_eta=thresholds["acgh_eta"].where(np.isfinite(thresholds["acgh_eta"])),
    )
    out = (
        t.groupby(["family", "depth"], sort=True)
        .agg(
            n_starts=("run_id", "size"),
            n_critical_found=("critical_eta", "count"),
            critical_eta=("critical_eta", "median"),
            critical_eta_min=("critical_eta", "min"),
            critical_eta_max=("critical_eta", "max"),
            eos_reached=("eos_reached", "median"),
            eos_eta=("eos_eta", "median"),
            eta_cert=("eta_cert", "median"),
            eta_cert_min=("eta_cert", "min"),
            eta_cert_max=("eta_cert", "max"),
            acgh_eta=("acgh_eta", "median"),
            n_acgh_defined=("acgh_eta", "count"),
            **{
                f"{c}{suffix}": (c, how)
                for c in ADAPTIVE_STEPS
                if c in t.columns
                for suffix, how in (("", "median"), ("_min", "min"), ("_max", "max"))
            },
        )
        .reset_index()
    )
    return out


def adaptive_fits(summary: pd.DataFrame) -> pd.DataFrame:
    """Per family of :func:`threshold_summary`: the fitted factor per layer ``factor``
    (:func:`per_layer_factor`) and power ``power`` (:func:`depth_power`) of the median
    certified adaptive step at the start before its cap over depth (theory.md 14; what
    claim 2 judges, with the bootstrap rule of theory.md 13). Empty without it."""
    if "eta_adaptive_free" not in summary:
        return pd.DataFrame(columns=["family", "factor", "power"])
    rows = [
        {
            "family": family,
            "factor": per_layer_factor(g["depth"], g["eta_adaptive_free"]),
            "power": depth_power(g["depth"], g["eta_adaptive_free"]),
        }
        for family, g in summary.groupby("family", sort=True)
    ]
    return pd.DataFrame(rows, columns=["family", "factor", "power"])


def _log_slope(x: np.ndarray, eta: np.ndarray) -> float:
    """Least-squares slope of ``log eta`` against ``x`` over the finite positive ``eta``
    (:func:`deeplinear.stats.line_fits`); NaN with fewer than two distinct ``x``."""
    x, eta = np.asarray(x, dtype=float), np.asarray(eta, dtype=float)
    ok = np.isfinite(eta) & (eta > 0)
    if np.unique(x[ok]).size < 2:
        return float("nan")
    return float(stats.line_fits(x[ok], np.log(eta[ok]))[1])


def per_layer_factor(depth: np.ndarray, eta: np.ndarray) -> float:
    """Fitted factor ``q`` of ``eta ~ c q^N`` (NaN with fewer than two depths). ``q = 1``
    is no decay with depth, ``q = 1/2`` halving per layer."""
    return float(np.exp(_log_slope(depth, eta)))


def depth_power(depth: np.ndarray, eta: np.ndarray) -> float:
    """Fitted exponent ``p`` of ``eta ~ c N^p`` (NaN with fewer than two depths). A
    polynomial decay has a constant ``p``; an exponential one looks ever steeper."""
    return _log_slope(np.log(np.asarray(depth, dtype=float)), eta)


def exponential_reference(
    depth: np.ndarray, depth0: float, eta0: float, factor: float = 0.5
) -> np.ndarray:
    """``eta0 * factor**(N - depth0)``: an exponential decay in depth through
    ``(depth0, eta0)``; ``factor = 1/2`` is the ``2^-N`` reference of figure 6."""
    return eta0 * factor ** (np.asarray(depth, dtype=float) - depth0)


def family_reference(summary: pd.DataFrame, factor: float = 0.5) -> pd.DataFrame:
    """Per family of :func:`threshold_summary`: an exponential reference and two fits.

    One row per family and integer depth from ``N0`` (the family's first depth with a
    critical step) to its deepest: ``reference = eta0 * factor**(N - N0)`` through the
    median critical step ``eta0`` at ``N0`` (:func:`exponential_reference`), and, repeated
    on every row of the family, the fits of the median critical step over depth:
    ``fitted_factor`` (:func:`per_layer_factor`) and ``fitted_power`` (:func:`depth_power`).
    Families without any critical step have no rows.
    """
    rows = []
    for family, g in summary.groupby("family", sort=True):
        found = g[g["critical_eta"].notna()].sort_values("depth")
        if found.empty:
            continue
        N0, eta0 = found["depth"].iloc[0], found["critical_eta"].iloc[0]
        Ns = np.arange(N0, g["depth"].max() + 1)
        rows.append(
            pd.DataFrame(
                {
                    "family": family,
                    "depth": Ns,
                    "reference": exponential_reference(Ns, N0, eta0, factor),
                    "fitted_factor": per_layer_factor(g["depth"], g["critical_eta"]),
                    "fitted_power": depth_power(g["depth"], g["critical_eta"]),
                }
            )
        )
    columns = ["family", "depth", "reference", "fitted_factor", "fitted_power"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


# --- Style and saving ------------------------------------------------------------------------


def setup(context: str = "paper", dpi: int = 150) -> None:
    """Seaborn theme and matplotlib defaults shared by every figure."""
    sns.set_theme(context=context, style="whitegrid")
    plt.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "savefig.bbox": "tight"})


#: Decimals (of figure fractions) to which :func:`freeze_layout` rounds every position.
LAYOUT_DECIMALS = 6


def freeze_layout(fig: plt.Figure, decimals: int = LAYOUT_DECIMALS) -> None:
    """Place everything once with the figure's layout engine, then fix every subfigure and
    axes at its place rounded to ``decimals`` and switch the engine off.

    The constrained layout solver visits hash- and address-ordered sets, so its positions
    can differ in the last bit between two processes, and a written coordinate then rounds
    to a different last digit: the same tables gave figures with different bytes. Rounded
    positions are the same in every process (sub-pixel moves, invisible).
    """
    fig.canvas.draw()
    fig.set_layout_engine("none")
    figures = [fig]
    while figures:
        f = figures.pop()
        for sub in f.subfigs:
            sub.bbox_relative.set_points(np.round(sub.bbox_relative.get_points(), decimals))
            figures.append(sub)
        for ax in f.axes:
            ax.set_position(np.round(ax.get_position().bounds, decimals))


def save(fig: plt.Figure, pdf: str | os.PathLike, png: str | os.PathLike) -> None:
    """Write PDF and PNG atomically and without timestamps, with the layout frozen
    (:func:`freeze_layout`), so reruns are byte-identical."""
    freeze_layout(fig)
    for path, meta in ((pdf, {"CreationDate": None, "Producer": None}), (png, {"Software": None})):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], metadata=meta)


def panel_grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    """``(rows, cols)`` of a grid of ``n`` small multiples at most ``max_cols`` wide."""
    cols = max(1, min(max_cols, n))
    return -(-n // cols), cols


# --- Figure 9: tanh networks (theory.md 16) -------------------------------------------------


def tanh_critical_summary(critical: pd.DataFrame) -> pd.DataFrame:
    """Per ``activation`` and ``depth`` of tanh_critical.csv (one row per start): starts,
    starts with a critical step, median / min / max critical step and the median linear
    certified step ``eta_lin`` at the start. Sorted by activation, then depth."""
    return (
        critical.groupby(["activation", "depth"], sort=True)
        .agg(
            n_starts=("seed", "size"),
            n_critical_found=("critical_eta", "count"),
            critical_eta=("critical_eta", "median"),
            critical_eta_min=("critical_eta", "min"),
            critical_eta_max=("critical_eta", "max"),
            eta_lin=("eta_lin", "median"),
        )
        .reset_index()
    )


def tanh_law_labels(critical: pd.DataFrame) -> dict[str, str]:
    """Legend label per activation: the :func:`deeplinear.stats.depth_law` of its critical
    steps (decision, power ``p`` and factor per layer ``q``), as claim 6 reads it."""
    fits = stats.depth_law(critical.rename(columns={"activation": "family"}), "critical_eta")
    out = {}
    for r in fits.itertuples():
        if r.decision == stats.INSUFFICIENT:
            out[r.family] = f"{r.family}: insufficient data"
        else:
            out[r.family] = f"{r.family}: {r.decision}, p = {r.p:.2f}, q = {r.q:.2f}"
    return out


def published_markers(points: pd.DataFrame) -> pd.DataFrame:
    """The published points with their reading precision as multiplicative error bars:
    ``epoch_lo = epoch / epoch_factor``, ``epoch_hi = epoch * epoch_factor`` and the same for
    ``loss``."""
    return points.assign(
        epoch_lo=points["epoch"] / points["epoch_factor"],
        epoch_hi=points["epoch"] * points["epoch_factor"],
        loss_lo=points["loss"] / points["loss_factor"],
        loss_hi=points["loss"] * points["loss_factor"],
    )


# --- Panels the figure notebooks draw (figures 4, 6, 7, 8, 9) ------------------------------


def draw_escape_times(
    ax2: plt.Axes, ax3: plt.Axes, points: pd.DataFrame, fits: pd.DataFrame, palette: str
) -> None:
    """Escape time against ``xi`` per depth (figure 4, theory.md 8): ``N = 2`` on ``ax2``
    with the fitted ``a + b log(1/xi)`` and the best power law, ``N >= 3`` on ``ax3`` (log
    scale) with the predicted ``c xi^(2-N)`` (:func:`escape_curves`). ``points``: rows of
    :func:`escape_points`; ``fits``: escape_scaling.csv rows. Escaped runs are dots,
    censored ones (still on the plateau when the run ended, at their ``t``) open triangles."""
    deep = sorted(d for d in points["depth"].unique() if d >= 3)
    shades = dict(zip(deep, sns.color_palette(palette, max(len(deep), 1)), strict=False))
    for N, g in points.groupby("depth"):
        ax = ax2 if N == 2 else ax3
        color = "k" if N == 2 else shades[N]
        ok = g[g["escaped"]]
        ax.scatter(ok["init_xi"], ok["t"], s=14, color=color, alpha=0.7,
                   label=f"N = {N}: escaped")  # fmt: skip
        cens = g[~g["escaped"]]
        if len(cens):
            ax.scatter(cens["init_xi"], cens["t"], marker="^",
                       facecolors="none", edgecolors=color,
                       label=f"N = {N}: not escaped when the run ended")  # fmt: skip
        f = fits[fits["depth"] == N]
        if f.empty or f["fitted_exponent"].isna().all():
            continue
        f = f.iloc[0]
        curve = escape_curves(f, ok)
        if N == 2:
            ax.plot(curve["xi"], curve["log"], color=color,
                    label=f"fit a + b log(1/xi), b = {f['log_slope']:.3g}")  # fmt: skip
            ax.plot(curve["xi"], curve["power"], ":", color="grey",
                    label=f"best power law, xi^{f['fitted_exponent']:.2f}")  # fmt: skip
        else:
            fitted = f"fitted xi^{f['fitted_exponent']:.2f}"
            ax.plot(curve["xi"], curve["predicted"], "--", color=color,
                    label=f"predicted xi^{2 - N} ({fitted})")  # fmt: skip
    ax2.set(xscale="log", xlabel="perturbation size xi", ylabel="escape time t = eta k",
            title="N = 2: t grows like log(1/xi)")  # fmt: skip
    ax3.set(xscale="log", yscale="log", xlabel="perturbation size xi",
            ylabel="escape time t = eta k", title="N >= 3: t grows like xi^(2-N)")  # fmt: skip
    for ax in (ax2, ax3):
        ax.legend(fontsize="x-small")


def draw_escape_exponents(ax: plt.Axes, fits: pd.DataFrame) -> None:
    """The fitted power of ``xi`` against depth beside the predicted ``2 - N`` (figure 4,
    theory.md 8), for the depths ``N >= 3`` of escape_scaling.csv rows ``fits``."""
    fitted = fits[fits["depth"] >= 3]
    ax.plot(fitted["depth"], fitted["predicted_exponent"], "s-", color="grey",
            label="predicted 2 - N")  # fmt: skip
    ax.plot(fitted["depth"], fitted["fitted_exponent"], "o", color="k",
            label="fitted power of xi")  # fmt: skip
    ax.set(xlabel="depth N", ylabel="exponent s in t ~ xi^s",
           title="Escape exponent: data vs theory.md 8")  # fmt: skip
    ax.set_xticks(sorted(fitted["depth"].unique()) or [3])
    ax.legend(fontsize="x-small")


def draw_band(
    ax: plt.Axes, rows: pd.DataFrame, column: str, fmt: str, color: str, label: str, **kw
) -> None:
    """``column`` against ``depth`` (marker and line style ``fmt``, markers of size 4) over
    the band from ``{column}_min`` to ``{column}_max`` (figure 6: median and range over the
    starts); ``kw`` go to the line."""
    ax.fill_between(rows["depth"], rows[f"{column}_min"], rows[f"{column}_max"], color=color,
                    alpha=0.2, lw=0)  # fmt: skip
    ax.plot(rows["depth"], rows[column], fmt, color=color, ms=4, label=label, **kw)


def threshold_title(
    family: str, reference: pd.DataFrame, adaptive: pd.DataFrame, rows: pd.DataFrame
) -> str:
    """Figure 6's panel title of ``family``: its name, the critical step's fitted factor per
    layer and power of ``N`` (``reference``: the family's :func:`family_reference` rows, may
    be empty), the same for the adaptive step before its cap (``adaptive``:
    :func:`adaptive_fits` indexed by family) and the starts without a critical step
    (``rows``: the family's :func:`threshold_summary` rows), one line each where known."""
    title = family
    if len(reference):
        q, p = reference["fitted_factor"].iloc[0], reference["fitted_power"].iloc[0]
        title += f"\ncritical step fit: x{q:.2f} per layer, N^{p:.2f}"
    if family in adaptive.index:
        q, p = adaptive.loc[family, "factor"], adaptive.loc[family, "power"]
        title += f"\nadaptive step before cap: x{q:.2f} per layer, N^{p:.2f}"
    missing = int((rows["n_starts"] - rows["n_critical_found"]).sum())
    if missing:
        title += f"\nno critical step found: {missing} of {int(rows['n_starts'].sum())} starts"
    return title


def label_grid(axes: np.ndarray, n: int, xlabel: str, ylabel: str) -> None:
    """A ``(rows, cols)`` grid of panels of which the first ``n`` are used: the others
    hidden, ``xlabel`` under the last row, ``ylabel`` beside the first column."""
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    for row in axes:
        row[0].set_ylabel(ylabel)


def legend_handles(axes) -> dict[str, object]:
    """Label -> first handle with that label over the panels ``axes``, in drawing order:
    one legend entry per label for a figure whose panels repeat them."""
    handles: dict[str, object] = {}
    for ax in np.ravel(axes):
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    return handles


def within_bound_shares(runs: pd.DataFrame) -> pd.DataFrame:
    """Where the runs with ``step_multiple <= 1`` ended, per start and depth (rows of
    :func:`start_depth_labels`, first row at the bottom; :func:`outcome_shares`; figure 7)."""
    within = runs[runs["step_multiple"] <= 1]
    return outcome_shares(within.assign(row=start_depth_labels(within)), "row", ascending=False)


def draw_converged_heatmap(ax: plt.Axes, share: pd.DataFrame) -> None:
    """Figure 7's heatmap of :func:`converged_share`: the fraction converged per depth and
    step multiple, annotated in percent, red (none) to green (all)."""
    sns.heatmap(share, annot=True, fmt=".0%", cmap="RdYlGn", vmin=0, vmax=1,
                cbar_kws={"label": "fraction converged"}, annot_kws={"fontsize": "x-small"},
                ax=ax)  # fmt: skip
    ax.set(xlabel=r"step multiple $\eta/\eta_{\mathrm{cert}}$ (bound at 1)", ylabel="depth N",
           title="converged within budget (all starts)")  # fmt: skip


def outcome_legend_below(ax: plt.Axes) -> None:
    """The outcome colours' legend (:func:`outcome_legend`) centred below ``ax``."""
    handles, labels = outcome_legend()
    ax.legend(handles=handles, labels=labels, fontsize="x-small", loc="upper center",
              bbox_to_anchor=(0.5, -0.15), ncol=2)  # fmt: skip


def reading_title(search: pd.DataFrame, experiment: str) -> str:
    """Figure 8's title: the reading drawn (the row of ``experiment`` in
    authors_readings.csv ``search``), its score and rank among the readings."""
    chosen = search[search["experiment"] == experiment]
    if not len(chosen):
        return "reading not in the search"
    row = chosen.iloc[0]
    return (
        f"reading {row['reading']}: score {row['score']:.2g}, rank {row['rank']} of {len(search)}"
    )


def readings_shown(search: pd.DataFrame, experiments: Sequence[str], top: int = 3) -> pd.DataFrame:
    """The readings figure 8 lists: those of ``experiments`` and the ``top`` best ranked,
    with their rank, score columns and experiment."""
    shown = search[search["experiment"].isin(list(experiments)) | (search["rank"] <= top)]
    scores = [c for c in search.columns if c.startswith("score")]
    return shown[["reading", "rank", *scores, "experiment"]]


def draw_float32_curves(
    ax: plt.Axes, curves: pd.DataFrame, labels: dict[int, str], order: Sequence[str], palette
) -> None:
    """Figure 8: the single-precision curves (``authors_float32.parquet`` rows: ``depth,
    start, epoch, loss``) dashed, one line per depth and start in the colour of its depth's
    network label (``labels``, hue order ``order``), and one legend entry for all of them
    (picked up by a later ``ax.legend()``); nothing for an empty table."""
    if curves.empty:
        return
    data = curves.assign(
        network=curves["depth"].map(labels),
        run=curves["depth"].astype(str) + "/" + curves["start"].astype(str),
    )
    sns.lineplot(
        data=data, x="epoch", y="loss", ax=ax, hue="network", hue_order=order, units="run",
        estimator=None, palette=palette, lw=0.8, ls="--", legend=False,
    )  # fmt: skip
    ax.plot([], [], color="grey", lw=0.8, ls="--", label="dashed: float32")


def draw_published_points(ax: plt.Axes, points: pd.DataFrame, color, label: str) -> None:
    """Published points (rows of :func:`published_markers`) as open circles with their
    reading precision as error bars (figure 9)."""
    ax.errorbar(
        points["epoch"], points["loss"],
        xerr=[points["epoch"] - points["epoch_lo"], points["epoch_hi"] - points["epoch"]],
        yerr=[points["loss"] - points["loss_lo"], points["loss_hi"] - points["loss"]],
        fmt="o", ms=4, mfc="white", color=color, lw=0.6, label=label,
    )  # fmt: skip


def draw_tanh_critical(ax: plt.Axes, summary: pd.DataFrame, laws: dict[str, str]) -> None:
    """Figure 9: the critical constant step against depth per activation (median, range;
    :func:`tanh_critical_summary`, the fitted law of :func:`tanh_law_labels` in the label),
    the linear network's dashed, and the linear certified step at the start dotted."""
    for act, g in summary.groupby("activation"):
        style = dict(marker="o", ls="-") if act != "identity" else dict(marker="s", ls="--")
        name = "linear (identity)" if act == "identity" else f"tanh ({act})"
        ax.plot(g["depth"], g["critical_eta"], label=f"critical, {name}: {laws.get(act, '')}",
                **style)  # fmt: skip
        ax.fill_between(g["depth"], g["critical_eta_min"], g["critical_eta_max"], alpha=0.2)
    lin = summary[summary["activation"] == "identity"]
    ax.plot(lin["depth"], lin["eta_lin"], color="k", ls=":",
            label="linear certified step at the start")  # fmt: skip
    ax.set(yscale="log", xlabel="depth N", ylabel="step size",
           title="Critical constant step against depth")  # fmt: skip
    ax.legend(fontsize="x-small")


def draw_tanh_outcomes(ax: plt.Axes, outcomes: pd.DataFrame, activation: str, palette) -> None:
    """Figure 9: the fractions of runs that converged (solid) and diverged (dashed) against
    the constant step's multiple of the linear certified step, per depth, for
    ``activation`` (tanh_outcomes.csv rows ``outcomes``)."""
    o = outcomes[outcomes["activation"] == activation]
    colors = sns.color_palette(palette, o["depth"].nunique())
    for color, (N, g) in zip(colors, o.groupby("depth"), strict=True):
        ax.plot(g["multiple"], g["converged"], color=color, marker="o",
                label=f"N = {N} converged")  # fmt: skip
        ax.plot(g["multiple"], g["diverged"], color=color, ls="--", lw=0.8)
    ax.axvline(1.0, color="k", ls=":", lw=0.8)
    ax.set(xscale="log", ylim=(-0.05, 1.05),
           xlabel=r"constant step / linear certified step $\eta_{lin}$",
           ylabel="fraction of runs (dashed: diverged)",
           title=f"tanh ({activation}) sweep outcomes")  # fmt: skip
    ax.legend(fontsize="x-small")


def draw_tanh_curves(
    ax_loss: plt.Axes, ax_norm: plt.Axes, trajectories: pd.DataFrame, points: pd.DataFrame, colors
) -> None:
    """Figure 9: per depth (``colors``: depth -> colour) the loss (``ax_loss``) and the
    product norm (``ax_norm``) of every seed against epochs (authors_tanh_trajectories
    rows), and the published points of that depth (:func:`draw_published_points`)."""
    for N, c in colors.items():
        for _, g in trajectories[trajectories["depth"] == N].groupby("seed"):
            ax_loss.plot(g["epoch"], g["loss"], color=c, lw=0.8)
            ax_norm.plot(g["epoch"], g["product_norm"], color=c, lw=0.8)
        label = f"N = {N} (published: circles)"
        draw_published_points(ax_loss, points[points["depth"] == N], c, label)
