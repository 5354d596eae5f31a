"""Verdicts on the paper's five claims, computed from the result tables by fixed rules.

Each claim gets a row: the evidence (which runs, how many), the measured quantity, the
verdict (``supported``, ``not supported`` or ``inconclusive``) and the rule that produced
it. The rules are stated in :data:`RULES` and applied verbatim; nothing is judged by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"

STATEMENTS = {
    1: "Within the step-size bound GD stays bounded, stays approximately balanced, "
    "decreases the loss and converges",
    2: "The maximal permissible step size does not decrease exponentially with the depth N",
    3: "N = 2: for almost all starts GD converges to a global minimum",
    4: "N >= 3: GD converges to the optimum on the manifold of some rank r, r not fixed a priori",
    5: "Step sizes beyond the bound can make training fail",
}

RULES = {
    1: "supported if every run with step multiple <= 1 kept sufficient decrease at every "
    "step, its logged balance drift <= 2 eta_cert eps0 and layer norms <= K, and none "
    "diverged; not supported if any run broke one of these",
    2: "supported if, for the certified bound and for the measured critical step (depths "
    "where it was found), a power law in N fits log(eta) at least as well as an exponential "
    "in N (RMS residual) or the fitted decay per added layer is slower than a factor 1/2; "
    "not supported otherwise; inconclusive with fewer than 3 depths",
    3: "supported if >= 99% of N = 2 runs within the bound from generic starts (all but "
    "exactly balanced rank-deficient ones) reached the global minimum and, in every cell "
    "of escape data (escape_scaling.csv, >= 5 xi levels where every run escaped), "
    "t = a + b log(1/xi) fits log t at least as well as a power law (theory.md 8); "
    "inconclusive if the shortfall is only "
    "runs that did not converge within budget",
    4: "supported if >= 99% of converged N >= 3 runs within the bound are optimal on the "
    "manifold of their limit rank and, in every cell of escape data, the fitted power of "
    "xi is within 25% of the predicted 2 - N and fits better than log(1/xi); "
    "inconclusive if fewer than 10 such runs",
    5: "supported if some run above the bound diverged or failed to converge while the "
    "same start converged within the bound; inconclusive if no run above the bound or no "
    "start that converged within it",
}


def _row(claim: int, evidence: str, n: int, measured: str, verdict: str) -> dict:
    return {
        "claim": claim,
        "statement": STATEMENTS[claim],
        "evidence": evidence,
        "n_runs": n,
        "measured": measured,
        "verdict": verdict,
        "rule": RULES[claim],
    }


def claim1(runs: pd.DataFrame) -> dict:
    w = runs[runs["step_multiple"] <= 1]
    if w.empty:
        return _row(1, "no run within the bound", 0, "", INCONCLUSIVE)
    ok_dec = w["decrease_failures"] == 0
    ok_drift = w["max_balance_drift"] <= w["bound_drift"]
    ok_norm = w["max_weight_norm"] <= w["bound_weight_norm"]
    not_div = w["status"] != "diverged"
    conv = (w["status"] == "converged").mean()
    drift = (w["max_balance_drift"] / w["bound_drift"]).max()
    norm = (w["max_weight_norm"] / w["bound_weight_norm"]).max()
    measured = (
        f"decrease kept {ok_dec.mean():.1%}, drift/bound max {drift:.3g}, "
        f"norm/K max {norm:.3g}, diverged {1 - not_div.mean():.1%}, "
        f"converged within budget {conv:.1%}"
    )
    good = (ok_dec & ok_drift & ok_norm & not_div).all()
    evidence = f"all runs with multiple <= 1 ({w['experiment'].nunique()} experiments)"
    return _row(1, evidence, len(w), measured, SUPPORTED if good else NOT_SUPPORTED)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares line ``y = a + b x``: ``(RMS residual, slope b)``."""
    A = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(np.sqrt(np.mean((A @ coef - y) ** 2))), float(coef[1])


def _fits(depth: np.ndarray, eta: np.ndarray) -> tuple[float, float, float]:
    """RMS residuals of power-law and exponential fits of log(eta), and decay per layer."""
    y = np.log(eta)
    power, _ = _fit(np.log(depth), y)
    expo, slope = _fit(depth.astype(float), y)
    return power, expo, float(np.exp(slope))


def claim2(thresholds: pd.DataFrame) -> dict:
    t = thresholds.groupby("depth")[["eta_cert", "critical_eta"]].median().reset_index()
    if len(t) < 3:
        return _row(2, "fewer than 3 depths", len(t), "", INCONCLUSIVE)
    parts, good = [], True
    for col in ("eta_cert", "critical_eta"):
        ok = t[np.isfinite(t[col])]  # depths where the search found no step are left out
        if len(ok) < 3:
            return _row(2, f"{col} known at fewer than 3 depths", len(ok), "", INCONCLUSIVE)
        power, expo, per_layer = _fits(ok["depth"].to_numpy(), ok[col].to_numpy())
        parts.append(
            f"{col} (N = {ok['depth'].min()}-{ok['depth'].max()}): RMS power {power:.3g} vs "
            f"exp {expo:.3g}, factor per layer {per_layer:.3f}"
        )
        good &= power <= expo or per_layer > 0.5
    n = int(thresholds["n_starts"].sum()) if "n_starts" in thresholds else len(thresholds)
    evidence = f"threshold search, depths {t['depth'].min()}-{t['depth'].max()}"
    return _row(2, evidence, n, "; ".join(parts), SUPPORTED if good else NOT_SUPPORTED)


def _generic(runs: pd.DataFrame) -> pd.Series:
    """Starts outside the measure-zero set of exactly balanced rank-deficient starts."""
    exact = (runs["init"] == "balanced") & (runs["init_rank"] < runs["widths"].map(_r_max))
    return ~exact


def _r_max(widths: str) -> int:
    return min(int(d) for d in str(widths).split("-"))


def _exact_kept_rank(runs: pd.DataFrame) -> str:
    """How many exactly balanced rank-deficient starts ended at rank <= their start's."""
    exact = runs[~_generic(runs) & (runs["status"] != "diverged")]
    if exact.empty:
        return ""
    kept = (exact["final_rank"] <= exact["init_rank"]).sum()
    return f"; exact rank-deficient starts that kept their rank {kept}/{len(exact)}"


def _escape_cells(escape: pd.DataFrame | None, n2: bool) -> pd.DataFrame:
    """Fitted cells of the escape table for N = 2 (``n2``) or N >= 3."""
    if escape is None or escape.empty:
        return pd.DataFrame(columns=["depth", "fitted_exponent", "rms_power", "rms_log"])
    e = escape[(escape["n_levels_fitted"] >= 5) & (escape["step_multiple"] <= 1)]
    return e[(e["depth"] == 2) == n2]


def claim3(runs: pd.DataFrame, escape: pd.DataFrame | None = None) -> dict:
    w = runs[(runs["depth"] == 2) & (runs["step_multiple"] <= 1)]
    if w[_generic(w)].empty:
        return _row(3, "no N = 2 run within the bound", 0, "", INCONCLUSIVE)
    exact_text = _exact_kept_rank(w)
    w = w[_generic(w)]
    frac = w["global_optimal"].mean()
    short = w[~w["global_optimal"]]
    only_budget = (short["status"] == "budget_exhausted").all()
    e = _escape_cells(escape, n2=True)
    log_wins = bool((e["rms_log"] <= e["rms_power"]).all())
    escape_text = (
        f"; escape time vs xi ({len(e)} cells): RMS of log t, log(1/xi) fit "
        f"{e['rms_log'].max():.3g} vs power fit {e['rms_power'].min():.3g}"
        if len(e)
        else "; no escape data"
    )
    if frac >= 0.99 and log_wins:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE if only_budget and log_wins else NOT_SUPPORTED
    measured = (
        f"global minimum reached by {frac:.1%}; not converged {len(short)}{exact_text}{escape_text}"
    )
    return _row(3, "N = 2, multiple <= 1, generic starts", len(w), measured, verdict)


def claim4(runs: pd.DataFrame, escape: pd.DataFrame | None = None) -> dict:
    w = runs[(runs["depth"] >= 3) & (runs["step_multiple"] <= 1)]
    c = w[w["status"] == "converged"]
    if len(c) < 10:
        return _row(4, "fewer than 10 converged N >= 3 runs", len(c), "", INCONCLUSIVE)
    frac = c["rank_optimal"].mean()
    glob = c["global_optimal"].mean()
    ranks = sorted(int(r) for r in c["final_rank"].unique())
    e = _escape_cells(escape, n2=False)
    pred = 2.0 - e["depth"]
    scaling_ok = bool(
        ((e["fitted_exponent"] - pred).abs() <= 0.25 * pred.abs()).all()
        and (e["rms_power"] <= e["rms_log"]).all()
    )
    exps = ", ".join(f"N = {int(r.depth)}: {r.fitted_exponent:.2f}" for r in e.itertuples())
    escape_text = f"; fitted power of xi in the escape time ({exps})" if len(e) else ""
    measured = (
        f"rank-r optimal {frac:.1%}, of which global {glob:.1%}; limit ranks seen {ranks}"
        f"{_exact_kept_rank(w)}{escape_text}"
    )
    verdict = SUPPORTED if frac >= 0.99 and scaling_ok else NOT_SUPPORTED
    return _row(4, "converged N >= 3 runs with multiple <= 1", len(c), measured, verdict)


def claim5(runs: pd.DataFrame) -> dict:
    above = runs[runs["step_multiple"] > 1]
    if above.empty:
        return _row(5, "no run above the bound", 0, "", INCONCLUSIVE)
    fail = above["status"] != "converged"
    keys = ["experiment", "depth", "widths", "init", "init_scale", "init_rank", "seed"]
    ok_within = runs[(runs["step_multiple"] <= 1) & (runs["status"] == "converged")][keys]
    paired = above[fail].merge(ok_within.drop_duplicates(), on=keys)
    div = (above["status"] == "diverged").mean()
    measured = (
        f"above the bound: diverged {div:.1%}, not converged {fail.mean():.1%}; "
        f"{len(paired)} failures whose start converged within the bound"
    )
    if len(paired) > 0:
        verdict = SUPPORTED
    else:  # without a start that converged within the bound there is no comparison
        verdict = NOT_SUPPORTED if len(ok_within) else INCONCLUSIVE
    return _row(5, "runs with multiple > 1", len(above), measured, verdict)


def verdicts(
    runs: pd.DataFrame, thresholds: pd.DataFrame, escape: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The claims table: one row per claim (``escape`` is escape_scaling.csv)."""
    rows = [
        claim1(runs),
        claim2(thresholds),
        claim3(runs, escape),
        claim4(runs, escape),
        claim5(runs),
    ]
    return pd.DataFrame(rows)


README_START = "<!-- claims:start (generated by the workflow's claims rule; do not edit) -->"
README_END = "<!-- claims:end -->"


def update_readme(readme: str, markdown: str) -> str:
    """``readme`` with the text between the claims markers replaced by ``markdown``."""
    if README_START not in readme or README_END not in readme:
        raise ValueError("README has no claims markers")
    head, rest = readme.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{markdown}{README_END}{tail}"


def to_markdown(table: pd.DataFrame) -> str:
    """The claims table as Markdown (for the README)."""
    lines = ["| claim | statement | evidence (runs) | measured | verdict |", "|---" * 5 + "|"]
    for r in table.itertuples():
        lines.append(
            f"| {r.claim} | {r.statement} | {r.evidence} ({r.n_runs}) | {r.measured} "
            f"| **{r.verdict}** |"
        )
    lines.append("")
    lines.append("Rules (applied by `deeplinear.claims` to the tables, never by hand):")
    lines.append("")
    lines += [f"{r.claim}. {r.rule}." for r in table.itertuples()]
    return "\n".join(lines) + "\n"
