"""Closed forms and certified bounds (theory.md, sections 6, 7, 9 and 10).

Every function here is one recipe of ``theory.md``; the section is named in its
docstring. Scalars are Python floats; ``W`` is the list of layer matrices of one run.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numba
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


# --- The certified state-dependent step (theory.md 14) ---------------------------------

#: Layer norms below this are raised to it in :func:`adaptive_hessian_bound` (a larger
#: layer bound keeps every bound valid; it keeps the logarithms finite).
ADAPTIVE_TINY = 1e-150

#: Relative precision of :func:`adaptive_step`: the step is within this fraction of the
#: supremum of certified steps (theory.md 14).
ADAPTIVE_RTOL = 0.01


# The search runs per run in compiled code (numba, cached next to this module): a
# vectorized version over the batch paid about 45 small array operations per evaluation of
# ``M``, several times the arithmetic itself (benchmarks/README.md).
_jit = numba.njit(cache=True, nogil=True)
_LOG2 = math.log(2.0)


@_jit
def _logaddexp(a: float, b: float) -> float:
    """``log(e^a + e^b)`` of two scalars; ``-inf`` is an empty term, NaN propagates."""
    if a == b:
        return a + _LOG2
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


@_jit
def step_buffers(N: int):
    """Scratch arrays of one run's search at depth ``N``: ``sr``, ``crude``, ``log_pq``,
    ``pq`` (:func:`step_inputs`) and ``work``."""
    n = 2 * N - 1
    return np.empty(N), np.empty(n), np.empty(n), np.empty(n), np.empty(6 * N)


@_jit
def step_inputs(s, pre, suf, tiny, sr, crude, log_pq, pq) -> bool:
    """The ``eta``-independent inputs of :func:`_log_hessian_bound` for one run (compiled),
    written into ``sr``, ``crude``, ``log_pq`` and ``pq = exp(log_pq)``; returns whether
    every product of the ``s_l`` lies within ``exp(+-LINEAR_RANGE)`` (``sum_l |log s_l| <=
    LINEAR_RANGE``) and no ``p_j``, ``q_j`` below ``exp(-LINEAR_RANGE)``, where
    :func:`_hessian_bound_linear` can run (their squares stay within the float range). ``sr``
    ``(N,)`` the layer bounds raised to ``tiny``; ``crude`` ``(2N - 1,)`` the logs of
    ``prod_{l<=j} s_l`` (``j = 1..N``, the last the whole product) then of ``prod_{l>=j}
    s_l`` (``j = 2..N``); ``log_pq`` the logs of the prefix and suffix bounds ``p_j``,
    ``q_j`` in the same order, the smaller of ``pre``/``suf`` ``(N - 1,)`` and ``crude``
    (NaN: no bound), ``-inf`` for the whole product (its increment alone)."""
    N = s.shape[0]
    acc = 0.0
    for j in range(N):
        sr[j] = max(s[j], tiny)
        acc += math.log(sr[j])
        crude[j] = acc
    acc = 0.0
    for j in range(N - 1, 0, -1):
        acc += math.log(sr[j])
        crude[N - 1 + j] = acc
    for i in range(2 * N - 1):
        log_pq[i] = crude[i]
    log_pq[N - 1] = -math.inf
    for i in range(N - 1):
        log_pq[i] = _fmin_log(log_pq[i], pre[i])
        log_pq[N + i] = _fmin_log(log_pq[N + i], suf[i])
    spread = 0.0
    for j in range(N):
        spread += abs(math.log(sr[j]))
    linear = spread <= LINEAR_RANGE
    for i in range(2 * N - 1):
        pq[i] = math.exp(log_pq[i])
        if -math.inf < log_pq[i] < -LINEAR_RANGE:
            linear = False
    return linear


@_jit
def _fmin_log(log_bound: float, given: float) -> float:
    """The smaller of ``log_bound`` and ``log(given)`` (``given <= 0``: ``-inf``; NaN: no
    bound, ``log_bound``)."""
    if given != given:
        return log_bound
    return min(log_bound, math.log(given) if given > 0.0 else -math.inf)


@_jit
def _log_hessian_bound(sr, g, log_r0, log_lam, crude, log_pq, log_eta, work) -> float:
    """``log M(eta)`` of theory.md 14 (Lemma B') for one run at ``log_eta``, from the inputs
    of :func:`step_inputs`, ``g`` ``(N,)`` and ``log_r0 = log sqrt(2 eps)``; ``work`` a
    scratch array of at least ``6N`` entries.

    On the segment ``p'_j = p_j + prod_{l<=j} a_l - prod_{l<=j} s_l`` and likewise
    ``q'_j``; ``A1 = sum_j (q'_{j+1} p'_{j-1})^2``, ``A2 = 2 sum_{i<j} (q'_{j+1} p'_{i-1}
    prod_{i<l<j} a_l)^2`` (``p'_0 = q'_{N+1} = 1``), the inner sum of ``A2`` one running
    log-sum-exp. Products are sums of logs (the suffix sums accumulated from the end,
    never as differences), sums of nonnegative terms log-sum-exps and ``prod a - prod s =
    prod s expm1(sum_l log1p(eta g_l / s_l))``: no subtraction of nearly equal numbers,
    and nothing overflows at any depth."""
    N = sr.shape[0]
    if N == 1:  # A1 = 1, A2 = 0
        return log_lam
    eta = math.exp(log_eta)
    # LPS = [0, log p'_1 .. log p'_{N-1}, log(prod a - prod s), log q'_2 .. log q'_N, 0]
    LPS = work[2 * N - 1 : 4 * N]
    LPS[0] = LPS[2 * N] = 0.0
    if eta == 0.0:  # no increments: p'_j = p_j, q'_j = q_j
        for i in range(2 * N - 1):
            LPS[1 + i] = log_pq[i]
    else:
        z, Z = work[5 * N : 6 * N], work[: 2 * N - 1]
        acc = 0.0  # Z: sum_{l<=j} z_l (j = 1..N), then sum_{l>=j} z_l (j = 2..N)
        for j in range(N):
            z[j] = math.log1p(eta * g[j] / sr[j])
            acc += z[j]
            Z[j] = acc
        acc = 0.0
        for j in range(N - 1, 0, -1):
            acc += z[j]
            Z[N - 1 + j] = acc
        for i in range(2 * N - 1):
            zi = Z[i]
            inc = -math.inf if zi == 0.0 else crude[i] + zi + math.log(-math.expm1(-zi))
            LPS[1 + i] = _logaddexp(log_pq[i], inc)
    lrho = _logaddexp(log_r0, 0.5 * log_lam + LPS[N])
    # A1 = sum_j (p'_{j-1} q'_{j+1})^2 as a log-sum-exp
    m = -1e300
    for j in range(N):
        m = max(m, 2.0 * (LPS[j] + LPS[N + 1 + j]))
    acc = 0.0
    for j in range(N):
        acc += math.exp(2.0 * (LPS[j] + LPS[N + 1 + j]) - m)
    lA1 = math.log(acc) + m
    # A2: U_j = log sum_{i<j} (p'_i prod_{i<l<j} a_l)^2 = 2 C_j + log sum_{i<j} p'_i^2 /
    # e^(2 C_{i+1}) with C_j = sum_{l<j} log a_l, one running log-sum-exp over i
    T = work[4 * N : 5 * N - 1]
    C2, U, m = 0.0, -math.inf, -1e300
    for i in range(N - 1):
        C2 += 2.0 * math.log(sr[i] + eta * g[i])
        U = _logaddexp(U, 2.0 * LPS[i] - C2)
        T[i] = 2.0 * LPS[N + 2 + i] + U + C2
        m = max(m, T[i])
    acc = 0.0
    for i in range(N - 1):
        acc += math.exp(T[i] - m)
    lA2 = _LOG2 + math.log(acc) + m
    return _logaddexp(log_lam + lA1, 0.5 * log_lam + lrho + 0.5 * lA2)


@_jit
def _log_hessian_bounds(s, g, log_r0, log_lam, pre, suf, tiny, log_eta):
    """:func:`_log_hessian_bound` for every run of a batch, shape ``(B,)``."""
    B, N = s.shape
    out = np.empty(B)
    sr, crude, log_pq, pq, work = step_buffers(N)
    for r in range(B):
        lin = step_inputs(s[r], pre[r], suf[r], tiny, sr, crude, log_pq, pq)
        out[r] = _log_M(sr, g[r], log_r0[r], log_lam, crude, log_pq, pq, lin, log_eta[r], work)
    return out


#: Where every product of layer bounds and every prefix and suffix bound lies within
#: ``exp(+-LINEAR_RANGE)`` (nearly always), :func:`_hessian_bound_linear` evaluates ``M``
#: without logarithms; elsewhere the log-space :func:`_log_hessian_bound` does.
LINEAR_RANGE = 150.0


@_jit
def _hessian_bound_linear(sr, g, r0, lam, pq, eta, work) -> float:
    """``M(eta)`` of theory.md 14 (Lemma B') for one run, the same bound as
    :func:`_log_hessian_bound` in plain arithmetic (``N >= 2``): ``pq = exp(log_pq)`` of
    :func:`step_inputs`, ``r0 = sqrt(2 eps)``, ``work`` at least ``2N + 2`` entries. The
    increments ``prod_{l<=j} a_l - prod_{l<=j} s_l`` come from the recursion ``D_j = a_j
    D_{j-1} + (prod_{l<j} s_l) eta g_j`` (and from the back for the suffixes), a sum of
    nonnegative terms: no subtraction anywhere, no transcendental function but three
    square roots. ``U_{j+1} = a_j^2 U_j + p'_{j-1}^2`` is the inner sum of ``A2``."""
    N = sr.shape[0]
    P, Q = work[:N], work[N : 2 * N + 2]  # P[j] = p'_j (P[0] = 1); Q[j] = q'_j (Q[N+1] = 1)
    P[0], Q[N + 1] = 1.0, 1.0
    S, D = 1.0, 0.0
    for j in range(1, N + 1):
        h = eta * g[j - 1]
        D = (sr[j - 1] + h) * D + S * h
        S *= sr[j - 1]
        if j < N:
            P[j] = pq[j - 1] + D
    rho = r0 + math.sqrt(lam) * D  # D: the whole product's increment
    S, D = 1.0, 0.0
    for j in range(N, 1, -1):
        h = eta * g[j - 1]
        D = (sr[j - 1] + h) * D + S * h
        S *= sr[j - 1]
        Q[j] = pq[N + j - 2] + D
    A1 = 0.0
    for j in range(1, N + 1):
        t = P[j - 1] * Q[j + 1]
        A1 += t * t
    A2, U = 0.0, 0.0
    for j in range(2, N + 1):
        a = sr[j - 2] + eta * g[j - 2]
        U = U * a * a + P[j - 2] * P[j - 2]
        A2 += Q[j + 1] * Q[j + 1] * U
    return lam * A1 + math.sqrt(lam) * rho * math.sqrt(2.0 * A2)


@_jit
def _log_M(sr, g, log_r0, log_lam, crude, log_pq, pq, linear, log_eta, work) -> float:
    """``log M(eta)``: :func:`_hessian_bound_linear` where ``linear`` (and ``eps``,
    ``lam_max`` are within range), else :func:`_log_hessian_bound`."""
    if linear and sr.shape[0] > 1 and log_r0 < LINEAR_RANGE and abs(log_lam) < LINEAR_RANGE:
        lam, r0 = math.exp(log_lam), math.exp(log_r0)
        return math.log(_hessian_bound_linear(sr, g, r0, lam, pq, math.exp(log_eta), work))
    return _log_hessian_bound(sr, g, log_r0, log_lam, crude, log_pq, log_eta, work)


@_jit
def log_certified_step(
    sr, g, log_r0, log_lam, crude, log_pq, pq, linear, log_eta_max, tol, max_evals, work
):
    """The search of :func:`adaptive_step` for one run in ``u = log eta`` (compiled): the
    lower end of the final bracket, from the inputs of :func:`step_inputs` (``linear`` its
    result), ``g`` ``(N,)``,
    ``log_r0 = log sqrt(2 eps)``, ``log_eta_max``, ``tol = log(1 + rtol)`` and a scratch
    array ``work`` of ``6N`` entries (``N >= 2``)."""
    N = sr.shape[0]
    slope = 2.0 * N - 1.0
    lM0 = _log_M(sr, g, log_r0, log_lam, crude, log_pq, pq, linear, -math.inf, work)
    b = min(-lM0, log_eta_max)
    phi_b = b + _log_M(sr, g, log_r0, log_lam, crude, log_pq, pq, linear, b, work)
    if not phi_b > 0.0:  # certified at the upper end (or not finite: a diverging run)
        return b
    lower, upper = b - phi_b, b - phi_b / slope
    a, phi_a = lower, math.nan
    for _ in range(max_evals):
        if not upper - lower > tol:
            break
        p = 0.5 * (lower + upper)
        phi_p = p + _log_M(sr, g, log_r0, log_lam, crude, log_pq, pq, linear, p, work)
        if phi_p <= 0.0:
            a, phi_a = p, phi_p
            upper, lower = min(upper, p - phi_p), max(lower, p)
        else:
            b, phi_b = p, phi_p
            upper, lower = min(upper, p - phi_p / slope), max(lower, p - phi_p)
        chord = a - phi_a * (b - a) / (phi_b - phi_a)  # NaN until a point is certified
        if lower < chord <= b:
            lower = chord
    return lower


@_jit
def _adaptive_steps(s, g, log_r0, log_lam, pre, suf, tiny, log_eta_max, tol, max_evals):
    """:func:`log_certified_step` for every run of a batch, shape ``(B,)``."""
    B, N = s.shape
    out = np.empty(B)
    sr, crude, log_pq, pq, work = step_buffers(N)
    for r in range(B):
        lin = step_inputs(s[r], pre[r], suf[r], tiny, sr, crude, log_pq, pq)
        out[r] = log_certified_step(
            sr, g[r], log_r0[r], log_lam, crude, log_pq, pq, lin, log_eta_max[r], tol, max_evals,
            work,
        )  # fmt: skip
    return out


def _as_rows(x, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a C-contiguous float array of ``shape`` (``InputError`` naming ``name``
    otherwise); an array that already is one is returned as it is."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.shape != shape:
        if x.ndim == 1 and len(shape) == 2 and x.shape == shape[1:] and shape[0] == 1:
            return x[None]
        raise InputError(f"{name} must have shape {shape}, got {x.shape}")
    return x


def _adaptive_arrays(s, g, eps, pre, suf):
    """``s``, ``g`` ``(B, N)``, ``log sqrt(2 eps)`` ``(B,)`` and ``pre``, ``suf`` ``(B, N - 1)``
    (NaN where not given) as C-contiguous float arrays, the shapes checked."""
    s = np.ascontiguousarray(s, dtype=np.float64)
    if s.ndim == 1:
        s = s[None]
    B, N = s.shape
    g = _as_rows(g, "g", (B, N))
    eps = np.asarray(eps, dtype=np.float64)
    if eps.shape != (B,):
        eps = np.broadcast_to(eps, (B,))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r0 = 0.5 * np.log(2.0 * eps)
    nan = None if pre is not None and suf is not None else np.full((B, max(N - 1, 0)), np.nan)
    pre = nan if pre is None else _as_rows(pre, "pre", (B, N - 1))
    suf = nan if suf is None else _as_rows(suf, "suf", (B, N - 1))
    return s, g, log_r0, pre, suf


def adaptive_hessian_bound(s, g, eps, lam_max: float, eta, *, pre=None, suf=None) -> np.ndarray:
    """``M(eta)`` of theory.md 14 (Lemma B'), shape ``(B,)``: a bound on the Hessian of
    ``L`` on the whole segment ``W - t G``, ``0 <= t <= eta``.

    ``s`` ``(B, N)``: upper bounds of the spectral norms ``||W_j||_2``; ``g`` ``(B, N)``: the
    Frobenius norms ``||G_j||_F`` of the gradient blocks; ``eps`` ``(B,)``: excess losses;
    ``lam_max = ||X X^T||_2``; ``eta`` ``(B,)`` or a scalar. ``pre``, ``suf`` ``(B, N - 1)``
    (optional): upper bounds of the prefix norms ``||W_{j:1}||_2`` (``j = 1..N-1``) and the
    suffix norms ``||W_{N:j}||_2`` (``j = 2..N``); without them (or where larger, or NaN)
    the product of the layers' ``s`` stands in, which gives Lemma B's bound.
    """
    s, g, log_r0, pre, suf = _adaptive_arrays(s, g, eps, pre, suf)
    eta = np.broadcast_to(np.asarray(eta, dtype=np.float64), s.shape[:1])
    with np.errstate(divide="ignore"):
        log_eta = np.ascontiguousarray(np.log(eta))
    log_M = _log_hessian_bounds(s, g, log_r0, math.log(lam_max), pre, suf, ADAPTIVE_TINY, log_eta)
    return np.exp(log_M)


def adaptive_step(
    s,
    g,
    eps,
    lam_max: float,
    eta_max,
    rtol: float = ADAPTIVE_RTOL,
    max_evals: int = 64,
    *,
    pre=None,
    suf=None,
) -> np.ndarray:
    """The certified state-dependent step of theory.md 14, one per run, shape ``(B,)``.

    ``s`` ``(B, N)``: upper bounds of ``||W_j||_2`` (exact norms or rigorous upper bounds);
    ``g`` ``(B, N)``: ``||G_j||_F``; ``eps`` ``(B,)``: excess losses; ``lam_max`` the largest
    eigenvalue of ``X X^T``; ``eta_max`` ``(B,)`` or a scalar: the cap, finite and > 0;
    ``pre``, ``suf`` ``(B, N - 1)``: optional upper bounds of the prefix and suffix norms
    (:func:`adaptive_hessian_bound`).

    Returns ``eta <= eta_max`` with ``eta M(eta) <= 1`` (:func:`adaptive_hessian_bound`)
    and ``eta >= sup{eta' <= eta_max : eta' M(eta') <= 1} / (1 + rtol)``. In
    ``u = log eta``, ``phi(u) = u + log M(e^u)`` is convex with slope between 1 and
    ``2N - 1``: from ``u_hi = min(-log M(0), log eta_max)``, done if ``phi(u_hi) <= 0``; else
    the root lies in ``[u_hi - phi, u_hi - phi / (2N - 1)]``, and bisection of that bracket
    with chord steps (a chord point of a convex function is certified) narrows it to
    ``log(1 + rtol)``. Each run's search is its own (the result of a run does not depend on
    the batch). Depth 1 returns ``min(1 / lam_max, eta_max)`` exactly.
    """
    s, g, log_r0, pre, suf = _adaptive_arrays(s, g, eps, pre, suf)
    B, N = s.shape
    eta_max = np.asarray(eta_max, dtype=np.float64)
    if eta_max.shape != (B,):
        eta_max = np.ascontiguousarray(np.broadcast_to(eta_max, (B,)))
    log_eta_max = np.log(eta_max)
    if not np.isfinite(log_eta_max).all():
        raise InputError(f"eta_max must be finite and > 0, got {eta_max}")
    if N == 1:
        return np.minimum(1.0 / lam_max, eta_max)
    log_eta = _adaptive_steps(
        s, g, log_r0, math.log(lam_max), pre, suf, ADAPTIVE_TINY, log_eta_max,
        math.log1p(rtol), max_evals,
    )  # fmt: skip
    return np.minimum(np.exp(log_eta), eta_max)  # exp(log(eta_max)) may round up


def adaptive_cap(prob: Problem, depth: int, product_norm0: float = 0.0) -> float:
    """``eta_max`` of the adaptive schedule (theory.md 14): the proven edge of stability
    ``2 / (lam_min N sigma^(2(N-1)/N))`` with ``sigma = max(sigma_1(P*), ||P(0)||_2)``, i.e.
    :func:`edge_of_stability_max` unless ``P*`` is zero (or smaller than the start's product);
    ``2 / lam_min`` when both vanish."""
    s1 = float(np.linalg.svd(prob.P_star, compute_uv=False)[0])
    sigma = max(s1, float(product_norm0))
    if depth == 1 or sigma == 0.0:
        return 2.0 / prob.lam_min
    return 2.0 / (prob.lam_min * depth * sigma ** (2.0 * (depth - 1) / depth))


@dataclass(frozen=True)
class AdaptiveBound:
    """Constants of the adaptive schedule's theorem (theory.md 14) for one start.

    ``eta_max`` caps every step; ``eta_start`` is the certified step at ``W(0)``;
    ``drift_bound = 2 eta_max eps0`` and ``K`` (Lemma A with that drift) are guarantees 2
    and 3.
    """

    eta_max: float
    eta_start: float
    drift_bound: float
    K: float
    eps0: float
    delta0: float


def partial_product_norms(W: Weights) -> tuple[np.ndarray, np.ndarray]:
    """Spectral norms of the prefixes ``||W_{j:1}||_2`` (``j = 1..N-1``) and of the
    suffixes ``||W_{N:j}||_2`` (``j = 2..N``), each of shape ``(..., N - 1)`` for layers
    ``(..., d_{j+1}, d_j)`` (one run, or a batch of runs) (theory.md 14, Lemma B')."""
    N = len(W)
    pre, suf = [], []
    A = W[0]
    for j in range(N - 1):
        pre.append(metrics.spectral_norm(A))
        A = W[j + 1] @ A
    A = W[N - 1]
    for j in range(N - 1, 0, -1):
        suf.append(metrics.spectral_norm(A))
        A = A @ W[j - 1]
    if N == 1:
        empty = np.empty((*np.shape(W[0])[:-2], 0))
        return empty, empty.copy()
    return np.stack(pre, axis=-1), np.stack(suf[::-1], axis=-1)


def adaptive_step_at(prob: Problem, W: Weights, eta_max: float) -> float:
    """The certified step of theory.md 14 at one point ``W`` with exact spectral norms of
    the layers and of the prefix and suffix products (Lemma B')."""
    model.check_weights(W, prob.d_x, prob.d_y)
    P = model.product(W)
    eps = float(model.excess_loss(P, prob))
    G = model.gradients_from_residual(W, model.residual_correlation(P, prob))
    s = metrics.weight_norms(W)[None]
    g = np.array([[float(np.linalg.norm(Gj)) for Gj in G]])
    pre, suf = partial_product_norms(W)
    return float(adaptive_step(s, g, eps, prob.lam_max, eta_max, pre=pre[None], suf=suf[None])[0])


def adaptive_bound(prob: Problem, W: Weights) -> AdaptiveBound:
    """The adaptive schedule's cap, start step and guarantees for the start ``W``
    (theory.md 14): ``pbar`` and Lemma A as in section 6 with ``eta_max`` for ``eta_cert``."""
    eps0, delta0 = initial_constants(prob, W)
    N = len(W)
    eta_max = adaptive_cap(prob, N, float(np.linalg.norm(model.product(W), 2)))
    pbar = float(np.linalg.norm(prob.P_star, 2)) + math.sqrt(2.0 * eps0 / prob.lam_min)
    drift = 2.0 * eta_max * eps0
    K = math.sqrt(pbar ** (2.0 / N) + 2.0 * (N - 1) * (delta0 + drift))
    return AdaptiveBound(eta_max, adaptive_step_at(prob, W, eta_max), drift, K, eps0, delta0)
