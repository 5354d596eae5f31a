"""The claims verdict rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeplinear import claims


def runs_table(**overrides) -> pd.DataFrame:
    base = {
        "run_id": [f"r{i}" for i in range(4)],
        "experiment": "x",
        "depth": [2, 2, 3, 3],
        "widths": "4-4-3",
        "init": "gaussian",
        "init_scale": 1.0,
        "init_rank": 3,
        "seed": [0, 1, 0, 1],
        "step_multiple": [1.0, 1.0, 1.0, 1.0],
        "status": "converged",
        "decrease_failures": 0,
        "max_balance_drift": 0.1,
        "bound_drift": 1.0,
        "max_weight_norm": 1.0,
        "bound_weight_norm": 2.0,
        "global_optimal": True,
        "rank_optimal": True,
        "final_rank": 3,
    }
    return pd.DataFrame(base | overrides)


def test_claim1_fails_on_a_single_violation():
    assert claims.claim1(runs_table())["verdict"] == claims.SUPPORTED
    broken = runs_table(max_balance_drift=[0.1, 0.1, 1.5, 0.1])
    assert claims.claim1(broken)["verdict"] == claims.NOT_SUPPORTED
    broken = runs_table(decrease_failures=[0, 1, 0, 0])
    assert claims.claim1(broken)["verdict"] == claims.NOT_SUPPORTED


@pytest.mark.parametrize(
    ("decay", "verdict"),
    [(lambda N: 1.0 / N**2, claims.SUPPORTED), (lambda N: 0.1**N, claims.NOT_SUPPORTED)],
    ids=["polynomial", "exponential"],
)
def test_claim2_tells_polynomial_from_exponential_decay(decay, verdict):
    N = np.array([2, 3, 4, 6, 8, 10])
    table = pd.DataFrame({"depth": N, "eta_cert": decay(N), "critical_eta": 5 * decay(N)})
    assert claims.claim2(table)["verdict"] == verdict


def test_claim3_distinguishes_failure_from_budget():
    assert claims.claim3(runs_table())["verdict"] == claims.SUPPORTED
    budget = runs_table(global_optimal=[True, False, True, True])
    budget.loc[1, "status"] = "budget_exhausted"
    assert claims.claim3(budget)["verdict"] == claims.INCONCLUSIVE
    wrong = runs_table(global_optimal=[True, False, True, True])
    assert claims.claim3(wrong)["verdict"] == claims.NOT_SUPPORTED


def test_claim5_needs_a_failure_whose_start_converged_within_the_bound():
    t = runs_table(step_multiple=[1.0, 50.0, 1.0, 50.0], seed=[0, 0, 1, 1])
    t.loc[1, "status"] = "diverged"
    assert claims.claim5(t)["verdict"] == claims.SUPPORTED
    t.loc[1, "status"] = "converged"
    assert claims.claim5(t)["verdict"] == claims.NOT_SUPPORTED
