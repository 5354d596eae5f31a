"""The step-size bisection shared by the step searches (deeplinear.search)."""

import numpy as np

from deeplinear.search import bisect_log_step


def test_bisection_brackets_each_threshold_to_its_precision_and_leaves_inactive_starts():
    threshold = np.array([0.3, 2.0, 7.0, 1.0])
    lo0, hi0 = np.array([0.1, 0.1, 1.0, 0.5]), np.array([1.0, 10.0, 10.0, 2.0])
    active = np.array([True, True, True, False])
    seen, rounds = [], []

    def good(eta, idx):
        seen.append(idx.copy())
        return eta[idx] <= threshold[idx]

    lo, hi = bisect_log_step(good, lo0, hi0, 0.01, active, lambda n, lo, hi: rounds.append(n))
    assert np.all((lo <= threshold)[active]) and np.all((threshold < hi)[active])
    assert np.all((hi / lo)[active] <= 1.01) and np.all((hi / lo)[active] > 1.01 / 2)
    assert (lo[3], hi[3]) == (0.5, 2.0)  # inactive: not probed, not moved
    assert all(3 not in idx for idx in seen)
    assert rounds == list(range(1, len(seen) + 1))
    assert lo0[0] == 0.1 and hi0[0] == 1.0  # the inputs are not changed


def test_bisection_moves_the_upper_end_down_where_every_probe_fails():
    lo, hi = bisect_log_step(lambda eta, idx: np.zeros(idx.size, bool), [1.0], [16.0], 0.1)
    assert lo[0] == 1.0 and 1.0 < hi[0] <= 1.1


def test_a_closed_bracket_is_not_probed():
    def never(eta, idx):
        raise AssertionError("probed")

    lo, hi = bisect_log_step(never, np.array([2.0]), np.array([2.0]), 0.01)
    assert (lo[0], hi[0]) == (2.0, 2.0)
