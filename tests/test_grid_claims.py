"""Experiment grids (seeds, shards) and the claims verdict rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeplinear import claims, grid

EXP = {
    "dataset": "synthetic",
    "depths": [2, 3],
    "hidden_widths": [4],
    "inits": [{"kind": "balanced", "scale": 0.5}, {"kind": "gaussian", "scale": 1.0}],
    "step_rules": [{"schedule": "constant"}],
    "step_multiples": [0.5, 1, 10],
    "seeds": 3,
    "shard_size": 7,
}


def test_a_cell_does_not_depend_on_which_other_cells_exist():
    full = {r["run_id"]: r for r in grid.expand("e", EXP)}
    part = grid.expand("e", EXP | {"depths": [3], "step_multiples": [10], "seeds": 2})
    for run in part:
        assert run["run_id"] in full
        a, b = grid.init_seed(run, 7), grid.init_seed(full[run["run_id"]], 7)
        assert np.array_equal(a.generate_state(4), b.generate_state(4))


def test_runs_differing_only_in_step_share_their_start_and_seeds_differ_otherwise():
    runs = grid.expand("e", EXP)
    by_start: dict[tuple, set] = {}
    for r in runs:
        key = tuple(r[k] for k in grid.INIT_KEYS)
        by_start.setdefault(key, set()).add(tuple(grid.init_seed(r, 0).generate_state(2)))
    assert all(len(v) == 1 for v in by_start.values())
    assert len({next(iter(v)) for v in by_start.values()}) == len(by_start)
    assert len({r["run_id"] for r in runs}) == len(runs) == 2 * 2 * 3 * 3


def test_shards_share_depth_and_respect_the_size():
    shards = grid.shards("e", EXP)
    assert sum(len(v) for v in shards.values()) == len(grid.expand("e", EXP))
    for name, runs in shards.items():
        assert len(runs) <= 7
        assert len({(r["depth"], r["hidden"]) for r in runs}) == 1
        assert name.startswith(f"N{runs[0]['depth']}-h{runs[0]['hidden']}-")


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


def test_readme_section_is_replaced_between_markers_only():
    text = f"head\n{claims.README_START}\nold\n{claims.README_END}\ntail\n"
    out = claims.update_readme(text, "new\n")
    assert out == f"head\n{claims.README_START}\nnew\n{claims.README_END}\ntail\n"
    with pytest.raises(ValueError, match="markers"):
        claims.update_readme("no markers", "x")
