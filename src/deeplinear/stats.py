"""Aggregates of the per-run table that the figures plot (pipeline.md, "Output contracts")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deeplinear import theory

#: Columns that identify a grid cell (all seeds of one setting).
CELL = [
    "experiment",
    "dataset",
    "depth",
    "widths",
    "init",
    "init_scale",
    "init_rank",
    "init_xi",
    "init_spread",
    "step_rule",
    "step_multiple",
]


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
    """Per depth and init: median (and range) over starts of the certified bound, the
    empirical critical step, 2/sharpness and the ACGH 2019 bound."""
    g = table.groupby(["depth", "widths", "init"], sort=True)
    out = g.agg(
        n_starts=("run_id", "size"),
        eta_cert=("eta_cert", "median"),
        eta_cert_min=("eta_cert", "min"),
        eta_cert_max=("eta_cert", "max"),
        critical_eta=("critical_eta", "median"),
        critical_eta_min=("critical_eta", "min"),
        critical_eta_max=("critical_eta", "max"),
        critical_multiple=("critical_multiple", "median"),
        eos_eta=("eos_eta", "median"),
        acgh_eta=("acgh_eta", "median"),
        acgh_defined=("acgh_eta", lambda s: int(s.notna().sum())),
        acgh_eta_near_target=("acgh_eta_near_target", "median"),
        n_critical_found=("critical_eta", lambda s: int(s.notna().sum())),
        delta0=("delta0", "median"),
    ).reset_index()
    out["cert_over_critical"] = out["eta_cert"] / out["critical_eta"]
    return out


def escape_scaling(runs: pd.DataFrame) -> pd.DataFrame:
    """Escape time against the perturbation size ``xi`` (theory.md 8), one row per cell of
    perturbed rank-deficient starts (all columns of :data:`CELL` but ``init_xi``).

    Only ``xi`` levels at which every run escaped are fitted (a level with a censored run
    would bias the fit); with at least 3 such levels two models are fitted to ``log t``:
    a power law ``t = c xi^s`` (``fitted_exponent = s``) and the ``N = 2`` prediction
    ``t = a + b log(1/xi)``. ``rms_power`` and ``rms_log`` are their RMS residuals in
    ``log t``; ``predicted_exponent`` is ``2 - N`` for ``N >= 3`` (NaN for ``N = 2``).
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
    A = np.column_stack([np.ones_like(lx), lx])
    (c, s), *_ = np.linalg.lstsq(A, lt, rcond=None)
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(lx), -lx]), t, rcond=None)
    pred_log = a - b * lx
    rms_log = np.sqrt(np.mean((np.log(pred_log) - lt) ** 2)) if np.all(pred_log > 0) else np.inf
    return {
        "fitted_exponent": s,
        "power_prefactor": np.exp(c),
        "log_intercept": a,
        "log_slope": b,
        "rms_power": np.sqrt(np.mean((A @ [c, s] - lt) ** 2)),
        "rms_log": rms_log,
    }
