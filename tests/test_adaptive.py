"""The certified state-dependent step of theory.md 14 and the engine's adaptive schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deeplinear import data, gd, init, metrics, model, theory
from deeplinear.errors import InputError

KINDS = ("balanced", "near_balanced", "gaussian", "orthogonal")


def instance(i: int):
    """Random data (whitened or not), depth 1-20, every init kind, scale 0.2-2."""
    rng = np.random.default_rng(1000 + i)
    d_x, d_y = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    whiten = bool(i % 2)
    ds = data.synthetic(d_x, d_y, 20, min(d_x, d_y), 0.1, 7 + i, whiten=whiten)
    N = 1 + i % 20
    widths = [d_x, *rng.integers(1, 5, N - 1).tolist(), d_y]
    kind = KINDS[(i // 20) % 4]
    scale = float(np.exp(rng.uniform(math.log(0.2), math.log(2.0))))
    options = {"xi": 0.1} if kind == "near_balanced" else {}
    return ds, init.make(kind, widths, scale, rng, **options)


def threshold_start(kind: str, N: int = 20, seed: int = 0):
    """A start of the threshold search's families on whitened 6x5 data."""
    ds = data.synthetic(6, 5, 100, 5, 0.0, 2, whiten=True)
    widths = [6] + [6] * (N - 1) + [5]
    opts = {"balanced": (1.0, {"spread": 0.0}), "near_balanced": (1.0, {"spread": 0.0, "xi": 0.1})}
    scale, options = opts.get(kind, (1.0 if kind == "orthogonal" else 0.1, {}))
    return ds, init.make(kind, widths, scale, np.random.default_rng(seed), **options)


def step_once(prob, W, eta_max):
    """``(eta, L(W) - L(W - eta G) - eta/2 ||G||^2, eta M(eta), rounding scale)``."""
    P = model.product(W)
    G = model.gradients_from_residual(W, model.residual_correlation(P, prob))
    eta = theory.adaptive_step_at(prob, W, eta_max)
    eps = float(model.excess_loss(P, prob))
    W1 = [Wj - eta * Gj for Wj, Gj in zip(W, G, strict=True)]
    eps1 = float(model.excess_loss(model.product(W1), prob))
    g2 = sum(float(np.sum(Gj * Gj)) for Gj in G)
    eM = eta * hessian_bound(prob, W, G, eps, eta)
    return eta, eps - eps1 - 0.5 * eta * g2, eM, 1e-12 * max(eps, 1e-300)


def hessian_bound(prob, W, G, eps, eta, partial=True) -> float:
    """``M(eta)`` at ``W`` with exact layer norms and, with ``partial``, exact prefix and
    suffix norms (Lemma B'; without them Lemma B)."""
    s = metrics.weight_norms(W)[None]
    g = np.array([[np.linalg.norm(Gj) for Gj in G]])
    pre, suf = theory.partial_product_norms(W) if partial and len(W) > 1 else (None, None)
    pre, suf = (None, None) if pre is None else (pre[None], suf[None])
    return float(theory.adaptive_hessian_bound(s, g, eps, prob.lam_max, eta, pre=pre, suf=suf)[0])


def lemma_b(s, g, eps, lam, eta) -> float:
    """Lemma B's ``M(eta)`` (products of layer norms), written out directly."""
    a = s + eta * g
    N = a.size
    A1 = sum(np.prod(np.delete(a, j)) ** 2 for j in range(N))
    A2 = sum(np.prod(np.delete(a, [i, j])) ** 2 for i in range(N) for j in range(N) if i != j)
    rho = math.sqrt(2 * eps) + math.sqrt(lam) * (np.prod(a) - np.prod(s))
    return lam * A1 + math.sqrt(lam) * rho * math.sqrt(A2)


@pytest.mark.parametrize("block", range(5))
def test_single_steps_decrease_as_proven(block):
    """Guarantee 1 of theory.md 14 directly, on 500 random instances (depths 1-20, every
    init kind, whitened and not): ``L(W - eta G) <= L(W) - eta/2 ||G||^2`` and
    ``eta M(eta) <= 1``."""
    for i in range(100 * block, 100 * (block + 1)):
        ds, W = instance(i)
        prob = model.precompute(ds.X, ds.Y)
        cap = theory.adaptive_cap(prob, len(W), float(np.linalg.norm(model.product(W), 2)))
        eta, slack, eM, tol = step_once(prob, W, cap)
        assert 0 < eta <= cap
        assert eM <= 1 + 1e-12, (i, eM)
        assert slack >= -tol, (i, slack)


@pytest.mark.parametrize("block", range(5))
def test_short_runs_keep_all_three_guarantees(block):
    """Guarantees 1-3 of theory.md 14 over 15 checked adaptive steps from each of 500 random
    instances (depths 1-20, every init kind, whitened and not), with the engine's running
    layer and partial-product bounds: no decrease, drift or layer-norm failure."""
    for i in range(100 * block, 100 * (block + 1)):
        ds, W = instance(i)
        prob = model.precompute(ds.X, ds.Y)
        ab = theory.adaptive_bound(prob, W)
        res = gd.run(ds.X, ds.Y, init.stack([W]), 1.0, 15, schedule="adaptive", problem=prob,
                     eta_max=ab.eta_max, drift_bound=ab.drift_bound, norm_bound=ab.K,
                     gtol=0)  # fmt: skip
        assert res.decrease_failures[0] == 0, i
        assert res.drift_failures[0] == 0 and res.norm_failures[0] == 0, i
        assert 0 < res.eta_smallest[0] <= res.eta_largest[0] <= ab.eta_max, i


@pytest.mark.parametrize("kind", KINDS)
def test_threshold_family_starts_at_depth_20(kind):
    ds, W = threshold_start(kind)
    prob = model.precompute(ds.X, ds.Y)
    cap = theory.adaptive_cap(prob, 20)
    _, slack, eM, tol = step_once(prob, W, cap)
    assert eM <= 1 + 1e-12 and slack >= -tol
    # from the point a short adaptive run reaches, too
    res = gd.run(ds.X, ds.Y, init.stack([W]), 1.0, 200, schedule="adaptive", eta_max=cap)
    assert res.decrease_failures[0] == 0
    _, slack, eM, tol = step_once(prob, [w[0] for w in res.weights], cap)
    assert eM <= 1 + 1e-12 and slack >= -tol


def segment_points(i: int):
    """``(prob, W, G, eps)`` of instance ``i``, or of a threshold family's start moved by
    an adaptive run (unbalanced points with ``||P||_2`` well below ``prod ||W_j||_2``)."""
    if i < 60:
        ds, W = instance(i)
    else:
        kind = ("near_balanced", "orthogonal", "gaussian")[i % 3]
        ds, W = threshold_start(kind, N=3 + i % 9, seed=i)
        prob = model.precompute(ds.X, ds.Y)
        res = gd.run(ds.X, ds.Y, init.stack([W]), 1.0, 30 * (i % 4), schedule="adaptive",
                     eta_max=theory.adaptive_cap(prob, len(W)), problem=prob)  # fmt: skip
        W = [w[0] for w in res.weights]
    prob = model.precompute(ds.X, ds.Y)
    P = model.product(W)
    G = model.gradients_from_residual(W, model.residual_correlation(P, prob))
    return prob, W, G, float(model.excess_loss(P, prob))


@pytest.mark.parametrize("start", [0, 60])
def test_hessian_bound_holds_on_the_segment(start):
    """Lemma B': the largest Hessian eigenvalue (Lanczos on exact Hessian-vector products)
    at points of the segment ``W - t G``, ``0 <= t <= eta``, is at most ``M(eta)`` with the
    exact prefix and suffix norms, for steps up to the certified one and beyond; random
    instances, and unbalanced points reached from the threshold families' starts."""
    for i in range(start, start + 60, 3):
        prob, W, G, eps = segment_points(i)
        eta = 3 * theory.adaptive_step_at(prob, W, 1e6)
        M = hessian_bound(prob, W, G, eps, eta)
        for t in (0.0, 0.5 * eta, eta):
            Wt = [Wj - t * Gj for Wj, Gj in zip(W, G, strict=True)]
            assert theory.sharpness_at(prob, Wt) <= M * (1 + 1e-9), (i, t)


def test_partial_products_move_by_at_most_their_increment():
    """Lemma B' (i), as the engine uses it: one step changes ``||W_{j:1}||_2`` and
    ``||W_{N:j}||_2`` by at most ``prod (s_l + ||eta G_l||_F) - prod s_l`` over their
    layers (``gd._partial_increments``), also for steps far larger than certified."""
    for i in range(60, 120, 2):
        prob, W, G, _ = segment_points(i)
        N = len(W)
        s = metrics.weight_norms(W)[None]
        pre0, suf0 = theory.partial_product_norms(W)
        for eta in np.array([1.0, 10.0, 100.0]) * theory.adaptive_step_at(prob, W, 1e6):
            h = np.array([[eta * np.linalg.norm(Gj) for Gj in G]])
            inc = gd._partial_increments(s, h)[0]
            W1 = [w - eta * g for w, g in zip(W, G, strict=True)]
            pre1, suf1 = theory.partial_product_norms(W1)
            moved = np.abs(np.r_[pre1[1:], suf1[:-1]] - np.r_[pre0[1:], suf0[:-1]])
            assert inc.shape == (2 * (N - 2),)
            assert np.all(moved <= inc * (1 + 1e-12) + 1e-15), (i, eta)


def test_partial_bound_sharpens_lemma_b():
    """Lemma B' is never above Lemma B (written out directly) on random instances, equals
    it without partial-product bounds (to rounding), and at the unbalanced points is
    strictly below it."""
    strict = 0
    for i in range(0, 120, 2):
        prob, W, G, eps = segment_points(i)
        s = metrics.weight_norms(W)
        g = np.array([np.linalg.norm(Gj) for Gj in G])
        for eta in np.array([0.0, 1.0, 3.0]) * theory.adaptive_step_at(prob, W, 1e6):
            old = lemma_b(s, g, eps, prob.lam_max, eta)
            assert hessian_bound(prob, W, G, eps, eta, False) == pytest.approx(old, rel=1e-12)
            new = hessian_bound(prob, W, G, eps, eta)
            assert new <= old * (1 + 1e-12), (i, eta)
            strict += i >= 60 and new < 0.99 * old
    assert strict >= 50


def test_step_is_within_its_precision_of_the_supremum():
    """``adaptive_step`` against a 200-step bisection of ``eta M(eta) <= 1``: certified and
    within ``ADAPTIVE_RTOL`` below the supremum, also where ``eta G`` dwarfs the layers."""
    rng = np.random.default_rng(3)
    for _ in range(150):
        N = int(rng.integers(2, 21))
        s = np.exp(rng.normal(0, 1, (1, N)))
        g = np.exp(rng.normal(-1, 2, (1, N)))
        s[0, : int(rng.integers(0, 2))] = 0.0
        eps, lam = float(np.exp(rng.normal(0, 3))), float(np.exp(rng.normal()))
        eta = float(theory.adaptive_step(s, g, eps, lam, 1e6)[0])

        def f(u, s=s, g=g, eps=eps, lam=lam):
            return u + math.log(theory.adaptive_hessian_bound(s, g, eps, lam, math.exp(u))[0])

        lo, hi = -700.0, math.log(1e6)
        if f(hi) <= 0:
            lo = hi
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if f(mid) <= 0 else (lo, mid)
        assert f(math.log(eta)) <= 1e-12
        assert eta >= math.exp(lo) / (1 + theory.ADAPTIVE_RTOL) * (1 - 1e-12)


def _inputs(rng, N: int, spread: float):
    """One run's inputs of the compiled evaluation of ``M`` (``theory.step_inputs``)."""
    s = np.exp(rng.normal(0, spread, N))
    g = np.exp(rng.normal(-1, 2, N))
    pre = np.cumprod(s)[:-1] * rng.uniform(0.05, 1.2, N - 1)
    suf = np.cumprod(s[::-1])[::-1][1:] * rng.uniform(0.05, 1.2, N - 1)
    sr, crude, log_pq, pq = (np.empty(n) for n in (N, 2 * N - 1, 2 * N - 1, 2 * N - 1))
    linear = theory.step_inputs(s, pre, suf, theory.ADAPTIVE_TINY, sr, crude, log_pq, pq)
    return sr, g, crude, log_pq, pq, linear


def test_plain_and_log_space_evaluations_of_m_agree():
    """The two evaluations of Lemma B' (plain arithmetic where every product is in range,
    logarithms elsewhere) give the same ``M`` to rounding on random inputs, depths 2-40 and
    steps from 0 to far past certified; ``step_inputs`` sends products out of range to the
    log-space one, which stays finite."""
    rng = np.random.default_rng(11)
    work = np.empty(6 * 40)
    for _ in range(600):
        N = int(rng.integers(2, 41))
        sr, g, crude, log_pq, pq, linear = _inputs(rng, N, 1.0 if N < 30 else 0.5)
        assert linear
        log_r0, log_lam = float(rng.normal(0, 3)), float(rng.normal(0, 1))
        for log_eta in (-math.inf, float(rng.normal(-3, 3))):
            via_logs = theory._log_hessian_bound(
                sr, g, log_r0, log_lam, crude, log_pq, log_eta, work
            )
            plain = theory._hessian_bound_linear(
                sr, g, math.exp(log_r0), math.exp(log_lam), pq, math.exp(log_eta), work
            )
            assert math.log(plain) == pytest.approx(via_logs, abs=1e-12)
    for spread in (60.0, 200.0):  # products far out of range
        sr, g, crude, log_pq, pq, linear = _inputs(np.random.default_rng(5), 20, spread)
        assert not linear
        value = theory._log_M(sr, g, 0.0, 0.0, crude, log_pq, pq, linear, -5.0, work)
        assert math.isfinite(value)


def test_a_runs_step_does_not_depend_on_its_batch():
    """Each run's search is its own: the steps of a batch are bitwise those of its runs
    alone, whatever the other runs need."""
    rng = np.random.default_rng(4)
    N = 6
    s, g = np.exp(rng.normal(0, 1, (40, N))), np.exp(rng.normal(-1, 3, (40, N)))
    eps = np.exp(rng.normal(0, 3, 40))
    batch = theory.adaptive_step(s, g, eps, 2.0, 1e3)
    alone = [theory.adaptive_step(s[i : i + 1], g[i : i + 1], eps[i], 2.0, 1e3) for i in range(40)]
    assert batch.tobytes() == np.concatenate(alone).tobytes()


def test_certified_norms_are_never_below_the_exact_ones():
    """``metrics.norm_bounds`` (the layer and partial-product bounds of the engine's adaptive
    runs) on random matrices of every shape, from warm starts near the top singular vector
    (certified: within ``sqrt(1 + CERTIFY_GAP)`` above the exact norm), from the worst warm
    start (the bottom one: the power iteration cannot find the top, the factorization
    fails, the exact norm stands in) and from none: never below ``||A||_2`` (beyond the
    rounding of the eigensolvers, which give the exact norms)."""
    rng = np.random.default_rng(8)
    certified = 0
    for _ in range(300):
        p, q = (int(x) for x in rng.integers(1, 25, 2))
        A = rng.normal(size=(8, p, q)) * float(np.exp(rng.normal(0, 2)))
        _, near = metrics.top_singular(A + 1e-3 * rng.normal(size=A.shape) * np.abs(A).max())
        _, E = np.linalg.eigh(metrics._gram(A))
        for start in (near, np.ascontiguousarray(E[..., 0]), np.zeros_like(near)):
            exact = metrics.spectral_norm(A)
            bound = metrics.norm_bounds(A, start.copy())
            assert np.all(bound >= exact * (1 - 1e-13)), (p, q)
            assert np.all(bound <= exact * math.sqrt(1 + metrics.CERTIFY_GAP) * (1 + 1e-12))
        out = np.empty(8)
        metrics._certify(A, near.copy(), metrics.CERTIFY_GAP, metrics.CERTIFY_ITERATIONS, out)
        certified += int(np.sum(~np.isnan(out)))
    assert certified >= 0.9 * 300 * 8  # the warm start near the top is the common case


def test_depth_one_gives_one_over_lam_max_exactly():
    ds, W = instance(20)  # depth 1
    assert len(W) == 1
    prob = model.precompute(ds.X, ds.Y)
    assert theory.adaptive_step_at(prob, W, 1e6) == 1.0 / prob.lam_max
    res = gd.run(ds.X, ds.Y, init.stack([W]), 1.0, 50, schedule="adaptive", eta_max=1e6)
    assert res.eta_largest[0] == res.eta_smallest[0] == 1.0 / prob.lam_max


@pytest.mark.parametrize("N", [2, 3, 5, 10])
def test_step_tends_to_one_over_sharpness_at_a_balanced_minimizer(N):
    """theory.md 14: at a balanced minimizer with whitened data ``M = S`` (section 9), so the
    certified step is ``1/S``, half the edge of stability; nearby it approaches ``1/S``."""
    c = 3.0
    ds = data.synthetic(4, 3, 40, 3, 0.0, 5, whiten=True, x_scale=math.sqrt(c / 40))
    prob = model.precompute(ds.X, ds.Y)
    widths = [4] + [4] * (N - 1) + [3]
    Wmin = theory.balanced_minimizer(prob, widths)
    sigma1 = float(np.linalg.svd(prob.P_star, compute_uv=False)[0])
    S = theory.sharpness_whitened(c, N, sigma1)
    assert S == pytest.approx(theory.sharpness_at(prob, Wmin), rel=1e-8)
    cap = theory.adaptive_cap(prob, N)
    eta = theory.adaptive_step_at(prob, Wmin, cap)
    assert eta * S == pytest.approx(1.0, rel=1e-10)
    assert 2 * eta == pytest.approx(theory.edge_of_stability_step(S), rel=1e-10)
    rng = np.random.default_rng(N)
    ratios = []
    for r in (1e-1, 1e-2, 1e-3, 1e-4):
        W = [Wj + r * rng.standard_normal(Wj.shape) for Wj in Wmin]
        ratios.append(theory.adaptive_step_at(prob, W, cap) * S)
    assert all(x < 1.0 for x in ratios)
    assert np.all(np.diff(ratios) > 0) and ratios[-1] > 0.99


def bounded_runs(N: int, kind: str, seeds=range(3), multiple=1.0, steps=300):
    ds = data.synthetic(4, 3, 30, 3, 0.1, N, whiten=N % 2 == 0)
    prob = model.precompute(ds.X, ds.Y)
    widths = [4] + [5] * (N - 1) + [3]
    options = {"xi": 0.1} if kind == "near_balanced" else {}
    W = [init.make(kind, widths, 0.8, np.random.default_rng(s), **options) for s in seeds]
    ab = [theory.adaptive_bound(prob, w) for w in W]
    res = gd.run(
        ds.X, ds.Y, init.stack(W), multiple, steps, schedule="adaptive", problem=prob,
        eta_max=[a.eta_max for a in ab], drift_bound=[a.drift_bound for a in ab],
        norm_bound=[a.K for a in ab],
    )  # fmt: skip
    return res, ab


@pytest.mark.parametrize("N", [2, 3, 6, 12])
@pytest.mark.parametrize("kind", KINDS)
def test_short_runs_keep_the_drift_and_layer_bounds(N, kind):
    """Guarantees 2 and 3 of theory.md 14 over short runs, checked at every iteration."""
    res, ab = bounded_runs(N, kind)
    assert (res.decrease_failures == 0).all()
    assert (res.drift_failures == 0).all() and (res.norm_failures == 0).all()
    assert np.all(res.max_balance_drift <= [a.drift_bound for a in ab])
    assert np.all(res.max_weight_norm <= [a.K for a in ab])
    assert np.all(res.eta_largest <= [a.eta_max for a in ab])
    assert np.all(res.eta_smallest > 0)


def test_a_step_twice_past_the_bound_is_caught():
    """Near a sharp minimizer the certified step is ``1/S``; twice it sits at the edge
    ``2/S``, where the loss no longer decreases by ``eta/2 ||G||^2``: the engine's decrease
    check counts it (and at the certified step itself it counts nothing)."""
    ds = data.synthetic(4, 3, 40, 3, 0.0, 5, whiten=True, x_scale=math.sqrt(3.0 / 40))
    prob = model.precompute(ds.X, ds.Y)
    widths = [4, 4, 4, 4, 3]
    Wmin = theory.balanced_minimizer(prob, widths)
    rng = np.random.default_rng(0)
    W = [Wj + 1e-3 * rng.standard_normal(Wj.shape) for Wj in Wmin]
    cap = theory.adaptive_cap(prob, 4)
    res = gd.run(ds.X, ds.Y, init.stack([W, W]), [1.0, 2.0], 300, schedule="adaptive",
                 eta_max=cap, problem=prob)  # fmt: skip
    assert res.decrease_failures[0] == 0
    assert res.decrease_failures[1] > 0


def test_unchecked_and_mixed_batches_give_the_same_iterates():
    """Adaptive runs give bitwise the same iterates checked or not; a constant run in a
    batch with adaptive runs gives bitwise its result alone."""
    ds = data.synthetic(4, 3, 30, 3, 0.1, 1)
    prob = model.precompute(ds.X, ds.Y)
    widths = [4, 5, 5, 3]
    W = [init.make("orthogonal", widths, 0.8, np.random.default_rng(s)) for s in range(3)]
    eta_c = theory.certified_step_size(ds.X, ds.Y, W[2]).eta
    cap = theory.adaptive_cap(prob, 3)
    a = gd.run(ds.X, ds.Y, init.stack(W[:2]), 1.0, 400, schedule="adaptive", eta_max=cap)
    b = gd.run(ds.X, ds.Y, init.stack(W[:2]), 1.0, 400, schedule="adaptive", eta_max=cap,
               check_guarantees=False)  # fmt: skip
    kinds = ["adaptive", "adaptive", "constant"]
    mixed = gd.run(ds.X, ds.Y, init.stack(W), [1.0, 1.0, eta_c], 400, schedule=kinds,
                   eta_max=[cap, cap, math.nan])  # fmt: skip
    alone = gd.run(ds.X, ds.Y, init.stack(W[2:]), eta_c, 400)
    for wa, wb, wm, w1 in zip(a.weights, b.weights, mixed.weights, alone.weights, strict=True):
        assert wa.tobytes() == wb.tobytes() == wm[:2].tobytes()
        assert wm[2:].tobytes() == w1.tobytes()
    assert a.eta_final.tobytes() == b.eta_final.tobytes()
    assert mixed.flow_time[2] == alone.flow_time[0] == pytest.approx(eta_c * 400)
    assert a.flow_time[0] == pytest.approx(
        a.trajectory_flow_time[a.trajectory["run"].to_numpy() == 0][-1]
    )


def test_adaptive_needs_a_finite_cap():
    ds, W = instance(3)
    with pytest.raises(InputError, match="eta_max"):
        gd.run(ds.X, ds.Y, init.stack([W]), 1.0, 10, schedule="adaptive")
    with pytest.raises(InputError, match="eta_max"):
        gd.run(ds.X, ds.Y, init.stack([W]), 1.0, 10, schedule="adaptive", eta_max=math.inf)
    with pytest.raises(InputError, match="step schedule"):
        gd.run(ds.X, ds.Y, init.stack([W]), 1.0, 10, schedule="cyclic")


def test_adaptive_runs_stop_at_their_flow_time():
    ds, W = threshold_start("balanced", N=4)
    prob = model.precompute(ds.X, ds.Y)
    cap = theory.adaptive_cap(prob, 4)
    res = gd.run(ds.X, ds.Y, init.stack([W]), 1.0, 10**6, schedule="adaptive", eta_max=cap,
                 max_time=0.05, gtol=0)  # fmt: skip
    assert res.status[0] == gd.BUDGET
    assert 0.05 <= res.flow_time[0] < 0.05 + res.eta_largest[0]
    assert res.iterations[0] < 10**6
