"""Exact accounting of the engine: statuses at the budget, the sufficient-decrease
allowance, one rank definition, and the guarantees of theory.md 6 at every iteration."""

from __future__ import annotations

import numpy as np
import pytest

from deeplinear import data, gd, init, metrics, model, theory


def reference(W, X, Y, eta, iters):
    """The plain per-run loop: every iterate ``W(0), ..., W(iters)``."""
    out = [W]
    for _ in range(iters):
        W = [w - eta * g for w, g in zip(W, model.gradients(W, X, Y), strict=True)]
        out.append(W)
    return out


def small_problem(depth: int, seed: int = 0):
    ds = data.synthetic(4, 3, 30, 3, 0.1, seed)
    widths = [4] + [5] * (depth - 1) + [3]
    runs = [init.near_balanced(widths, 0.6, s, xi=0.05) for s in range(3)]
    bounds = [theory.certified_step_size(ds.X, ds.Y, W) for W in runs]
    return ds, runs, bounds


def test_convergence_wins_over_the_budget_at_the_same_iteration():
    ds, runs, bounds = small_problem(2)
    eta = np.array([b.eta for b in bounds])
    free = gd.run(ds.X, ds.Y, init.stack(runs), eta, 100_000)
    assert (free.status == gd.CONVERGED).all()
    tight = gd.run(ds.X, ds.Y, init.stack(runs), eta, free.iterations)
    assert (tight.status == gd.CONVERGED).all()
    np.testing.assert_array_equal(tight.iterations, free.iterations)
    short = gd.run(ds.X, ds.Y, init.stack(runs), eta, free.iterations - 1)
    assert (short.status == gd.BUDGET).all()


def edge_of_stability_run(depth: int, multiple: float, budget: int):
    """Width 10 near its balanced minimizer at ``eta = multiple / S`` (theory.md 9)."""
    d = 10
    ds = data.synthetic(d, d, 50, rank=d, noise=0.1, seed=0)
    prob = model.precompute(ds.X, ds.Y)
    widths = [d] * (depth + 1)
    rng = np.random.default_rng(0)
    W = [w + 1e-2 * rng.standard_normal(w.shape) for w in theory.balanced_minimizer(prob, widths)]
    eta = multiple / theory.sharpness(prob, widths)
    return gd.run(ds.X, ds.Y, init.stack([W]), eta, budget, gtol=0, problem=prob)


@pytest.mark.parametrize("depth", [8, 10])
def test_real_decrease_violations_are_counted_and_rounding_is_not(depth):
    """At ``eta = 1.9 / S`` the top curvature direction has ``eta lambda = 1.9 > 1``: every
    step where it dominates breaks sufficient decrease for real, down to ``eps/eps0`` near
    1e-29. An allowance from Frobenius norms (about ``d^((N-1)/2)`` too large) counted none
    of them here; thousands of further steps at the rounding floor must add none."""
    short = edge_of_stability_run(depth, 1.9, 2000)
    long = edge_of_stability_run(depth, 1.9, 12_000)
    assert short.excess_loss[0] < 1e-25 * short.initial_loss[0]  # at the rounding floor
    assert short.decrease_failures[0] >= 20
    assert long.decrease_failures[0] == short.decrease_failures[0]
    stable = edge_of_stability_run(depth, 0.5, 2000)  # eta lambda <= 0.5: no violation
    assert stable.decrease_failures[0] == 0


def test_the_global_minimizer_of_ill_conditioned_data_has_the_target_rank():
    """``C = diag(1, 1e8)``, ``P* = diag(1, 3e-7)``: the raw singular value 3e-7 of ``P*`` is
    below 1e-6, but the loss sees ``P* R = diag(1, 3e-3)``, rank 2 (theory.md 7)."""
    X = np.array([[1.0, 0.0], [0.0, 1e4]])
    Y = np.diag([1.0, 3e-7]) @ X
    prob = model.precompute(X, Y)
    assert theory.target_rank(prob, 2) == 2
    W = theory.balanced_minimizer(prob, [2, 2, 2])
    res = gd.run(X, Y, init.stack([W]), 1e-9, 3, gtol=0, problem=prob)
    assert (res.trajectory["rank"] == 2).all()
    assert metrics.numerical_rank(W[1] @ W[0], prob.R, res.rank_threshold) == 2
    assert res.rank_threshold == pytest.approx(1e-6, rel=1e-12)  # 1e-6 * sigma_1(P* R)
    # A rank-1 product is still rank 1.
    W1 = theory.balanced_minimizer(prob, [2, 1, 2])
    one = gd.run(X, Y, init.stack([W1]), 1e-9, 3, gtol=0, problem=prob)
    assert (one.trajectory["rank"] == 1).all()


def exact_series(iterates):
    """``max_j ||D_j(k) - D_j(0)||_2`` and ``max_j ||W_j(k)||_2`` at every iterate of
    ``iterates`` (the first is ``W(0)``), by brute force."""
    D0 = metrics.balance_matrices(iterates[0])
    drifts = np.array([float(metrics.balance_drift(Wk, D0)) for Wk in iterates])
    norms = np.array([float(metrics.weight_norms(Wk).max()) for Wk in iterates])
    return drifts, norms


def exact_maxima(ds, W, eta, iters):
    """``max_k max_j ||D_j(k) - D_j(0)||_2`` and ``max_k max_j ||W_j(k)||_2`` by brute force."""
    drifts, norms = exact_series(reference(W, ds.X, ds.Y, eta, iters))
    return drifts.max(), norms.max()


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("multiple", [1.0, 30.0])
def test_running_maxima_bound_the_exact_maxima_tightly(multiple, bounded):
    """Without bounds the running maxima are within TRACK_RTOL / NORM_RTOL of the exact
    maxima; with bounds, within those fractions of the larger of maximum and bound. The
    bounds here are 3 times the exact maxima: the bounded runs' maxima are looser, never
    beyond the stated precision, and never above the bounds."""
    ds, runs, bounds = small_problem(3)
    eta = multiple * np.array([b.eta for b in bounds])
    iters = 60 if multiple > 1 else 400
    exact = [exact_maxima(ds, W, eta[b], iters) for b, W in enumerate(runs)]
    drift_bound, norm_bound = (3 * np.array(v) for v in zip(*exact, strict=True))
    limits = {"drift_bound": drift_bound, "norm_bound": norm_bound} if bounded else {}
    res = gd.run(ds.X, ds.Y, init.stack(runs), eta, iters, gtol=0, **limits)
    assert (res.iterations == iters).all()
    for b in range(len(runs)):
        drift, norm = exact[b]
        w2 = norm**2
        drift_scale = drift_bound[b] if bounded else drift
        norm_scale = norm_bound[b] if bounded else norm
        assert drift * (1 - 1e-9) - 1e-13 * w2 <= res.max_balance_drift[b]
        assert (
            res.max_balance_drift[b]
            <= (drift + gd.TRACK_RTOL * drift_scale) * (1 + 1e-12) + 1e-12 * w2
        )
        assert norm * (1 - 1e-9) <= res.max_weight_norm[b]
        assert res.max_weight_norm[b] <= (norm + gd.NORM_RTOL * norm_scale) * (1 + 1e-12)
        assert (
            res.max_balance_drift[b] <= drift_bound[b] and res.max_weight_norm[b] <= norm_bound[b]
        )


def test_guarantees_hold_within_the_certified_step_at_every_iteration():
    ds, runs, bounds = small_problem(3)
    eta = np.array([b.eta for b in bounds])
    res = gd.run(
        ds.X, ds.Y, init.stack(runs), eta, 3000, gtol=0,
        drift_bound=[b.drift_bound for b in bounds], norm_bound=[b.K for b in bounds],
    )  # fmt: skip
    assert (res.decrease_failures == 0).all()
    assert (res.drift_failures == 0).all() and (res.norm_failures == 0).all()
    assert (res.max_balance_drift <= [b.drift_bound for b in bounds]).all()
    assert (res.max_weight_norm <= [b.K for b in bounds]).all()


def test_a_step_far_above_the_bound_registers_failures_at_the_right_iterations():
    """Counters against brute force: the number of iterates above each bound. A step of
    40 eta_cert is chaotic, so only the first 25 iterates are compared (there the engine
    and the plain loop agree to 1e-7)."""
    ds, runs, bounds = small_problem(3)
    W, b = runs[0], bounds[0]
    eta, iters = 40 * b.eta, 25
    iterates = reference(W, ds.X, ds.Y, eta, iters)
    drifts, norms = exact_series(iterates)
    drift_bound, norm_bound = (np.mean(np.sort(v)[12:14]) for v in (drifts, norms))
    assert drift_bound > b.drift_bound and norm_bound < b.K  # the norm stays within K
    # far from the bounds relative to rounding: brute force decides every iterate
    assert np.min(np.abs(drifts - drift_bound)) > 1e-5 * drift_bound
    assert np.min(np.abs(norms - norm_bound)) > 1e-5 * norm_bound
    res = gd.run(
        ds.X, ds.Y, init.stack([W]), eta, iters, gtol=0,
        drift_bound=drift_bound, norm_bound=norm_bound,
    )  # fmt: skip
    assert res.status[0] == gd.BUDGET
    for wr, we in zip(iterates[-1], res.weights, strict=True):
        assert np.abs(we[0] - wr).max() <= 1e-7
    assert res.drift_failures[0] == np.sum(drifts > drift_bound) > 0
    assert res.norm_failures[0] == np.sum(norms > norm_bound) > 0
    cert = gd.run(
        ds.X, ds.Y, init.stack([W]), eta, iters, gtol=0,
        drift_bound=b.drift_bound, norm_bound=b.K,
    )  # fmt: skip
    assert cert.drift_failures[0] == np.sum(drifts > b.drift_bound) > 0
    assert cert.norm_failures[0] == 0
    assert cert.decrease_failures[0] > 0


def test_counters_do_not_depend_on_the_batch():
    """Runs at 10 eta_cert (above the bound, converging) in one batch: each run's counters
    equal brute force and the counts of the run alone. Another run's recomputations once
    made a run already counted as failing at an iterate count that iterate again."""
    ds, runs, bounds = small_problem(3)
    eta = 10 * np.array([b.eta for b in bounds])
    drift_bound = np.array([b.drift_bound for b in bounds])
    norm_bound = np.array([b.K for b in bounds])
    iters = 400
    res = gd.run(
        ds.X, ds.Y, init.stack(runs), eta, iters, gtol=0,
        drift_bound=drift_bound, norm_bound=norm_bound,
    )  # fmt: skip
    assert res.drift_failures.min() > 0
    for b, W in enumerate(runs):
        drifts, _ = exact_series(reference(W, ds.X, ds.Y, eta[b], iters))
        assert np.min(np.abs(drifts - drift_bound[b])) > 1e-6 * drift_bound[b]
        alone = gd.run(
            ds.X, ds.Y, init.stack([W]), eta[b], iters, gtol=0,
            drift_bound=drift_bound[b], norm_bound=norm_bound[b],
        )  # fmt: skip
        assert res.drift_failures[b] == alone.drift_failures[0] == np.sum(drifts > drift_bound[b])
        assert res.norm_failures[b] == alone.norm_failures[0]


def test_a_tiny_certified_step_does_not_fail_on_rounding():
    """``eta = 1e-26``: the drift bound ``2 eta eps0`` is far below the rounding of ``D_j``
    itself; the allowance scales with ``u ||W_j||^2``, not with the step."""
    ds, runs, bounds = small_problem(4)
    eps0 = np.array([b.eps0 for b in bounds])
    res = gd.run(
        ds.X, ds.Y, init.stack(runs), 1e-26, 500, gtol=0,
        drift_bound=2 * 1e-26 * eps0, norm_bound=[b.K for b in bounds],
    )  # fmt: skip
    assert (res.drift_failures == 0).all() and (res.norm_failures == 0).all()
    assert (res.decrease_failures == 0).all()


def test_bad_bounds_raise():
    ds, runs, bounds = small_problem(2)
    with pytest.raises(Exception, match="drift_bound"):
        gd.run(ds.X, ds.Y, init.stack(runs), bounds[0].eta, 5, drift_bound=-1.0)
    with pytest.raises(Exception, match="norm_bound"):
        gd.run(ds.X, ds.Y, init.stack(runs), bounds[0].eta, 5, norm_bound=np.ones(7))


def test_unchecked_runs_have_the_same_iterates_and_say_nothing_was_checked():
    """``check_guarantees=False`` (the step-size searches) skips the guarantee checks and
    the running maxima; statuses, iterates, losses and logs stay bitwise those of a checked
    run, and the counters say "not checked" (-1) rather than "no failure" (0)."""
    ds, runs, bounds = small_problem(5)
    eta = np.array([b.eta for b in bounds]) * np.array([1.0, 40.0, 4000.0])  # one diverges
    checked = gd.run(ds.X, ds.Y, init.stack(runs), eta, 3000, gtol=0)
    free = gd.run(ds.X, ds.Y, init.stack(runs), eta, 3000, gtol=0, check_guarantees=False)
    assert gd.DIVERGED in checked.status and checked.decrease_failures.max() > 0
    np.testing.assert_array_equal(free.status, checked.status)
    for name in ("iterations", "loss", "excess_loss", "grad_norm", "initial_loss"):
        np.testing.assert_array_equal(getattr(free, name), getattr(checked, name))
    for wf, wc in zip(free.weights, checked.weights, strict=True):
        assert wf.tobytes() == wc.tobytes()
    assert free.trajectory.equals(checked.trajectory)
    for name in ("decrease_failures", "drift_failures", "norm_failures"):
        assert (getattr(free, name) == -1).all()
    assert np.isnan(free.max_balance_drift).all() and np.isnan(free.max_weight_norm).all()
    with pytest.raises(Exception, match="check_guarantees"):
        gd.run(ds.X, ds.Y, init.stack(runs), eta, 5, norm_bound=1.0, check_guarantees=False)
