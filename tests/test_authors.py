"""The authors' experiment (figure 8): its data, the position of a step, the curve numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deeplinear import authors, data, experiments, plan
from deeplinear.errors import InputError
from tests.conftest import ROOT


def test_x_scale_gives_x_xt_equal_c_times_identity_and_y_follows():
    m, c = 100, 2.0
    ds = data.synthetic(6, 6, m, 3, 0.0, 8, whiten=True, x_scale=math.sqrt(c / m))
    assert np.allclose(ds.X @ ds.X.T, c * np.eye(6))
    base = data.synthetic(6, 6, m, 3, 0.0, 8, whiten=True)
    assert np.allclose(ds.Y, math.sqrt(c / m) * base.Y)  # same A, so Y = A X scales with X
    with pytest.raises(InputError, match="x_scale"):
        data.synthetic(6, 6, m, 3, 0.0, 8, x_scale=0.0)


def test_the_authors_start_has_loss_near_one_hundred():
    """The reading of config/README.md: with X X^T = 2 I the loss is ||P - A||_F^2, and a
    random orthogonal P against A of rank 35 in [0.3, 1] gives about 70 + ||A||_F^2 ~ 84."""
    cfg = plan.load(ROOT / "config/config.yaml", ROOT / "workflow/schemas/config.schema.yaml")
    spec = dict(cfg["datasets"]["authors"])
    ds = data.make(spec.pop("kind"), **spec)
    exp = plan.Plan.from_config(cfg).experiments["authors"]
    run = exp.runs[0]
    W = experiments.initial_weights(run, experiments.widths_of(run, ds), exp.settings.base_seed)
    P = np.linalg.multi_dot(W[::-1])
    assert np.allclose(np.linalg.svd(P, compute_uv=False), 1.0)
    loss = 0.5 * np.linalg.norm(ds.Y - P @ ds.X) ** 2
    A_F2 = np.sum(np.geomspace(1.0, 0.3, 35) ** 2)
    assert loss == pytest.approx(70 + A_F2, rel=0.1)
    assert 50 < loss < 150


@pytest.mark.parametrize(
    ("eta", "critical", "expected"),
    [
        (1e-3, 0.1, authors.INSIDE),
        (2e-2, 0.1, authors.BETWEEN),
        (0.2, 0.1, authors.ABOVE_CRITICAL),
        (0.2, math.nan, authors.ABOVE_UNMEASURED),
        (0.6, math.nan, authors.ABOVE_EDGE),
    ],
)
def test_position_of_a_step(eta, critical, expected):
    assert authors.position(eta, eta_bound=1e-2, critical_eta=critical, eos_eta_max=0.5) == expected


def test_plateau_finder_on_a_synthetic_staircase():
    """Loss 10 until k = 100, a power-law drop to 1 by k = 1000, flat at 1 until 10^5, then
    a drop: two plateaus (factors 100 and 100), at levels 10 and 1; the drop is not one."""
    k = np.unique(np.geomspace(1, 1e6, 400).astype(int))
    loss = np.where(k <= 100, 10.0, 10.0 * (k / 100.0) ** -1.0)
    loss = np.where(k >= 1000, 1.0, loss)
    loss = np.where(k > 1e5, (k / 1e5) ** -2.0, loss)
    found = authors.plateaus(k - 1, loss)
    assert len(found) == 2
    # each plateau reaches into its neighbouring drops by up to 10 % of its level
    assert found["level"].tolist() == pytest.approx([10.0, 1.0], rel=0.01)
    assert found["start"].iloc[0] == 0 and 900 <= found["start"].iloc[1] + 1 <= 1000
    assert found["factor"].tolist() == pytest.approx([100.0, 100.0], rel=0.15)


def test_no_plateau_on_a_power_law_and_slow_drift_within_ten_percent_is_one():
    k = np.geomspace(1, 1e6, 300)
    assert authors.plateaus(k - 1, k**-0.5).empty  # factor 10 in k: loss drops by 3.2
    drift = 1.0 + 0.05 * np.log10(k) / 6  # 5 % over six decades: one plateau, all of it
    found = authors.plateaus(k - 1, drift)
    assert len(found) == 1 and found["factor"].iloc[0] == pytest.approx(1e6)


def test_first_below_and_curve_numbers():
    it = np.array([0, 10, 100, 1000, 10000])
    loss = np.array([100.0, 99.0, 1.0, 1e-7, 1e-9])
    assert authors.first_below(it, loss, 1e-6) == 1000
    assert math.isnan(authors.first_below(it, loss, 1e-12))
    norms = np.array([1.0, 0.8, 0.9, 1.0, 1.0])
    out = authors.curve_numbers(it, loss, norms, optimal_loss=0.0)
    assert out["iterations_to_excess"] == 1000 and out["final_excess"] == 1e-9
    assert (out["product_norm_min"], out["product_norm_max"]) == (0.8, 1.0)
    assert out["plateaus"] == 0  # the flat start (0..10) is not counted


def test_table_joins_runs_trajectories_and_critical_steps():
    runs = pd.DataFrame(
        {
            "experiment": "authors", "run_id": ["a", "b"], "depth": [2, 3],
            "widths": ["4-4-4", "4-4-4-4"], "seed": 0, "eta": 3e-5, "eta_bound": [1e-2, 1e-5],
            "eos_eta": [0.5, 1 / 3], "eos_eta_max": [0.5, 1 / 3], "iterations": 100,
            "status": "budget_exhausted", "initial_loss": 80.0, "final_loss": [1e-3, 1e-2],
            "optimal_loss": 0.0,
        }
    )  # fmt: skip
    traj = pd.DataFrame(
        {
            "run_id": ["a"] * 3 + ["b"] * 3,
            "iteration": [0, 10, 100] * 2,
            "loss": [80.0, 10.0, 1e-3, 80.0, 20.0, 1e-2],
            "product_norm": [1.0, 0.9, 1.0, 1.0, 0.7, 0.95],
        }
    )
    critical = pd.DataFrame(
        {
            "run_id": ["b", "a"],
            "critical_eta": [0.2, math.nan],
            "sharpness_reached": [6.0, math.nan],
            "stable_eta": [0.3, 0.6],
            "stable_at_upper_end": [False, False],
        }
    )
    out = authors.table(runs, traj, critical)
    assert list(out.columns) == list(authors.COLUMNS)
    a, b = out.iloc[0], out.iloc[1]
    assert a["position"] == authors.INSIDE and a["eta_over_bound"] == pytest.approx(3e-3)
    assert b["position"] == authors.BETWEEN and b["eta_over_critical"] == pytest.approx(1.5e-4)
    assert b["eos_eta_reached"] == pytest.approx(1 / 3) and b["product_norm_min"] == 0.7
    assert a["eta_over_stable"] == pytest.approx(5e-5)


def test_depth_labels_give_the_median_ratio_per_depth():
    table = pd.DataFrame({"depth": [2, 2, 5], "eta_over_bound": [0.001, 0.003, 0.07]})
    labels = authors.depth_labels(table)
    assert list(labels) == [2, 5]
    assert "0.002" in labels[2] and "0.07" in labels[5] and labels[5].startswith("N = 5")


def test_critical_search_uses_the_config_search_on_the_authors_starts():
    cfg = plan.load(ROOT / "config/smoke.yaml", ROOT / "workflow/schemas/config.schema.yaml")
    the_plan = plan.Plan.from_config(cfg)
    runs = the_plan.experiments["authors"].runs
    groups = authors.by_architecture(runs)
    assert [g[0].depth for g in groups] == [2, 3, 5]
    assert all(len({(r.depth, r.hidden) for r in g}) == 1 for g in groups)
    assert sum(len(g) for g in groups) == len(runs)
    search = authors.critical_search(the_plan.threshold, groups[0])
    assert search.runs == groups[0] and search.settings == the_plan.threshold.settings
    assert (search.lo, search.hi, search.rtol) == (
        the_plan.threshold.lo, the_plan.threshold.hi, the_plan.threshold.rtol,
    )  # fmt: skip


def test_stable_step_brackets_the_edge_of_stability_on_whitened_data():
    """A start near the balanced minimizer of whitened data (X X^T = 2 I, so the loss is
    ||P - A||_F^2 and the sharpness there is 2 N ||A||_2^(2 - 2/N) = 2 N): GD stays bounded
    below 2/S and diverges above it, so the largest non-diverging step is within a few
    percent of 2/S = 1/N, far above the certified step."""
    m = 50
    ds = data.synthetic(3, 3, m, 3, 0.0, 4, whiten=True, x_scale=math.sqrt(2 / m))
    run = plan.Run("t", "d", 2, 3, "balanced", 1.0, None, 0.0, 0.0, 0, "constant", 100.0, 0.0,
                   1.0, "certified")  # fmt: skip
    settings = plan.Settings(time=20.0, max_iter=20000, gtol=1e-9, log_points=2, base_seed=1)
    search = plan.ThresholdSearch((), settings, 0.25, 2.0, 0.02, (run,), {})
    out = authors.stable_steps([run], ds, search)
    assert not out["stable_at_upper_end"].iloc[0]
    assert 0.5 * 0.9 < out["stable_eta"].iloc[0] < 0.5 * 1.5
