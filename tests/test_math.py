"""The mathematics of docs/theory.md checked against numerics: gradients, balancedness,
Lemma A, the certified bound's guarantees, optimal losses per rank, sharpness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from deeplinear import data, init, metrics, model, theory
from deeplinear.gd import decrease_tolerance

EPS = np.finfo(np.float64).eps


def random_instance(rng: np.random.Generator, depth: int):
    d_x, d_y = rng.integers(1, 6, size=2)
    widths = [int(d_x), *rng.integers(1, 7, size=depth - 1).tolist(), int(d_y)]
    m = int(d_x + rng.integers(2, 25))
    if rng.random() < 0.5:
        rank = int(rng.integers(0, min(d_x, d_y) + 1))
        ds = data.synthetic(int(d_x), int(d_y), m, rank, 0.1, int(rng.integers(1 << 30)))
    else:
        ds = data.random(int(d_x), int(d_y), m, int(rng.integers(1 << 30)))
    return ds, widths


def random_start(rng: np.random.Generator, widths: list[int], kind: str):
    scale = float(rng.uniform(0.2, 1.5))
    if kind == "balanced":
        return init.balanced(widths, scale, rng)
    if kind == "near_balanced":
        return init.near_balanced(widths, scale, rng, xi=float(rng.uniform(1e-3, 0.3)))
    return init.gaussian(widths, scale, rng)


@pytest.mark.parametrize("depth", range(1, 7))
def test_gradients_match_central_differences(depth):
    rng = np.random.default_rng(depth)
    for _ in range(5):
        ds, widths = random_instance(rng, depth)
        W = init.gaussian(widths, 1.0, rng)
        V = [rng.standard_normal(Wj.shape) for Wj in W]
        G = model.gradients(W, ds.X, ds.Y)
        exact = sum(float(np.sum(g * v)) for g, v in zip(G, V, strict=True))
        h = 1e-5
        plus = model.loss([w + h * v for w, v in zip(W, V, strict=True)], ds.X, ds.Y)
        minus = model.loss([w - h * v for w, v in zip(W, V, strict=True)], ds.X, ds.Y)
        fd = (plus - minus) / (2 * h)
        scale = model.loss(W, ds.X, ds.Y) + abs(exact) + 1.0
        assert abs(fd - exact) <= 1e-6 * scale


def test_batched_gradients_equal_single_runs():
    rng = np.random.default_rng(0)
    ds, widths = random_instance(rng, 4)
    prob = model.precompute(ds.X, ds.Y)
    runs = [init.gaussian(widths, 1.0, rng) for _ in range(5)]
    Wb = init.stack(runs)
    Gb = model.gradients_from_residual(Wb, model.residual_correlation(model.product(Wb), prob))
    for b, W in enumerate(runs):
        for gb, g in zip(Gb, model.gradients(W, ds.X, ds.Y), strict=True):
            np.testing.assert_allclose(gb[b], g, rtol=1e-10, atol=1e-10 * np.abs(g).max())


def test_excess_loss_matches_direct_loss_and_resolves_tiny_values():
    rng = np.random.default_rng(1)
    ds = data.synthetic(4, 3, 30, 3, 0.5, 2)
    prob = model.precompute(ds.X, ds.Y)
    W = init.gaussian([4, 5, 3], 1.0, rng)
    direct = model.loss(W, ds.X, ds.Y) - prob.L_star
    assert model.excess_loss(model.product(W), prob) == pytest.approx(direct, rel=1e-10)
    # eps = 1/2 t^2 lam_min exactly along the bottom eigenvector v of C, for P = P* + t u v^T.
    lam, vecs = np.linalg.eigh(prob.C)
    u = np.zeros(3)
    u[0] = 1.0
    t = 1e-9
    P = prob.P_star + t * np.outer(u, vecs[:, 0])
    exact = 0.5 * t**2 * lam[0]
    assert model.excess_loss(P, prob) == pytest.approx(exact, rel=1e-6)
    L = 0.5 * np.sum((P @ ds.X - ds.Y) ** 2)  # the direct formula cannot see it
    assert exact < 1e-16 * prob.L_zero and abs((L - prob.L_star) - exact) >= 0.5 * exact


@pytest.mark.parametrize("depth", range(2, 7))
def test_balancedness_identity_of_one_step_is_exact(depth):
    rng = np.random.default_rng(10 + depth)
    for _ in range(5):
        ds, widths = random_instance(rng, depth)
        W = init.gaussian(widths, 1.0, rng)
        G = model.gradients(W, ds.X, ds.Y)
        eta = float(rng.uniform(1e-4, 1e-2))
        Wp = [w - eta * g for w, g in zip(W, G, strict=True)]
        for j, (D, Dp) in enumerate(
            zip(metrics.balance_matrices(W), metrics.balance_matrices(Wp), strict=True)
        ):
            predicted = D + eta**2 * (G[j + 1].T @ G[j + 1] - G[j] @ G[j].T)
            scale = sum(np.linalg.norm(w) ** 2 for w in Wp) + eta**2 * sum(
                np.linalg.norm(g) ** 2 for g in G
            )
            assert np.abs(Dp - predicted).max() <= 1e-12 * scale


@pytest.mark.parametrize("depth", range(2, 8))
def test_lemma_a_bounds_every_layer_of_approximately_balanced_weights(depth):
    rng = np.random.default_rng(20 + depth)
    for _ in range(20):
        widths = rng.integers(1, 6, size=depth + 1).tolist()
        W = init.near_balanced(widths, float(rng.uniform(0.2, 2)), rng, xi=rng.uniform(0, 0.5))
        delta = float(metrics.balancedness(W))
        bound = metrics.spectral_norm(model.product(W)) ** (2 / depth) + 2 * (depth - 1) * delta
        assert np.max(metrics.weight_norms(W)) ** 2 <= bound * (1 + 1e-12) + 1e-14


@pytest.mark.parametrize("rank", [0, 1, 2, 3])
def test_balanced_init_is_balanced_with_the_requested_rank(rank):
    W = init.balanced([4, 5, 6, 3], 0.8, 0, rank=rank)
    assert metrics.balancedness(W) <= 1e-14
    s = np.linalg.svd(model.product(W), compute_uv=False)
    assert np.sum(s > 1e-10) == rank


def test_rank_deficient_balanced_start_keeps_its_rank_for_1000_steps():
    ds = data.synthetic(5, 4, 40, 4, 0.1, 3)
    W = init.balanced([5, 6, 6, 4], 0.5, 1, rank=2)
    eta = theory.certified_step_size(ds.X, ds.Y, W).eta
    for _ in range(1000):
        W = [w - eta * g for w, g in zip(W, model.gradients(W, ds.X, ds.Y), strict=True)]
    s = np.linalg.svd(model.product(W), compute_uv=False)
    assert s[2] <= 1e-10 * s[0]
    assert s[1] > 1e-3 * s[0]


def test_certified_step_of_depth_one_is_one_over_lam_max():
    ds = data.synthetic(4, 3, 20, 2, 0.1, 0)
    prob = model.precompute(ds.X, ds.Y)
    bound = theory.certified_step_size(ds.X, ds.Y, [np.ones((3, 4))])
    assert bound.eta == 1.0 / prob.lam_max


def test_certified_step_is_the_crossing_of_eta_lip():
    rng = np.random.default_rng(5)
    for depth in (2, 3, 5, 8):
        ds, widths = random_instance(rng, depth)
        prob = model.precompute(ds.X, ds.Y)
        W = init.near_balanced(widths, 0.7, rng, xi=0.1)
        b = theory.certified_step_size(ds.X, ds.Y, W)
        assert b.eta * b.lipschitz <= 1.0
        log_lip = theory._log_chain(
            np.log(b.eta * 1.001), depth, b.eps0, b.delta0, b.pbar, prob.lam_max
        )[1]
        assert np.log(b.eta * 1.001) + log_lip > 0.0


def test_certified_step_stays_finite_for_deep_networks_and_decays_polynomially():
    ds = data.synthetic(4, 4, 40, 4, 0.0, 1)
    etas = {}
    for depth in (2, 5, 10, 20, 50):
        W = init.balanced([4] * (depth + 1), 0.9, depth)
        etas[depth] = theory.certified_step_size(ds.X, ds.Y, W).eta
        assert np.isfinite(etas[depth]) and etas[depth] > 0
    # theory.md 6: balanced starts give a polynomial, not exponential, decay in N.
    assert etas[50] * 50**3 >= 1e-3 * etas[2] * 2**3


def test_certified_bound_guarantees_on_random_instances():
    """Theorem of theory.md 6: sufficient decrease, drift and layer bounds at every step."""
    rng = np.random.default_rng(2024)
    instances = 0
    for depth in range(1, 9):
        for kind in ("balanced", "near_balanced", "gaussian"):
            for _ in range(13):
                ds, widths = random_instance(rng, depth)
                prob = model.precompute(ds.X, ds.Y)
                W = random_start(rng, widths, kind)
                b = theory.certified_step_size(ds.X, ds.Y, W)
                decreasing = rng.random() < 0.3
                D0 = metrics.balance_matrices(W)
                eps = float(model.excess_loss(model.product(W), prob))
                for k in range(60):
                    eta = b.eta / np.sqrt(1 + k / 10) if decreasing else b.eta
                    G = model.gradients(W, ds.X, ds.Y)
                    g2 = sum(float(np.sum(g * g)) for g in G)
                    norms2 = [np.linalg.norm(w) ** 2 for w in W]
                    tol = decrease_tolerance(eps, g2, prob.lam_max, norms2, depth, max(widths))
                    W = [w - eta * g for w, g in zip(W, G, strict=True)]
                    eps_new = float(model.excess_loss(model.product(W), prob))
                    assert eps_new <= eps - 0.5 * eta * g2 + tol
                    eps = eps_new
                    drift = metrics.balance_drift(W, D0) if depth > 1 else 0.0
                    w2 = max(np.linalg.norm(w) ** 2 for w in W)
                    assert drift <= 2 * b.eta * (b.eps0 - eps) + 64 * EPS * w2
                    assert np.max(metrics.weight_norms(W)) <= b.K * (1 + 64 * EPS)
                instances += 1
    print(f"certified bound checked on {instances} random instances")
    assert instances >= 300


def brute_force_rank_loss(X, Y, r, rng) -> float:
    d_y, d_x = Y.shape[0], X.shape[0]
    if r == 0:
        return 0.5 * float(np.sum(Y * Y))

    def f(z):
        A, B = z[: d_y * r].reshape(d_y, r), z[d_y * r :].reshape(r, d_x)
        R = A @ B @ X - Y
        return 0.5 * np.sum(R * R)

    starts = [rng.standard_normal(d_y * r + r * d_x) for _ in range(8)]
    return min(minimize(f, z0, method="BFGS", options={"gtol": 1e-10}).fun for z0 in starts)


@pytest.mark.parametrize(("d_x", "d_y"), [(2, 2), (3, 2), (2, 3), (3, 3)])
def test_optimal_loss_per_rank_matches_brute_force(d_x, d_y):
    rng = np.random.default_rng(d_x * 10 + d_y)
    ds = data.random(d_x, d_y, 12, int(rng.integers(100)))
    losses = theory.optimal_loss_by_rank(ds.X, ds.Y)
    assert losses.shape == (min(d_x, d_y) + 1,)
    assert np.all(np.diff(losses) <= 1e-12)
    assert losses[-1] == pytest.approx(model.precompute(ds.X, ds.Y).L_star, rel=1e-12)
    for r in range(min(d_x, d_y) + 1):
        assert brute_force_rank_loss(ds.X, ds.Y, r, rng) == pytest.approx(losses[r], rel=1e-8)


def test_rank_optimality_test_accepts_optima_and_rejects_others():
    ds = data.synthetic(4, 4, 30, 4, 0.1, 0)
    prob = model.precompute(ds.X, ds.Y)
    losses = theory.optimal_losses(prob)
    for r in range(1, 5):
        W = theory.balanced_minimizer(prob, [4, r, 4])
        L = model.loss(W, ds.X, ds.Y)
        assert theory.rank_optimal(L, r, losses, eps0=1.0)
        assert not theory.rank_optimal(L + 0.1 * (losses[0] - losses[-1]), r, losses, eps0=1.0)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_closed_form_sharpness_matches_lanczos_on_whitened_data(depth):
    ds = data.synthetic(3, 3, 30, 3, 0.0, 7, whiten=True)
    prob = model.precompute(ds.X, ds.Y)
    sigma1 = np.linalg.svd(prob.P_star, compute_uv=False)[0]
    closed = theory.sharpness_whitened(30.0, depth, sigma1)
    assert theory.sharpness(prob, [3] * (depth + 1)) == pytest.approx(closed, rel=1e-8)


def test_hessian_vector_product_matches_gradient_differences():
    rng = np.random.default_rng(3)
    ds = data.synthetic(3, 2, 20, 2, 0.1, 1)
    prob = model.precompute(ds.X, ds.Y)
    W = init.gaussian([3, 4, 2], 1.0, rng)
    V = [rng.standard_normal(w.shape) for w in W]
    Hv = theory.hessian_vector_product(prob, W, V)
    h = 1e-6
    gp = model.gradients([w + h * v for w, v in zip(W, V, strict=True)], ds.X, ds.Y)
    gm = model.gradients([w - h * v for w, v in zip(W, V, strict=True)], ds.X, ds.Y)
    for hv, a, b in zip(Hv, gp, gm, strict=True):
        np.testing.assert_allclose(hv, (a - b) / (2 * h), rtol=1e-5, atol=1e-5)


def test_acgh_condition_is_pinned_and_undefined_outside_its_assumptions():
    ds = data.synthetic(3, 3, 30, 3, 0.0, 4, whiten=True)
    prob = model.precompute(ds.X, ds.Y)
    N, m = 3, 30
    W = [0.95 ** (1 / N) * w for w in theory.balanced_minimizer(prob, [3, 3, 3, 3])]
    acgh = theory.acgh_step_size(ds.X, ds.Y, W)
    Phi = ds.Y @ ds.X.T / m
    phi = np.linalg.norm(Phi)
    c = np.linalg.svd(Phi, compute_uv=False)[-1] - np.linalg.norm(model.product(W) - Phi)
    expected = c ** ((4 * N - 2) / N) / (6144 * N**3 * phi ** ((6 * N - 4) / N)) / m
    assert acgh.reason == "" and acgh.eta == pytest.approx(expected, rel=1e-12)
    raw = data.synthetic(3, 3, 30, 3, 0.0, 4)
    assert np.isnan(theory.acgh_step_size(raw.X, raw.Y, W).eta)
    far = [0.1 * w for w in W]
    res = theory.acgh_step_size(ds.X, ds.Y, far)
    assert np.isnan(res.eta) and "margin" in res.reason
