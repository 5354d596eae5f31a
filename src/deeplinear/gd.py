"""The batched gradient-descent engine (pipeline.md, "The library"; theory.md 2, 3, 11, 12).

:func:`run` advances ``B`` runs that share depth and widths at once, on stacked arrays
``(B, d_j, d_{j-1})``: different seeds, inits, step sizes and schedules in one batch.

Cost per iteration and run: one forward pass of prefix products, two products with the
Cholesky factor ``R`` of ``C = X X^T`` (done as one large GEMM for the whole batch), one
backward pass; nothing depends on the number of samples ``m``. All work arrays are
allocated once and written with ``out=``; the weights and gradients of all layers live in
one flat row per run, so the update and the norms are single vectorized operations.
Runs that converge, diverge or exhaust their budget leave the batch (compaction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from deeplinear import metrics, model
from deeplinear.errors import InputError
from deeplinear.model import Problem

CONVERGED, DIVERGED, BUDGET = "converged", "diverged", "budget_exhausted"
STATUSES = (CONVERGED, DIVERGED, BUDGET)

#: Columns of :attr:`RunResult.trajectory` (``run`` is the index of the run in the batch).
TRAJECTORY_COLUMNS = [
    "run",
    "iteration",
    "loss",
    "excess_loss",
    "grad_norm",
    "product_norm",
    "max_weight_norm",
    "balance_drift",
    "rank",
]

_UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2


@dataclass
class RunResult:
    """Outcome of a batch of ``B`` runs; every array has the batch as its first axis.

    ``status`` (one of :data:`STATUSES`) and ``iterations`` (GD steps taken);
    ``weights`` the final layer stacks; ``loss``, ``excess_loss``, ``grad_norm`` at the
    final iterate; ``initial_loss``, ``initial_grad_norm`` at ``k = 0``;
    ``decrease_failures`` the number of steps that broke the sufficient-decrease inequality
    ``L(k+1) <= L(k) - eta_k/2 ||grad L(k)||^2`` beyond rounding (theory.md 6, guarantee 1);
    ``trajectory`` one row per logged iterate with :data:`TRAJECTORY_COLUMNS`.
    """

    status: np.ndarray
    iterations: np.ndarray
    weights: list[np.ndarray]
    loss: np.ndarray
    excess_loss: np.ndarray
    grad_norm: np.ndarray
    initial_loss: np.ndarray
    initial_grad_norm: np.ndarray
    decrease_failures: np.ndarray
    rank_threshold: float
    trajectory: pd.DataFrame


def log_grid(max_iter: int, points: int) -> np.ndarray:
    """Geometric grid of about ``points`` iteration indices in ``[0, max_iter]``."""
    if max_iter <= 0:
        return np.zeros(1, dtype=np.int64)
    n = max(points - 1, 1)
    while True:  # rounding merges early points: add more until about `points` remain
        grid = np.unique(np.rint(np.geomspace(1, max_iter, n)).astype(np.int64))
        if grid.size >= min(points - 1, max_iter) or n > 20 * points:
            return np.concatenate([[0], grid])
        n += points - 1 - grid.size


def step_sizes(eta0: np.ndarray, alpha: np.ndarray, tau: np.ndarray, k: int) -> np.ndarray:
    """``eta_k = eta_0 / (1 + k / tau)^alpha`` per run (``alpha = 0``: constant; theory.md 11)."""
    return eta0 / (1.0 + k / tau) ** alpha


def flow_time(eta0: float, alpha: float, tau: float, k) -> np.ndarray:
    """Gradient-flow time ``t_k = eta_0 + ... + eta_{k-1}`` after ``k`` steps of the
    schedule (theory.md 11); ``k`` is an int or an array of ints."""
    k = np.asarray(k, dtype=np.int64)
    if alpha == 0 or k.size == 0:
        return eta0 * k.astype(np.float64)
    steps = step_sizes(eta0, alpha, tau, np.arange(int(k.max())))
    return np.concatenate([[0.0], np.cumsum(steps)])[k]


def decrease_tolerance(
    eps, g2, lam_max: float, layer_norms2: np.ndarray, depth: int, dim: int
) -> np.ndarray:
    """Rounding allowance for the sufficient-decrease test ``eps(k+1) <= eps(k) - eta/2 g2``.

    ``layer_norms2`` holds ``||W_j||_F^2`` (last axis over layers). The computed product has
    an error of about ``dP = c (N + d) u prod_j ||W_j||_F``, which moves ``eps`` by
    ``sqrt(2 eps lam_max) dP + lam_max dP^2``; rounding the update itself moves the loss by
    about ``u ||grad|| ||W||_F``. A few ulps times these scales.
    """
    gamma = 8.0 * (depth + dim) * _UNIT_ROUNDOFF
    norms2 = np.asarray(layer_norms2)
    dP = gamma * np.sqrt(np.prod(norms2, axis=-1))
    w = np.sqrt(np.sum(norms2, axis=-1))
    return (
        gamma * eps + np.sqrt(2.0 * eps * lam_max) * dP + lam_max * dP**2 + gamma * np.sqrt(g2) * w
    )


def _as_batch_array(value, B: int, name: str, dtype=np.float64) -> np.ndarray:
    """``value`` as a ``(B,)`` array; a scalar applies to every run."""
    try:
        return np.broadcast_to(np.asarray(value, dtype=dtype), (B,)).copy()
    except ValueError:
        raise InputError(
            f"{name} must be a scalar or have one entry per run ({B}), got shape {np.shape(value)}"
        ) from None


def _schedule_params(schedule, tau, alpha, B: int) -> tuple[np.ndarray, np.ndarray]:
    kinds = [schedule] * B if isinstance(schedule, str) else list(schedule)
    if len(kinds) != B:
        raise InputError(f"schedule has {len(kinds)} entries for a batch of {B} runs")
    unknown = set(kinds) - {"constant", "decreasing"}
    if unknown:
        raise InputError(f"unknown step schedule {sorted(unknown)}; use constant or decreasing")
    tau = _as_batch_array(tau, B, "tau")
    alpha = _as_batch_array(alpha, B, "alpha")
    decreasing = np.array([k == "decreasing" for k in kinds])
    if np.any(decreasing & ~((alpha > 0) & (alpha <= 1))):
        raise InputError("decreasing schedule needs 0 < alpha <= 1")
    if np.any(decreasing & ~(tau > 0)):
        raise InputError("decreasing schedule needs tau > 0")
    return np.where(decreasing, alpha, 0.0), np.where(decreasing, tau, 1.0)


class _Batch:
    """Preallocated work arrays for up to ``B`` runs; views are rebuilt after compaction."""

    def __init__(self, widths: list[int], W0: Sequence[np.ndarray]):
        self.widths = widths
        self.N = N = len(widths) - 1
        B = W0[0].shape[0]
        d_x, d_y = widths[0], widths[-1]
        self.sizes = [widths[j + 1] * widths[j] for j in range(N)]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.Wflat = np.empty((B, self.offsets[-1]))
        self.Gflat = np.empty_like(self.Wflat)
        for j in range(N):
            self.Wflat[:, self.offsets[j] : self.offsets[j + 1]] = W0[j].reshape(B, -1)
        # prefix[j] = W_{j+1:1} for j = 1..N-2 (prefix[0] is W_1 itself), the product P
        self.prefix = [None] + [np.empty((B, widths[j + 1], d_x)) for j in range(1, N - 1)]
        self.P = np.empty((B, d_y, d_x))
        self.D = np.empty((B, d_y, d_x))
        self.Z = np.empty((B, d_y, d_x))
        self.E = np.empty((B, d_y, d_x))
        self.U = [np.empty((B, widths[j], d_x)) for j in range(N)]  # U[j]: W_{N:j+1}^T E
        self.b = B
        self.rebuild()

    def layer(self, flat: np.ndarray, j: int) -> np.ndarray:
        d_out, d_in = self.widths[j + 1], self.widths[j]
        return flat[: self.b, self.offsets[j] : self.offsets[j + 1]].reshape(self.b, d_out, d_in)

    def rebuild(self) -> None:
        b = self.b
        self.W = [self.layer(self.Wflat, j) for j in range(self.N)]
        self.G = [self.layer(self.Gflat, j) for j in range(self.N)]
        self.pre = [self.W[0]] + [p[:b] for p in self.prefix[1:]]
        self.Pv = self.P[:b] if self.N > 1 else self.W[0]
        self.Uv = [u[:b] for u in self.U]

    def compact(self, keep: np.ndarray) -> None:
        """Move the rows ``keep`` (boolean over the active rows) to the front."""
        b, nb = self.b, int(keep.sum())
        self.Wflat[:nb] = self.Wflat[:b][keep]
        self.Gflat[:nb] = self.Gflat[:b][keep]
        self.b = nb
        self.rebuild()

    def forward_backward(self, prob: Problem, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``eta_b G_j`` into ``G``; returns ``(eps, ||grad L||_F^2)`` per active run.

        The step size is folded into ``E`` (a small array) so that the update needs no
        extra pass over the gradients.
        """
        b, N, W, pre = self.b, self.N, self.W, self.pre
        for j in range(1, N - 1):
            np.matmul(W[j], pre[j - 1], out=pre[j])
        if N > 1:
            np.matmul(W[N - 1], pre[N - 2], out=self.Pv)
        d_y, d_x = self.widths[-1], self.widths[0]
        D, Z, E = self.D[:b], self.Z[:b], self.E[:b]
        np.subtract(self.Pv, prob.P_star, out=D)
        # Products with the shared R are one large GEMM over the whole batch.
        np.matmul(D.reshape(b * d_y, d_x), prob.R, out=Z.reshape(b * d_y, d_x))
        np.matmul(Z.reshape(b * d_y, d_x), prob.R.T, out=E.reshape(b * d_y, d_x))
        Zf = Z.reshape(b, d_y * d_x)
        eps = 0.5 * np.einsum("ij,ij->i", Zf, Zf)
        np.multiply(E, eta[:, None, None], out=E)
        U = E  # U = W_{N:j+2}^T E for 0-based layer j, shape (b, d_{j+1}, d_x)
        for j in range(N - 1, 0, -1):
            np.matmul(U, np.swapaxes(pre[j - 1], 1, 2), out=self.G[j])
            out = self.Uv[j] if j > 1 else self.G[0]
            np.matmul(np.swapaxes(W[j], 1, 2), U, out=out)
            U = out
        if N == 1:
            self.G[0][...] = E
        Gf = self.Gflat[:b]
        return eps, np.einsum("ij,ij->i", Gf, Gf) / (eta * eta)

    def layer_norms2(self) -> np.ndarray:
        """``||W_j||_F^2`` per active run and layer, shape ``(b, N)``."""
        return np.stack([np.einsum("ij,ij->i", Wj, Wj) for Wj in self.layers_flat()], axis=1)

    def layers_flat(self) -> list[np.ndarray]:
        """The active rows of each layer as 2-d views ``(b, d_j d_{j-1})``."""
        o = self.offsets
        return [self.Wflat[: self.b, o[j] : o[j + 1]] for j in range(self.N)]


def run(
    X: np.ndarray,
    Y: np.ndarray,
    W0: Sequence[np.ndarray],
    eta,
    max_iter,
    *,
    schedule: str | Sequence[str] = "constant",
    tau=100.0,
    alpha=0.5,
    gtol: float = 1e-9,
    ftol: float = 1e-14,
    divergence_factor: float = 1e8,
    rank_rtol: float = 1e-6,
    log_points: int = 200,
    problem: Problem | None = None,
    blas_threads: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run gradient descent on a batch of deep linear networks.

    Parameters
    ----------
    X, Y
        Data ``(d_x, m)`` and targets ``(d_y, m)``.
    W0
        Initial weights: a list of ``N`` stacks ``(B, d_j, d_{j-1})``.
    eta
        Step sizes ``(B,)`` (or a scalar): the constant step, or ``eta_0`` of the schedule.
    max_iter
        Iteration budget, an int or ``(B,)`` ints.
    schedule, tau, alpha
        ``"constant"`` or ``"decreasing"`` (``eta_k = eta_0 / (1 + k/tau)^alpha``), for all
        runs or one entry per run (theory.md 11).
    gtol, ftol
        Convergence: ``||grad L(k)|| <= gtol ||grad L(0)||`` or
        ``eps(k) <= ftol * max(eps0, tiny)``. ``gtol = 0`` disables the convergence stop.
    divergence_factor
        Divergence: a non-finite value or ``L(k) > divergence_factor * max(L(0), L*_0)``,
        recorded at that iteration and never raised (theory.md 12).
    rank_rtol
        Numerical rank threshold relative to ``sigma_1(P*)`` (theory.md 7).
    log_points
        Size of the geometric logging grid; the final iterate of every run is logged too.
    problem
        Precomputed :class:`~deeplinear.model.Problem` of ``X, Y`` (computed if ``None``).
    blas_threads
        BLAS threads used inside the loop (1: small matrices run fastest single-threaded,
        parallelism comes from running several jobs); ``None`` leaves BLAS alone.
    progress
        Called as ``progress(k, active_runs)`` at every logged iteration.
    """
    prob = model.precompute(X, Y) if problem is None else problem
    if not W0 or W0[0].ndim != 3:
        raise InputError("W0 must be a non-empty list of stacks of shape (B, d_j, d_{j-1})")
    widths = model.check_weights(W0, prob.d_x, prob.d_y)
    B = W0[0].shape[0]
    if any(Wj.shape[0] != B for Wj in W0):
        raise InputError("every layer stack in W0 must have the same batch size B")
    if not all(np.all(np.isfinite(Wj)) for Wj in W0):
        raise InputError("W0 contains non-finite values")
    eta0 = _as_batch_array(eta, B, "eta")
    if not np.all(np.isfinite(eta0) & (eta0 > 0)):
        raise InputError(f"step sizes eta must be finite and > 0, got {eta0}")
    budget = _as_batch_array(max_iter, B, "max_iter", dtype=np.int64)
    if np.any(budget < 0):
        raise InputError("max_iter must be >= 0")
    alpha_b, tau_b = _schedule_params(schedule, tau, alpha, B)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        with np.errstate(all="ignore"):
            return _loop(
                prob, widths, W0, eta0, budget, alpha_b, tau_b,
                gtol, ftol, divergence_factor, rank_rtol, log_points, progress,
            )  # fmt: skip


def _loop(
    prob, widths, W0, eta0, budget, alpha, tau,
    gtol, ftol, divergence_factor, rank_rtol, log_points, progress,
) -> RunResult:  # fmt: skip
    B, N = W0[0].shape[0], len(widths) - 1
    batch = _Batch(widths, W0)
    ids = np.arange(B)
    D0 = [Dj.copy() for Dj in metrics.balance_matrices(batch.W)]
    rank_threshold = rank_rtol * float(np.linalg.svd(prob.P_star, compute_uv=False)[0])
    grid = log_grid(int(budget.max()), log_points)
    next_log = 0
    dim = max(widths)
    decreasing = bool(np.any(alpha > 0))

    out_status = np.full(B, BUDGET, dtype=object)
    out_iter = np.zeros(B, dtype=np.int64)
    out_W = np.empty_like(batch.Wflat)
    out_loss, out_eps, out_g = (np.full(B, np.nan) for _ in range(3))
    L0 = np.full(B, np.nan)
    g0 = np.full(B, np.nan)
    failures = np.zeros(B, dtype=np.int64)
    logs: list[dict[str, np.ndarray]] = []
    eps_prev = g2_prev = eta_prev = None

    k = 0
    while batch.b > 0:
        eta_k = step_sizes(eta0, alpha, tau, k) if decreasing else eta0
        eps, g2 = batch.forward_backward(prob, eta_k)
        L = prob.L_star + eps
        if k == 0:
            L0[:], g0[:] = L, np.sqrt(g2)
            eps0, div_limit = eps.copy(), divergence_factor * np.maximum(L, prob.L_zero)
            conv_eps = ftol * np.maximum(eps, np.finfo(np.float64).tiny)
            conv_g = gtol * np.sqrt(g2)
        else:
            # Guarantee 1 of theory.md 6; the rounding allowance is evaluated only where
            # the slack is positive, at the current iterate (its norms equal W(k)'s to O(eta)).
            slack = eps - eps_prev + 0.5 * eta_prev * g2_prev
            pos = slack > 0
            if pos.any():
                tol = decrease_tolerance(
                    eps_prev, g2_prev, prob.lam_max, batch.layer_norms2(), N, dim
                )
                failures[ids] += pos & (slack > tol)
        bad = ~(np.isfinite(eps) & np.isfinite(g2)) | (L > div_limit)
        done = bad | (budget[ids] <= k)
        if gtol > 0:
            done |= ~bad & ((np.sqrt(g2) <= conv_g) | (eps <= conv_eps))
        on_grid = next_log < grid.size and grid[next_log] == k
        if on_grid or done.any():
            rows = np.ones(batch.b, bool) if on_grid else done
            logs.append(_log_rows(batch, prob, D0, ids, rows, k, L, eps, g2, rank_threshold))
            if on_grid:
                next_log += 1
                if progress is not None:
                    progress(k, batch.b)
        if done.any():
            fin = ids[done]
            out_status[fin] = np.where(
                bad[done], DIVERGED, np.where(budget[fin] <= k, BUDGET, CONVERGED)
            )
            out_iter[fin] = k
            out_W[fin] = batch.Wflat[: batch.b][done]
            out_loss[fin], out_eps[fin], out_g[fin] = L[done], eps[done], np.sqrt(g2[done])
            keep = ~done
            batch.compact(keep)
            ids, eps, g2 = ids[keep], eps[keep], g2[keep]
            eta0, eta_k, alpha, tau = eta0[keep], eta_k[keep], alpha[keep], tau[keep]
            eps0, div_limit, conv_eps, conv_g = (
                eps0[keep],
                div_limit[keep],
                conv_eps[keep],
                conv_g[keep],
            )
            D0 = [Dj[keep] for Dj in D0]
            if batch.b == 0:
                break
        np.subtract(batch.Wflat[: batch.b], batch.Gflat[: batch.b], out=batch.Wflat[: batch.b])
        eps_prev, g2_prev, eta_prev = eps, g2, eta_k
        k += 1

    weights = [
        out_W[:, batch.offsets[j] : batch.offsets[j + 1]].reshape(B, widths[j + 1], widths[j])
        for j in range(N)
    ]
    traj = pd.DataFrame({c: np.concatenate([r[c] for r in logs]) for c in TRAJECTORY_COLUMNS})
    traj = traj.sort_values(["run", "iteration"], kind="stable", ignore_index=True)
    return RunResult(
        status=out_status.astype(str),
        iterations=out_iter,
        weights=weights,
        loss=out_loss,
        excess_loss=out_eps,
        grad_norm=out_g,
        initial_loss=L0,
        initial_grad_norm=g0,
        decrease_failures=failures,
        rank_threshold=rank_threshold,
        trajectory=traj,
    )


def _log_rows(batch, prob, D0, ids, rows, k, L, eps, g2, rank_threshold) -> dict[str, np.ndarray]:
    """Trajectory metrics of the active rows ``rows`` at iteration ``k``."""
    W = [Wj[rows] for Wj in batch.W]
    P = batch.Pv[rows]
    ok = np.all(np.isfinite(P.reshape(P.shape[0], -1)), axis=1)
    for Wj in W:
        ok &= np.all(np.isfinite(Wj.reshape(Wj.shape[0], -1)), axis=1)
    n = int(rows.sum())
    pnorm, wnorm, drift, rank = (
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, -1),
    )
    if ok.any():
        Wok = [Wj[ok] for Wj in W]
        sP = np.linalg.svd(P[ok], compute_uv=False)
        pnorm[ok] = sP[:, 0]
        rank[ok] = np.sum(sP > rank_threshold, axis=1)
        wnorm[ok] = metrics.weight_norms(Wok).max(axis=1)
        drift[ok] = metrics.balance_drift(Wok, [Dj[rows][ok] for Dj in D0])
    return {
        "run": ids[rows],
        "iteration": np.full(n, k, dtype=np.int64),
        "loss": L[rows],
        "excess_loss": eps[rows],
        "grad_norm": np.sqrt(g2[rows]),
        "product_norm": pnorm,
        "max_weight_norm": wnorm,
        "balance_drift": drift,
        "rank": rank,
    }
