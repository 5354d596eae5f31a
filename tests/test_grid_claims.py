"""Experiment grids: seeds and shards (the claim rules are tested in test_claims.py)."""

from __future__ import annotations

import numpy as np

from deeplinear import grid

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
