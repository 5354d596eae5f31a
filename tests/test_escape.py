"""Theory.md 8: balanced rank-deficient starts, their escape time, and its scaling fits;
plus the digits principal-component option and fixed-norm balanced starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeplinear import data, experiments, gd, init, metrics, model, plan, stats, theory
from deeplinear.errors import InputError


def test_flow_time_sums_the_schedule():
    k = np.array([0, 1, 5, 40])
    np.testing.assert_allclose(gd.flow_time(0.1, 0.0, 10.0, k), 0.1 * k)
    steps = gd.step_sizes(0.1, 0.5, 10.0, np.arange(40))
    expect = [0.0, steps[0], steps[:5].sum(), steps.sum()]
    np.testing.assert_allclose(gd.flow_time(0.1, 0.5, 10.0, k), expect, rtol=1e-14)


def test_first_passage_is_the_first_logged_time_below_the_level():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    assert metrics.first_passage(t, [5.0, 4.0, 1.0, 0.5], 2.0) == 2.0
    assert np.isnan(metrics.first_passage(t, [5.0, 4.0, 3.0, 2.5], 2.0))


def test_escape_level_lies_between_consecutive_rank_optima():
    ds = data.synthetic(5, 4, 40, 4, 0.1, 0)
    losses = theory.optimal_losses(model.precompute(ds.X, ds.Y))
    for r in range(losses.size - 1):
        assert losses[r + 1] < theory.escape_level(losses, r) < losses[r]
    with pytest.raises(ValueError, match="rank"):
        theory.escape_level(losses, losses.size - 1)
    assert theory.escape_exponent(4) == -2 and np.isnan(theory.escape_exponent(2))


def escape_runs(times_of_xi, depth: int, seeds: int = 3) -> pd.DataFrame:
    xi = np.geomspace(1e-4, 1e-1, 7)
    rng = np.random.default_rng(0)
    rows = [
        {
            "experiment": "escape", "dataset": "d", "depth": depth, "widths": "5-5-4",
            "init": "near_balanced", "init_scale": 0.5, "init_rank": 1, "init_xi": x,
            "init_spread": 0.1, "step_rule": "constant", "step_multiple": 1.0,
            "escape_level": 1.0, "escape_time": times_of_xi(x) * np.exp(0.02 * rng.normal()),
        }
        for x in xi
        for _ in range(seeds)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_escape_fits_recover_the_form_that_generated_the_times():
    power = stats.escape_scaling(escape_runs(lambda x: 0.3 * x**-2.0, depth=4)).iloc[0]
    assert power["fitted_exponent"] == pytest.approx(-2.0, abs=0.05)
    assert power["rms_power"] < power["rms_log"]
    log = stats.escape_scaling(escape_runs(lambda x: 0.02 + 0.01 * np.log(1 / x), 2)).iloc[0]
    assert log["log_slope"] == pytest.approx(0.01, rel=0.05)
    assert log["rms_log"] < log["rms_power"]


def test_a_level_with_a_censored_run_is_left_out_of_the_fit():
    runs = escape_runs(lambda x: 0.3 * x**-1.0, depth=3)
    runs.loc[0, "escape_time"] = np.nan  # one run at the smallest xi never escaped
    row = stats.escape_scaling(runs).iloc[0]
    assert row["n_escaped"] == len(runs) - 1 and row["n_levels_fitted"] == 6
    assert row["xi_min_fitted"] > runs["init_xi"].min()


def test_escape_time_is_measured_on_a_real_run_and_grows_as_xi_shrinks():
    ds = data.synthetic(5, 4, 60, 4, 0.05, 1)
    settings = plan.Settings(time=10.0, max_iter=200_000, gtol=1e-9, log_points=300, base_seed=0)
    base = {
        "experiment": "e", "dataset": "d", "depth": 3, "hidden": 5, "init": "near_balanced",
        "init_scale": 0.5, "init_rank": 1, "init_spread": 0.1, "seed": 0,
        "step_rule": "constant", "tau": 100.0, "alpha": 0.0, "step_multiple": 1.0,
        "step_unit": "certified",
    }  # fmt: skip
    runs = [plan.Run(**base, init_xi=xi) for xi in (0.01, 0.1)]
    summary, _ = experiments.run_shard(runs, ds, settings)
    t_small, t_large = summary["escape_time"]
    assert np.isfinite(t_small) and t_small > 3 * t_large > 0


def test_digits_components_centre_project_and_add_a_bias_row():
    d = data.digits(m=400, seed=1, components=8)
    assert d.X.shape == (9, 400) and d.meta["components"] == 8
    np.testing.assert_allclose(d.X[-1], 1.0)
    np.testing.assert_allclose(d.X[:-1].mean(axis=1), 0.0, atol=1e-12)
    gram = d.X[:-1] @ d.X[:-1].T
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-9)
    assert np.all(np.diff(np.diag(gram)) <= 0)  # leading components first
    with pytest.raises(InputError, match="components"):
        data.digits(m=400, seed=1, components=500)


def test_zero_spread_gives_a_product_of_norm_scale_to_the_n_at_every_depth():
    for N in (2, 5, 9):
        W = init.balanced([4] + [6] * (N - 1) + [3], 1.0, 0, spread=0.0)
        s = np.linalg.svd(model.product(W), compute_uv=False)
        np.testing.assert_allclose(s[:3], 1.0, rtol=1e-12)
        assert metrics.balancedness(W) < 1e-12


def threshold_search(seeds: int, time: float, max_iter: int, rtol: float = 0.02, lo=0.25):
    family = {
        "name": "balanced", "dataset": "white", "hidden_width": 4,
        "init": {"kind": "balanced", "scale": 1.0, "spread": 0.0},
    }  # fmt: skip
    config = {
        "families": [family], "depths": [2], "seeds": seeds, "time": time,
        "max_iter": max_iter, "gtol": 1e-6, "lo": lo, "hi": 2.0, "rtol": rtol,
    }  # fmt: skip
    return plan.ThresholdSearch.from_config(config, base_seed=0)


def test_critical_step_is_found_at_the_edge_of_stability_of_the_balanced_minimum():
    """N = 2, whitened data: no constant step above 2 / S of the flattest (balanced)
    minimizer can converge, and the bisection finds the edge within its tolerance; the
    minimizer reached at the critical step has sharpness about 2 / critical_eta."""
    ds = data.synthetic(4, 3, 30, 3, 0.0, 0, whiten=True)
    rtol = 0.05
    search = threshold_search(3, time=20, max_iter=200_000, rtol=rtol)
    table = experiments.critical_steps(search.runs, ds, search)
    ratio = table["critical_eta"] / table["eos_eta"]
    assert ratio.between(0.5, 1 + 2 * rtol).all(), ratio.tolist()
    assert table["critical_times_sharpness"].between(1.5, 2 * (1 + 2 * rtol)).all()
    assert (table["critical_multiple"] > 1).all()  # the certified bound is conservative
    assert not table["critical_at_upper_end"].any()


def test_a_lower_end_that_diverges_moves_down_and_the_result_does_not_depend_on_it():
    ds = data.synthetic(4, 3, 30, 3, 0.0, 0, whiten=True)
    said = []
    low = threshold_search(2, time=20, max_iter=200_000, rtol=0.05)
    high = threshold_search(2, time=20, max_iter=200_000, rtol=0.05, lo=1.5)
    a = experiments.critical_steps(low.runs, ds, low)
    b = experiments.critical_steps(high.runs, ds, high, progress=said.append)
    assert said[0] == "lower ends: 0 of 2 converged, 2 moved down"
    np.testing.assert_allclose(a["critical_eta"], b["critical_eta"], rtol=0.1)


def test_a_start_too_slow_for_its_flow_time_gets_no_critical_step():
    ds = data.synthetic(4, 3, 30, 3, 0.0, 0, whiten=True)
    said = []
    search = threshold_search(2, time=1e-3, max_iter=10)
    table = experiments.critical_steps(search.runs, ds, search, progress=said.append)
    assert table["critical_multiple"].isna().all()
    assert table["sharpness_reached"].isna().all()
    assert said == ["lower ends: 0 of 2 converged, 0 moved down"]


def test_sharpness_at_the_balanced_minimizer_has_its_closed_form():
    ds = data.synthetic(4, 4, 40, 4, 0.0, 3, whiten=True)
    prob = model.precompute(ds.X, ds.Y)
    sigma1 = np.linalg.svd(prob.P_star, compute_uv=False)[0]
    for N in (1, 2, 3, 5):
        W = theory.balanced_minimizer(prob, [4] * (N + 1))
        expected = theory.sharpness_whitened(40.0, N, sigma1)
        np.testing.assert_allclose(theory.sharpness_at(prob, W), expected, rtol=1e-8)
