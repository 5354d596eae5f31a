"""Closed forms and certified bounds (theory.md, sections 6, 7, 9 and 10).

Every function here is one recipe of ``theory.md``; the section is named in its
docstring. Scalars are Python floats; ``W`` is the list of layer matrices of one run.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from deeplinear import metrics, model
from deeplinear.errors import InputError
from deeplinear.model import Problem

Weights = Sequence[np.ndarray]

#: Relative precision of the bisection for ``eta_cert`` (on ``log eta``).
BISECTION_RTOL = 1e-12


@dataclass(frozen=True)
class StepBound:
    """The certified step size and the constants of its proof (theory.md, section 6).

    ``eta`` is ``eta_cert``; ``K`` bounds every ``||W_j(k)||_2``; ``lipschitz`` is the
    Hessian bound ``Lip(eta_cert)`` (so ``eta * lipschitz <= 1``); ``delta0``, ``eps0`` are
    the initial balancedness and excess loss; ``pbar`` bounds ``||P(k)||_2``.
    """

    eta: float
    K: float
    delta0: float
    eps0: float
    pbar: float
    lipschitz: float
    lam_max: float
    lam_min: float
    depth: int

    @property
    def drift_bound(self) -> float:
        """Guarantee 2: ``max_j ||D_j(k) - D_j(0)||_2 <= 2 eta_cert eps0``."""
        return 2.0 * self.eta * self.eps0


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _logaddexp(a: float, b: float) -> float:
    return float(np.logaddexp(a, b))


def _log_chain(log_eta: float, N: int, eps0: float, delta0: float, pbar: float, lam_max: float):
    """``(log K, log Lip)`` at step ``eta = exp(log_eta)``: the chain of section 6 in logs."""
    eta = math.exp(log_eta)
    dbar = delta0 + 2.0 * eta * eps0
    log_K = 0.5 * math.log(pbar ** (2.0 / N) + 2.0 * (N - 1) * dbar)
    log_g = (N - 1) * log_K + 0.5 * _log(2.0 * eps0 * lam_max)
    log_Kp = _logaddexp(log_K, log_eta + log_g)
    log_lam = math.log(lam_max)
    log_rho = _logaddexp(
        0.5 * _log(2.0 * eps0),
        0.5 * log_lam + (N - 1) * log_Kp + log_eta + math.log(N) + log_g,
    )
    log_lip = log_lam + math.log(N) + 2.0 * (N - 1) * log_Kp
    if N >= 2:
        log_lip = _logaddexp(log_lip, 0.5 * log_lam + log_rho + math.log(N - 1) + (N - 2) * log_Kp)
    return log_K, log_lip


#: Natural logarithms of the smallest normal and the largest float64.
LOG_TINY = math.log(sys.float_info.min)
LOG_MAX = math.log(sys.float_info.max)


def check_step(eta: float, depth: int, log_eta: float | None = None) -> None:
    """Raise :class:`InputError` unless ``eta`` is a finite step of at least the smallest
    normal float64: a step that underflows to 0 (or to a subnormal, which has lost its
    precision) cannot move a run, which would then look converged (theory.md 6, 12)."""
    if math.isfinite(eta) and eta >= sys.float_info.min:
        return
    shown = f"log eta_cert = {log_eta:.4g}" if log_eta is not None else f"eta = {eta!r}"
    raise InputError(
        f"the certified step size underflows at depth N = {depth} ({shown}; the smallest "
        f"normal float64 is exp({LOG_TINY:.4g})): no run at this depth can move in float64; "
        "use fewer layers (config key depths) or another init scale"
    )


def step_bound(prob: Problem, eps0: float, delta0: float, depth: int) -> StepBound:
    """``eta_cert = sup{eta > 0 : eta Lip(eta) <= 1}`` from the run's constants (section 6).

    Bisection on ``log eta`` to relative precision :data:`BISECTION_RTOL`; ``Lip`` is
    evaluated in log space so deep networks with large ``K`` do not overflow.
    """
    if depth < 1:
        raise InputError(f"depth N must be >= 1, got {depth}")
    if not (math.isfinite(eps0) and eps0 >= 0 and math.isfinite(delta0) and delta0 >= 0):
        raise InputError(f"need finite eps0 >= 0 and delta0 >= 0, got {eps0}, {delta0}")
    N = depth
    pbar = float(np.linalg.norm(prob.P_star, 2)) + math.sqrt(2.0 * eps0 / prob.lam_min)

    def crossing(log_eta: float) -> float:
        return log_eta + _log_chain(log_eta, N, eps0, delta0, pbar, prob.lam_max)[1]

    # Lip is increasing in eta, so eta_cert < 1 / Lip(0): that is the upper end.
    hi = -_log_chain(-math.inf, N, eps0, delta0, pbar, prob.lam_max)[1]
    if N == 1 or eps0 == 0.0:
        lo = hi  # Lip does not depend on eta: eta_cert = 1 / Lip exactly.
    else:
        width = 1.0
        lo = hi - width
        while crossing(lo) > 0.0:
            hi, width = lo, 2.0 * width
            lo = hi - width
        while hi - lo > BISECTION_RTOL:
            mid = 0.5 * (lo + hi)
            if crossing(mid) <= 0.0:
                lo = mid
            else:
                hi = mid
    eta = 1.0 / prob.lam_max if N == 1 else math.exp(lo)
    check_step(eta, N, lo)
    log_K, log_lip = _log_chain(math.log(eta), N, eps0, delta0, pbar, prob.lam_max)
    if not (math.isfinite(log_K) and log_K < LOG_MAX and log_lip < LOG_MAX):
        raise InputError(
            f"the certified constants overflow at depth N = {N} (log K = {log_K:.4g}, "
            f"log Lip = {log_lip:.4g}, float64 ends at {LOG_MAX:.4g}): the start is too "
            "large for this depth; use a smaller init scale or fewer layers"
        )
    return StepBound(
        eta=eta,
        K=math.exp(log_K),
        delta0=delta0,
        eps0=eps0,
        pbar=pbar,
        lipschitz=math.exp(log_lip),
        lam_max=prob.lam_max,
        lam_min=prob.lam_min,
        depth=N,
    )


def initial_constants(prob: Problem, W: Weights) -> tuple[float, float]:
    """``(eps0, delta0)`` of one start ``W``: its excess loss and balancedness."""
    model.check_weights(W, prob.d_x, prob.d_y)
    eps0 = float(model.excess_loss(model.product(W), prob))
    return eps0, float(metrics.balancedness(W))


def certified_step_size(X: np.ndarray, Y: np.ndarray, W: Weights) -> StepBound:
    """Certified step size of theory.md section 6 for data ``X, Y`` and start ``W``."""
    prob = model.precompute(X, Y)
    eps0, delta0 = initial_constants(prob, W)
    return step_bound(prob, eps0, delta0, len(W))


def whitened_singular_values(prob: Problem) -> np.ndarray:
    """Singular values ``sigma_1 >= sigma_2 >= ...`` of ``Q = M R^{-T}`` (section 7)."""
    return np.linalg.svd(whitened_target(prob), compute_uv=False)


def whitened_target(prob: Problem) -> np.ndarray:
    """``Q = M R^{-T} = P* R``: the target after whitening by ``R``, shape ``(d_y, d_x)``."""
    return prob.P_star @ prob.R


def optimal_losses(prob: Problem) -> np.ndarray:
    """``L*_r = L* + 1/2 sum_{i>r} sigma_i^2`` for ``r = 0..min(d_x, d_y)`` (section 7)."""
    s2 = whitened_singular_values(prob) ** 2
    tail = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]])  # tail[r] = sum_{i>r} s_i^2
    return prob.L_star + 0.5 * tail


def optimal_loss_by_rank(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Entry ``r``: the minimal loss over products of rank ``<= r`` (Eckart-Young, section 7)."""
    return optimal_losses(model.precompute(X, Y))


def target_rank(prob: Problem, r_max: int, rtol: float = metrics.RANK_RTOL) -> int:
    """Numerical rank (:func:`metrics.numerical_rank`, section 7) of the unconstrained
    optimum ``P*``, truncated at the bottleneck ``r_max``: the same definition the engine
    logs, so a global minimizer has the target rank."""
    threshold = metrics.rank_threshold(prob, rtol)
    if threshold == 0.0:
        return 0
    return int(min(metrics.numerical_rank(prob.P_star, prob.R, threshold), r_max))


def rank_optimal(
    loss_value: float,
    rank: int,
    losses_by_rank: np.ndarray,
    eps0: float,
    tol: float = 1e-6,
) -> bool:
    """Whether a limit of numerical rank ``r`` is the global minimum on the rank-r manifold.

    True when ``L(P) - L*_r <= tol * max(eps0, L*_0 - L*)`` (section 7). ``losses_by_rank``
    comes from :func:`optimal_losses`; its last entry is ``L*``.
    """
    scale = max(eps0, float(losses_by_rank[0] - losses_by_rank[-1]))
    return bool(loss_value - losses_by_rank[rank] <= tol * scale)


def escape_level(losses_by_rank: np.ndarray, rank: int) -> float:
    """``(L*_r + L*_{r+1}) / 2``: a run started near the rank-``r`` manifold has escaped it
    once its loss falls below this level (section 8). ``losses_by_rank`` is
    :func:`optimal_losses`; ``rank`` must be below its last index."""
    if not 0 <= rank < losses_by_rank.size - 1:
        raise ValueError(f"escape needs 0 <= rank < {losses_by_rank.size - 1}, got {rank}")
    return float(0.5 * (losses_by_rank[rank] + losses_by_rank[rank + 1]))


def escape_exponent(depth: int) -> float:
    """Predicted power of ``xi`` in the escape time (section 8): ``2 - N`` for ``N >= 3``;
    NaN for ``N = 2``, where the prediction is ``log(1/xi)`` instead of a power."""
    return float(2 - depth) if depth >= 3 else math.nan


def balanced_minimizer(prob: Problem, widths: Sequence[int]) -> list[np.ndarray]:
    """An exactly balanced global minimizer with the given widths ``[d_0, ..., d_N]``.

    Built from the SVD of the whitened target truncated at the bottleneck ``r_max``:
    ``P = U S V^T R^{-1}``; every layer carries ``S^{1/N}`` (section 9).
    """
    N = len(widths) - 1
    r = min(widths)
    U, s, Vt = np.linalg.svd(whitened_target(prob), full_matrices=False)
    r = min(r, s.size)
    U, s, Vt = U[:, :r], s[:r], Vt[:r]
    # P_opt = U S V^T R^{-1}: fold R^{-1} into the right factor, then balance the layers.
    Bt = np.linalg.solve(prob.R.T, Vt.T).T  # V^T R^{-1}, shape (r, d_x)
    Ub, sb, Vbt = np.linalg.svd((U * s) @ Bt, full_matrices=False)
    Ub, sb, Vbt = Ub[:, :r], sb[:r], Vbt[:r]
    root = sb ** (1.0 / N)
    W = []
    for j in range(1, N + 1):
        Wj = np.zeros((widths[j], widths[j - 1]))
        if j == 1 and j == N:
            Wj = (Ub * sb) @ Vbt
        elif j == 1:
            Wj[:r] = root[:, None] * Vbt
        elif j == N:
            Wj[:, :r] = Ub * root
        else:
            Wj[:r, :r] = np.diag(root)
        W.append(Wj)
    return W


def hessian_vector_product(prob: Problem, W: Weights, V: Weights) -> list[np.ndarray]:
    """Exact ``H(W)[V]`` of the loss, by complex-step differentiation of the gradient.

    The gradient is a polynomial in ``W`` written without conjugation, so
    ``Im grad(W + i h V) / h`` equals the Hessian-vector product to rounding.
    """
    h = 1e-30
    Wc = [Wj + 1j * h * Vj for Wj, Vj in zip(W, V, strict=True)]
    G = model.gradients_from_residual(Wc, model.residual_correlation(model.product(Wc), prob))
    return [g.imag / h for g in G]


def sharpness(prob: Problem, widths: Sequence[int], seed: int = 0) -> float:
    """Largest Hessian eigenvalue at the balanced global minimizer (section 9)."""
    return sharpness_at(prob, balanced_minimizer(prob, widths), seed)


def sharpness_whitened(c: float, depth: int, sigma1: float) -> float:
    """Closed form ``S = c N sigma_1(P*)^(2(N-1)/N)`` for ``C = c I`` (section 9)."""
    return c * depth * sigma1 ** (2.0 * (depth - 1) / depth)


def edge_of_stability_max(prob: Problem, depth: int) -> float:
    """``2 / (lam_min N sigma_1(P*)^(2(N-1)/N))``: an upper bound on ``2 / S`` over every
    global minimizer a network of depth ``N`` can reach (section 13); equal to
    :func:`edge_of_stability_step` of the balanced minimizer for whitened data."""
    s1 = float(np.linalg.svd(prob.P_star, compute_uv=False)[0])
    return 2.0 / (prob.lam_min * depth * s1 ** (2.0 * (depth - 1) / depth))


def edge_of_stability_step(S: float) -> float:
    """``2 / S``: no constant step above it converges to a minimizer of sharpness ``S``."""
    return 2.0 / S


@dataclass(frozen=True)
class AcghBound:
    """ACGH 2019 step condition: ``eta`` (``NaN`` when undefined) and the ``reason``."""

    eta: float
    reason: str = ""
    margin: float = math.nan
    delta: float = math.nan


def acgh_step_size(X: np.ndarray, Y: np.ndarray, W: Weights, whiten_tol: float = 1e-8) -> AcghBound:
    """Arora, Cohen, Golowich, Hu (ICLR 2019, arXiv 1810.02281), Theorem 1 (section 10).

    For whitened data (``X X^T / m = I``), a ``delta``-balanced start (Frobenius) with
    ``delta <= c^2 / (256 N^3 ||Phi||_F^(2(N-1)/N))`` and deficiency margin ``c > 0``
    (``||P(0) - Phi||_F <= sigma_min(Phi) - c``) converges with
    ``eta <= c^((4N-2)/N) / (6144 N^3 ||Phi||_F^((6N-4)/N))`` on their loss ``1/(2m)||.||^2``.
    Our loss is ``m`` times theirs, so the returned step is that value divided by ``m``.
    Returns ``NaN`` with the violated assumption in ``reason`` where it does not apply.
    """
    widths = model.check_weights(W, X.shape[0], Y.shape[0])
    N, m = len(W), X.shape[1]
    C = X @ X.T / m
    white = float(np.linalg.norm(C - np.eye(C.shape[0]), 2))
    if white > whiten_tol:
        return AcghBound(math.nan, f"data not whitened: ||X X^T/m - I||_2 = {white:.2e}")
    if min(widths[1:-1], default=math.inf) < min(widths[0], widths[-1]):
        return AcghBound(math.nan, "a hidden width is below min(d_x, d_y)")
    Phi = Y @ X.T / m
    phi_F = float(np.linalg.norm(Phi))
    sig_min = float(np.linalg.svd(Phi, compute_uv=False)[-1])
    c = sig_min - float(np.linalg.norm(model.product(W) - Phi))
    D = metrics.balance_matrices(W)
    delta = max((float(np.linalg.norm(Dj)) for Dj in D), default=0.0)
    if c <= 0:
        return AcghBound(math.nan, f"no deficiency margin (c = {c:.3g} <= 0)", c, delta)
    delta_max = c**2 / (256 * N**3 * phi_F ** (2 * (N - 1) / N))
    if delta > delta_max:
        return AcghBound(
            math.nan, f"start not balanced enough: delta {delta:.3g} > {delta_max:.3g}", c, delta
        )
    eta = c ** ((4 * N - 2) / N) / (6144 * N**3 * phi_F ** ((6 * N - 4) / N))
    return AcghBound(eta / m, "", c, delta)


def sharpness_at(prob: Problem, W: Weights, seed: int = 0, tol: float = 1e-12) -> float:
    """Largest Hessian eigenvalue of the loss at an arbitrary point ``W`` (section 9).

    ``W`` is one run's list of layers ``W_j`` of shape ``(d_j, d_{j-1})``. Lanczos
    (``scipy.sparse.linalg.eigsh``, ``which="LA"``, start vector from ``seed``) on the exact
    Hessian-vector products of :func:`hessian_vector_product`; a dense eigensolve when the
    network has at most 2 parameters. Away from a minimizer the Hessian can be indefinite:
    this is its largest (algebraic) eigenvalue, the one linear stability of GD refers to.
    """
    model.check_weights(W, prob.d_x, prob.d_y)
    W = [np.asarray(Wj, dtype=np.float64) for Wj in W]
    shapes = [Wj.shape for Wj in W]
    sizes = [a * b for a, b in shapes]
    n = sum(sizes)

    def matvec(v: np.ndarray) -> np.ndarray:
        parts = np.split(np.asarray(v, dtype=np.float64).ravel(), np.cumsum(sizes)[:-1])
        V = [p.reshape(s) for p, s in zip(parts, shapes, strict=True)]
        return np.concatenate([g.ravel() for g in hessian_vector_product(prob, W, V)])

    if n <= 2:
        H = np.column_stack([matvec(e) for e in np.eye(n)])
        return float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    v0 = np.random.default_rng(seed).standard_normal(n)
    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", v0=v0, tol=tol)[0][0])
