"""Statistics behind the claim verdicts: depth laws and escape laws with bootstrap
intervals (theory.md 13), and the sharpness at an arbitrary point (theory.md 9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeplinear import data, model, stats, theory

DEPTHS = range(2, 21)


def starts(eta_of_depth, depths=DEPTHS, seeds: int = 3, noise: float = 0.05, rng_seed: int = 0):
    """One row per start: a step size with lognormal seed noise around ``eta_of_depth``."""
    rng = np.random.default_rng(rng_seed)
    rows = [
        {"family": "f", "depth": N, "seed": s, "eta": eta_of_depth(N) * np.exp(noise * z)}
        for N in depths
        for s, z in zip(range(seeds), rng.standard_normal(seeds), strict=True)
    ]
    return pd.DataFrame(rows)


def test_depth_law_recovers_a_power_law_and_its_exponent():
    row = stats.depth_law(starts(lambda N: 0.3 * N**-2.0), "eta").iloc[0]
    assert row["decision"] == "power"
    assert row["p"] == pytest.approx(-2.0, abs=0.05)
    assert row["p_lo"] < row["p"] < row["p_hi"] and row["p_hi"] - row["p_lo"] < 0.2
    assert row["log_rss_ratio_lo"] > 0 and row["n_depths"] == 19 and row["n_starts"] == 57


def test_depth_law_recovers_an_exponential_and_its_factor_per_layer():
    row = stats.depth_law(starts(lambda N: 0.8**N), "eta").iloc[0]
    assert row["decision"] == "exponential" and row["log_rss_ratio_hi"] < 0
    assert row["q"] == pytest.approx(0.8, abs=0.01) and row["q_lo"] < row["q"] < row["q_hi"]


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0.3, 4.0), seed=st.integers(0, 10**6))
def test_any_power_law_is_decided_power(p, seed):
    row = stats.depth_law(starts(lambda N: N**-p, rng_seed=seed), "eta").iloc[0]
    assert row["decision"] == "power"


@settings(max_examples=20, deadline=None)
@given(q=st.floats(0.3, 0.9), seed=st.integers(0, 10**6))
def test_any_exponential_below_0_9_per_layer_is_decided_exponential(q, seed):
    row = stats.depth_law(starts(lambda N: q**N, rng_seed=seed), "eta").iloc[0]
    assert row["decision"] == "exponential"


def test_depth_law_is_undecided_on_a_flat_step_and_needs_three_depths_with_two_starts():
    assert stats.depth_law(starts(lambda N: 1.0 + 0 * N), "eta").iloc[0]["decision"] == (
        stats.UNDECIDED
    )
    few = starts(lambda N: N**-1.0, depths=[2, 3])
    assert stats.depth_law(few, "eta").iloc[0]["decision"] == stats.INSUFFICIENT
    single = starts(lambda N: N**-1.0, seeds=1)
    row = stats.depth_law(single, "eta").iloc[0]
    assert row["decision"] == stats.INSUFFICIENT and row["n_depths"] == 0


def test_depth_law_leaves_out_unmeasured_steps_and_thin_depths():
    t = starts(lambda N: N**-1.0, depths=[2, 3, 4, 5])
    t.loc[(t["depth"] == 5) & (t["seed"] > 0), "eta"] = np.nan  # one start left at N = 5
    row = stats.depth_law(t, "eta").iloc[0]
    assert row["depths"] == "2,3,4" and row["n_starts"] == 9


def test_depth_law_is_deterministic_and_independent_of_row_order():
    t = starts(lambda N: N**-1.5, noise=0.3)
    a = stats.depth_law(t, "eta")
    b = stats.depth_law(t.sample(frac=1.0, random_state=3), "eta")
    pd.testing.assert_frame_equal(a, b)
    other = stats.depth_law(t, "eta", seed=1)
    assert other["p_lo"].iloc[0] != a["p_lo"].iloc[0]  # the interval is a bootstrap one


def test_stratified_resamples_keep_each_stratum_and_its_size():
    strata = np.array([2, 2, 2, 5, 5, 9])
    idx = stats.stratified_resamples(strata, n_boot=50, seed=0)
    assert idx.shape == (50, 6)
    np.testing.assert_array_equal(strata[idx], np.broadcast_to(strata, (50, 6)))
    assert len({tuple(r) for r in idx}) > 1


def escape_cell(times_of_xi, depth: int, levels: int = 7, per_level: int = 3, noise=0.05):
    xi = np.geomspace(1e-4, 1e-1, levels)
    rng = np.random.default_rng(1)
    rows = [
        {
            "experiment": "escape", "dataset": "d", "depth": depth, "widths": "5-5-4",
            "init": "near_balanced", "init_scale": 0.5, "init_rank": 1, "init_xi": x,
            "init_spread": 0.1, "step_rule": "constant", "step_multiple": 1.0, "seed": s,
            "escape_level": 1.0, "escape_time": times_of_xi(x) * np.exp(noise * rng.normal()),
        }
        for x in xi
        for s in range(per_level)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_escape_law_tells_a_power_of_xi_from_log_1_over_xi():
    power = stats.escape_law(escape_cell(lambda x: 0.3 * x**-1.0, depth=3)).iloc[0]
    assert power["decision"] == "power" and power["predicted_exponent"] == -1
    assert power["exponent"] == pytest.approx(-1.0, abs=0.05)
    assert power["exponent_lo"] < power["exponent"] < power["exponent_hi"]
    log = stats.escape_law(escape_cell(lambda x: 0.02 + 0.01 * np.log(1 / x), 2)).iloc[0]
    assert log["decision"] == "log" and log["log_rss_ratio_hi"] < 0


def test_escape_law_needs_five_complete_levels_with_two_runs_each():
    few = stats.escape_law(escape_cell(lambda x: x**-1.0, 3, levels=4)).iloc[0]
    assert few["decision"] == stats.INSUFFICIENT
    single = stats.escape_law(escape_cell(lambda x: x**-1.0, 3, per_level=1)).iloc[0]
    assert single["decision"] == stats.INSUFFICIENT
    cell = escape_cell(lambda x: x**-1.0, 3, levels=5)
    cell.loc[0, "escape_time"] = np.nan  # a censored run removes its whole level
    row = stats.escape_law(cell).iloc[0]
    assert row["n_levels_fitted"] == 4 and row["decision"] == stats.INSUFFICIENT
    assert stats.escape_law(cell.iloc[:0]).empty


def test_log_xi_fit_is_exact_on_its_own_law_and_batches_along_the_last_axis():
    u = np.log(1 / np.geomspace(1e-4, 1e-1, 6))
    a, b, rss = stats.log_xi_fits(u, 0.5 + 0.2 * u)
    assert a == pytest.approx(0.5) and b == pytest.approx(0.2) and rss < 1e-20
    a2, b2, _ = stats.log_xi_fits(np.stack([u, u]), np.stack([0.5 + 0.2 * u, 1 + 3 * u]))
    np.testing.assert_allclose([a2, b2], [[0.5, 1.0], [0.2, 3.0]])


def test_step_thresholds_summarize_each_family_and_depth():
    t = starts(lambda N: N**-1.0, depths=[2, 3], seeds=4, noise=0.0)
    t = t.rename(columns={"eta": "eta_cert"})
    t["critical_eta"] = 3 * t["eta_cert"]
    t.loc[0, "critical_eta"] = np.nan
    t = t.assign(critical_multiple=3.0, eos_eta=1.0, acgh_eta=np.nan, delta0=0.0, run_id="r")
    out = stats.step_thresholds(t)
    assert list(out["depth"]) == [2, 3] and list(out["n_starts"]) == [4, 4]
    assert list(out["n_critical_found"]) == [3, 4]
    np.testing.assert_allclose(out["cert_over_critical"], 1 / 3)


# --- sharpness at an arbitrary point (theory.md 9) ---------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_sharpness_at_the_balanced_minimizer_matches_the_closed_form_recipe(depth):
    ds = data.synthetic(4, 3, 40, 3, 0.1, 2)
    prob = model.precompute(ds.X, ds.Y)
    widths = [4] + [3] * (depth - 1) + [3]
    W = theory.balanced_minimizer(prob, widths)
    assert theory.sharpness_at(prob, W) == pytest.approx(theory.sharpness(prob, widths), rel=1e-8)


def test_sharpness_at_matches_the_whitened_closed_form():
    ds = data.synthetic(3, 3, 30, 3, 0.0, 0, whiten=True)
    prob = model.precompute(ds.X, ds.Y)
    c = float(prob.C[0, 0])
    s1 = float(np.linalg.svd(prob.P_star, compute_uv=False)[0])
    for N in (2, 3):
        W = theory.balanced_minimizer(prob, [3] * (N + 1))
        expect = theory.sharpness_whitened(c, N, s1)
        assert theory.sharpness_at(prob, W) == pytest.approx(expect, rel=1e-8)


def finite_difference_hessian(W, X, Y, h=1e-5) -> np.ndarray:
    """Central differences of the exact gradient, symmetrized."""
    shapes = [Wj.shape for Wj in W]
    flat = np.concatenate([Wj.ravel() for Wj in W])

    def grad(v):
        parts = np.split(v, np.cumsum([a * b for a, b in shapes])[:-1])
        G = model.gradients([p.reshape(s) for p, s in zip(parts, shapes, strict=True)], X, Y)
        return np.concatenate([g.ravel() for g in G])

    H = np.column_stack(
        [(grad(flat + h * e) - grad(flat - h * e)) / (2 * h) for e in np.eye(flat.size)]
    )
    return 0.5 * (H + H.T)


def test_sharpness_at_a_random_point_is_the_top_eigenvalue_of_the_hessian():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((3, 10)), rng.standard_normal((2, 10))
    prob = model.precompute(X, Y)
    W = [rng.standard_normal((4, 3)), rng.standard_normal((3, 4)), rng.standard_normal((2, 3))]
    eig = np.linalg.eigvalsh(finite_difference_hessian(W, X, Y))
    assert eig[0] < 0 < eig[-1]  # an indefinite Hessian: the largest algebraic one counts
    assert theory.sharpness_at(prob, W) == pytest.approx(eig[-1], rel=1e-6)
    tiny = [np.array([[0.7]]), np.array([[-1.3]])]  # two parameters: the dense branch
    X1, Y1 = X[:1], Y[:1]
    eig1 = np.linalg.eigvalsh(finite_difference_hessian(tiny, X1, Y1))
    prob1 = model.precompute(X1, Y1)
    assert theory.sharpness_at(prob1, tiny) == pytest.approx(eig1[-1], rel=1e-6)


@pytest.mark.parametrize("depth", [2, 3])
def test_every_factorization_of_the_optimum_is_at_least_as_sharp_as_the_proven_minimum(depth):
    """theory.md 13: S(W) >= lam_min N sigma_1(P*)^(2(N-1)/N) at every global minimizer
    of a network that can represent P*; the balanced one is not the flattest unless the
    data are whitened, but no factorization goes below the bound."""
    ds = data.synthetic(4, 3, 40, 3, 0.1, 2)
    prob = model.precompute(ds.X, ds.Y)
    s1 = float(np.linalg.svd(prob.P_star, compute_uv=False)[0])
    bound = prob.lam_min * depth * s1 ** (2 * (depth - 1) / depth)
    W = theory.balanced_minimizer(prob, [4] * depth + [3])
    rng = np.random.default_rng(0)
    for _ in range(20):
        V = list(W)
        for j in range(depth - 1):
            A = np.eye(4) + 0.5 * rng.standard_normal((4, 4))
            V[j], V[j + 1] = A @ V[j], V[j + 1] @ np.linalg.inv(A)
        np.testing.assert_allclose(model.product(V), model.product(W), atol=1e-9)
        assert theory.sharpness_at(prob, V) >= bound * (1 - 1e-9)
