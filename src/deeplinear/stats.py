"""Aggregates of the per-run table that the figures plot (pipeline.md, "Output contracts")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deeplinear import tables, theory

#: Columns that identify a grid cell (all seeds of one setting).
CELL = [c.name for c in tables.CELL]


def convergence_stats(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell: run count, fractions converged / diverged / budget exhausted / globally
    optimal / rank-r optimal, and quantiles (10, 50, 90 %) of iterations to convergence."""

    def cell(g: pd.DataFrame) -> pd.Series:
        conv = g.loc[g["status"] == "converged", "iterations"]
        q = conv.quantile([0.1, 0.5, 0.9]) if len(conv) else pd.Series([np.nan] * 3)
        return pd.Series(
            {
                "n_runs": len(g),
                "frac_converged": np.mean(g["status"] == "converged"),
                "frac_diverged": np.mean(g["status"] == "diverged"),
                "frac_budget_exhausted": np.mean(g["status"] == "budget_exhausted"),
                "frac_global_optimal": g["global_optimal"].mean(),
                "frac_rank_optimal": g["rank_optimal"].mean(),
                "frac_decrease_kept": np.mean(g["decrease_failures"] == 0),
                "iterations_q10": q.iloc[0],
                "iterations_q50": q.iloc[1],
                "iterations_q90": q.iloc[2],
            }
        )

    return runs.groupby(CELL, sort=True, dropna=False).apply(cell).reset_index()


def rank_stats(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell and limit rank r: how many runs end at rank r, and how many of those are
    the optimum on the rank-r manifold or the global optimum (theory.md 7)."""
    keys = [c for c in CELL if c != "step_multiple"] + ["status", "final_rank"]
    out = (
        runs.groupby(keys, sort=True, dropna=False)
        .agg(
            n_runs=("run_id", "size"),
            n_rank_optimal=("rank_optimal", "sum"),
            n_global_optimal=("global_optimal", "sum"),
            target_rank=("target_rank", "first"),
        )
        .reset_index()
    )
    totals = out.groupby([c for c in CELL if c != "step_multiple"], dropna=False)["n_runs"]
    out["frac_of_cell"] = out["n_runs"] / totals.transform("sum")
    return out


def step_thresholds(table: pd.DataFrame) -> pd.DataFrame:
    """Per start family and depth: median (and range) over starts of the certified bound,
    the empirical critical step, 2/sharpness and the ACGH 2019 bound.

    ``table`` is the threshold search, one row per start (pipeline.md, "Output contracts").
    Grouped by those of ``family, dataset, depth, widths, init, init_scale, init_spread``
    that it has; optional columns (``sharpness_reached``, ``acgh_eta_near_target``) are
    summarized when present.
    """
    keys = [c for c in THRESHOLD_KEYS if c in table.columns]
    specs = {
        "n_starts": ("eta_cert", "size"),
        "eta_cert": ("eta_cert", "median"),
        "eta_cert_min": ("eta_cert", "min"),
        "eta_cert_max": ("eta_cert", "max"),
        "critical_eta": ("critical_eta", "median"),
        "critical_eta_min": ("critical_eta", "min"),
        "critical_eta_max": ("critical_eta", "max"),
        "critical_multiple": ("critical_multiple", "median"),
        "n_critical_found": ("critical_eta", lambda s: int(s.notna().sum())),
        "eos_eta": ("eos_eta", "median"),
        "acgh_eta": ("acgh_eta", "median"),
        "acgh_defined": ("acgh_eta", lambda s: int(s.notna().sum())),
        "acgh_eta_near_target": ("acgh_eta_near_target", "median"),
        "sharpness_reached": ("sharpness_reached", "median"),
        "delta0": ("delta0", "median"),
    }
    specs = {k: v for k, v in specs.items() if v[0] in table.columns}
    out = table.groupby(keys, sort=True, dropna=False).agg(**specs).reset_index()
    out["cert_over_critical"] = out["eta_cert"] / out["critical_eta"]
    return out


#: Columns of the threshold search that identify a group of starts (:func:`step_thresholds`).
THRESHOLD_KEYS = ["family", "dataset", "depth", "widths", "init", "init_scale", "init_spread"]

#: Bootstrap resamples and the generator seed of every interval in this module: fixed, so
#: the tables are identical on every rerun.
N_BOOT = 2000
BOOT_SEED = 0


def stratified_resamples(strata: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED):
    """Row indices of ``n_boot`` bootstrap resamples, shape ``(n_boot, n)``.

    Each resample draws, with replacement, as many rows from every stratum (equal values
    of ``strata``, shape ``(n,)``) as the stratum has, so every stratum keeps its size:
    resampling seeds within each depth, or runs within each ``xi`` level.
    """
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, strata.size), dtype=np.intp)
    for value in np.unique(strata):
        rows = np.flatnonzero(strata == value)
        out[:, rows] = rows[rng.integers(0, rows.size, size=(n_boot, rows.size))]
    return out


def line_fits(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares lines ``y = a + b x`` along the last axis: ``(a, b, RSS)``.

    ``x``, ``y`` of shape ``(..., n)``; residuals are formed explicitly (no cancellation
    in ``RSS`` for a near-perfect fit).
    """
    xm, ym = x.mean(axis=-1, keepdims=True), y.mean(axis=-1, keepdims=True)
    b = np.sum((x - xm) * (y - ym), axis=-1) / np.sum((x - xm) ** 2, axis=-1)
    a = ym[..., 0] - b * xm[..., 0]
    rss = np.sum((y - a[..., None] - b[..., None] * x) ** 2, axis=-1)
    return a, b, rss


def log_xi_fits(u: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``N = 2`` law ``t = a + b u`` with ``u = log(1/xi)`` (theory.md 8), along the last
    axis: ``(a, b, RSS in log t)``.

    Fitted by least squares in relative error (weights ``1/t^2``), the linear proxy of a
    fit in ``log t``, so its RSS in ``log t`` is comparable with the power law's. ``RSS`` is
    ``inf`` where the fitted law predicts a time ``<= 0``.
    """
    w0, w1 = 1.0 / t, u / t
    s00, s01, s11 = np.sum(w0 * w0, -1), np.sum(w0 * w1, -1), np.sum(w1 * w1, -1)
    r0, r1 = np.sum(w0, -1), np.sum(w1, -1)
    det = s00 * s11 - s01**2
    a, b = (s11 * r0 - s01 * r1) / det, (s00 * r1 - s01 * r0) / det
    pred = a[..., None] + b[..., None] * u
    with np.errstate(invalid="ignore", divide="ignore"):
        rss = np.sum((np.log(pred) - np.log(t)) ** 2, axis=-1)
    return a, b, np.where(np.all(pred > 0, axis=-1), rss, np.inf)


def _log_ratio(rss_alt: np.ndarray, rss_pow: np.ndarray, scale: float) -> np.ndarray:
    """``log(RSS_alt / RSS_power)``, floored at ``1e-24 scale`` (exact fits) and clipped to
    +-1000 (``inf`` RSS) so quantiles stay finite."""
    floor = 1e-24 * scale + 1e-300
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        r = np.log((rss_alt + floor) / (rss_pow + floor))
    return np.clip(np.nan_to_num(r, nan=0.0, posinf=1e3, neginf=-1e3), -1e3, 1e3)


def _interval(samples: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [0.025, 0.975])
    return float(lo), float(hi)


def _decide(lo: float, hi: float, above: str, below: str) -> str:
    return above if lo > 0 else below if hi < 0 else UNDECIDED


UNDECIDED, INSUFFICIENT = "undecided", "insufficient data"

#: Fewest depths with a measured step, and fewest starts at each of them, for a depth law.
MIN_DEPTHS, MIN_PER_DEPTH = 3, 2

DEPTH_LAW_COLUMNS = list(tables.DEPTH_LAW_COLUMNS)


def depth_law(
    table: pd.DataFrame,
    column: str,
    by: str = "family",
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Power law or exponential in the depth ``N``: one row per value of ``by``.

    ``table`` has one row per start with ``depth`` and ``column`` (a step size). Only
    finite positive values count, and only depths with at least :data:`MIN_PER_DEPTH` of
    them. Two 2-parameter least-squares fits of ``log eta`` over all those starts:
    power law ``a + p log N`` and exponential ``a + N log q``. ``log_rss_ratio`` is
    ``log(RSS_exp / RSS_pow)`` (the log likelihood ratio up to a factor ``n / 2``:
    positive means the power law fits better). Bootstrap: ``n_boot`` resamples of the
    starts within each depth (generator seed ``seed``); ``_lo``/``_hi`` are the 2.5% and
    97.5% quantiles. ``decision`` is ``"power"`` if the ratio's interval lies above 0,
    ``"exponential"`` if below, ``"undecided"`` otherwise, and ``"insufficient data"``
    with fewer than :data:`MIN_DEPTHS` depths.
    """
    rows = []
    for key, g in table.groupby(by, sort=True):
        ok = g[np.isfinite(g[column]) & (g[column] > 0)]
        counts = ok.groupby("depth").size()
        depths = sorted(int(d) for d in counts[counts >= MIN_PER_DEPTH].index)
        order = ["depth"] + [c for c in ("seed", "run_id") if c in ok.columns]
        ok = ok[ok["depth"].isin(depths)].sort_values(order, kind="mergesort")
        row = {by: key, "column": column, "n_starts": len(ok), "n_depths": len(depths)}
        row["depths"] = ",".join(map(str, depths))
        if len(depths) < MIN_DEPTHS:
            rows.append(row | {"decision": INSUFFICIENT})
            continue
        N = ok["depth"].to_numpy(float)
        y = np.log(ok[column].to_numpy(float))
        idx = np.vstack([np.arange(N.size), stratified_resamples(N, n_boot, seed)])
        Nb, yb = N[idx], y[idx]
        _, p, rss_p = line_fits(np.log(Nb), yb)
        _, log_q, rss_e = line_fits(Nb, yb)
        ratio = _log_ratio(rss_e, rss_p, float(np.sum((y - y.mean()) ** 2)))
        (p_lo, p_hi), (lq_lo, lq_hi), (r_lo, r_hi) = map(_interval, (p[1:], log_q[1:], ratio[1:]))
        rows.append(
            row
            | {
                "p": p[0],
                "p_lo": p_lo,
                "p_hi": p_hi,
                "q": np.exp(log_q[0]),
                "q_lo": np.exp(lq_lo),
                "q_hi": np.exp(lq_hi),
                "log_rss_ratio": ratio[0],
                "log_rss_ratio_lo": r_lo,
                "log_rss_ratio_hi": r_hi,
                "decision": _decide(r_lo, r_hi, "power", "exponential"),
            }
        )
    return pd.DataFrame(rows, columns=[by, "column", *DEPTH_LAW_COLUMNS])


#: Fewest ``xi`` levels, and runs at each, for an escape law (:func:`escape_law`).
MIN_LEVELS, MIN_PER_LEVEL = 5, 2

ESCAPE_LAW_COLUMNS = [
    "n_runs", "n_levels", "n_levels_fitted", "predicted_exponent", "exponent", "exponent_lo",
    "exponent_hi", "log_rss_ratio", "log_rss_ratio_lo", "log_rss_ratio_hi", "decision",
]  # fmt: skip


def escape_law(runs: pd.DataFrame, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> pd.DataFrame:
    """Escape time against ``xi`` with bootstrap intervals (theory.md 8), one row per cell
    of perturbed rank-deficient starts (:data:`CELL` but ``init_xi``).

    Per cell only ``xi`` levels at which every run escaped and with at least
    :data:`MIN_PER_LEVEL` runs are fitted (:data:`MIN_LEVELS` such levels needed, else
    ``decision = "insufficient data"``). Fits: power law ``log t = c + s log xi``
    (``exponent = s``) and ``t = a + b log(1/xi)`` (:func:`log_xi_fits`), both with 2
    parameters; ``log_rss_ratio = log(RSS_log / RSS_pow)`` in ``log t`` (positive: the power
    law fits better). Bootstrap: ``n_boot`` resamples of the runs within each level
    (generator seed ``seed``), 2.5% and 97.5% quantiles. ``decision`` is ``"power"`` if the
    ratio's interval lies above 0, ``"log"`` if below, else ``"undecided"``.
    """
    eligible = runs[runs["escape_level"].notna() & (runs["init_xi"] > 0)]
    keys = [c for c in CELL if c != "init_xi"]
    rows = []
    for cell, g in eligible.groupby(keys, sort=True, dropna=False):
        escaped = g["escape_time"].notna() & (g["escape_time"] > 0)
        level = g.groupby("init_xi")["escape_time"]
        complete = escaped.groupby(g["init_xi"]).transform("all")
        enough = level.transform("size") >= MIN_PER_LEVEL
        order = ["init_xi"] + [c for c in ("seed", "run_id") if c in g.columns]
        fit = g[complete & enough].sort_values(order, kind="mergesort")
        depth = int(cell[keys.index("depth")])
        row = dict(zip(keys, cell, strict=True)) | {
            "n_runs": len(g),
            "n_levels": g["init_xi"].nunique(),
            "n_levels_fitted": fit["init_xi"].nunique(),
            "predicted_exponent": theory.escape_exponent(depth),
        }
        if row["n_levels_fitted"] < MIN_LEVELS:
            rows.append(row | {"decision": INSUFFICIENT})
            continue
        xi, t = fit["init_xi"].to_numpy(float), fit["escape_time"].to_numpy(float)
        idx = np.vstack([np.arange(xi.size), stratified_resamples(xi, n_boot, seed)])
        lx, lt = np.log(xi)[idx], np.log(t)[idx]
        _, s, rss_p = line_fits(lx, lt)
        _, _, rss_l = log_xi_fits(-lx, t[idx])
        lt0 = np.log(t)
        ratio = _log_ratio(rss_l, rss_p, float(np.sum((lt0 - lt0.mean()) ** 2)))
        (s_lo, s_hi), (r_lo, r_hi) = _interval(s[1:]), _interval(ratio[1:])
        rows.append(
            row
            | {
                "exponent": s[0],
                "exponent_lo": s_lo,
                "exponent_hi": s_hi,
                "log_rss_ratio": ratio[0],
                "log_rss_ratio_lo": r_lo,
                "log_rss_ratio_hi": r_hi,
                "decision": _decide(r_lo, r_hi, "power", "log"),
            }
        )
    return pd.DataFrame(rows, columns=[*keys, *ESCAPE_LAW_COLUMNS])


def escape_scaling(runs: pd.DataFrame) -> pd.DataFrame:
    """Escape time against the perturbation size ``xi`` (theory.md 8), one row per cell of
    perturbed rank-deficient starts (all columns of :data:`CELL` but ``init_xi``).

    Only ``xi`` levels at which every run escaped are fitted (a level with a censored run
    would bias the fit); with at least 3 such levels two models are fitted to ``log t``:
    a power law ``t = c xi^s`` (``fitted_exponent = s``) and the ``N = 2`` prediction
    ``t = a + b log(1/xi)`` (fitted in relative error, :func:`log_xi_fits`). ``rms_power``
    and ``rms_log`` are their RMS residuals in ``log t``; ``predicted_exponent`` is
    ``2 - N`` for ``N >= 3`` (NaN for ``N = 2``).
    """
    eligible = runs[runs["escape_level"].notna() & (runs["init_xi"] > 0)]
    keys = [c for c in CELL if c != "init_xi"]
    rows = []
    for cell, g in eligible.groupby(keys, sort=True, dropna=False):
        escaped = g["escape_time"].notna() & (g["escape_time"] > 0)
        complete = escaped.groupby(g["init_xi"]).transform("all")
        fit = g[complete]
        row = dict(zip(keys, cell, strict=True)) | {
            "n_runs": len(g),
            "n_escaped": int(escaped.sum()),
            "n_levels": g["init_xi"].nunique(),
            "n_levels_fitted": fit["init_xi"].nunique(),
            "xi_min_fitted": fit["init_xi"].min(),
            "xi_max_fitted": fit["init_xi"].max(),
            "predicted_exponent": theory.escape_exponent(int(cell[keys.index("depth")])),
        }
        row |= _escape_fits(fit["init_xi"].to_numpy(), fit["escape_time"].to_numpy())
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *ESCAPE_COLUMNS])


ESCAPE_COLUMNS = [
    "n_runs", "n_escaped", "n_levels", "n_levels_fitted", "xi_min_fitted", "xi_max_fitted",
    "predicted_exponent", "fitted_exponent", "power_prefactor", "log_intercept", "log_slope",
    "rms_power", "rms_log",
]  # fmt: skip


def _escape_fits(xi: np.ndarray, t: np.ndarray) -> dict:
    """Power-law and log(1/xi) fits of escape times (see :func:`escape_scaling`)."""
    nan = dict.fromkeys(ESCAPE_COLUMNS[7:], np.nan)
    if np.unique(xi).size < 3:
        return nan
    lx, lt = np.log(xi), np.log(t)
    c, s, rss_power = line_fits(lx, lt)
    a, b, rss_log = log_xi_fits(-lx, t)
    return {
        "fitted_exponent": float(s),
        "power_prefactor": float(np.exp(c)),
        "log_intercept": float(a),
        "log_slope": float(b),
        "rms_power": float(np.sqrt(rss_power / lt.size)),
        "rms_log": float(np.sqrt(rss_log / lt.size)),
    }


def aggregates(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables the figures plot, from a runs table: ``convergence`` (convergence_stats),
    ``ranks`` (rank_stats) and ``escape`` (escape_scaling), keyed like the rules' outputs."""
    return {
        "convergence": convergence_stats(runs),
        "ranks": rank_stats(runs),
        "escape": escape_scaling(runs),
    }
