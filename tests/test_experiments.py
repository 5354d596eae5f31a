"""Summary rows of a shard: accounting of rank, optimality, budget and flow time."""

from __future__ import annotations

import numpy as np

from deeplinear import data, experiments, model, plan, theory
from tests.conftest import RUN_FIELDS

BASE = RUN_FIELDS


def settings(time: float, max_iter: int) -> plan.Settings:
    return plan.Settings(time=time, max_iter=max_iter, gtol=1e-9, log_points=50, base_seed=0)


def test_a_run_stalled_at_the_origin_is_not_a_rank_zero_optimum():
    ds = data.synthetic(5, 4, 60, 4, 0.05, 1)
    runs = [plan.Run(**BASE | {"init_rank": 0}), plan.Run(**BASE)]
    summary, _ = experiments.run_shard(runs, ds, settings(10.0, 100_000))
    stalled, generic = summary.itertuples()
    assert stalled.final_rank == 0 and stalled.target_rank > 0
    assert not stalled.rank_optimal and not stalled.global_optimal
    assert generic.status == "converged" and generic.global_optimal


def test_budget_cap_and_flow_time_are_recorded():
    ds = data.synthetic(5, 4, 60, 4, 0.05, 1)
    runs = [plan.Run(**BASE | {"step_multiple": m}) for m in (0.5, 1.0)]
    summary, _ = experiments.run_shard(runs, ds, settings(1e6, 50))
    assert summary["budget_capped"].all()
    assert (summary["iterations"] == 50).all()
    np.testing.assert_allclose(summary["flow_time"], 50 * summary["eta"], rtol=1e-12)
    sharp = theory.sharpness(model.precompute(ds.X, ds.Y), [5, 5, 5, 4])
    np.testing.assert_allclose(summary["eos_eta"], 2 / sharp, rtol=1e-9)
