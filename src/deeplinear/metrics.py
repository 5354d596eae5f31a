"""Numerical rank, balancedness, weight norms and first passages (theory.md 4, 7 and 8).

Spectral norms of the small layers are computed by the cheapest exact method: the largest
eigenvalue of the Gram matrix of the smaller side (``eigvalsh``, batched over the stack),
which is cheaper than an SVD and exact to rounding for the largest singular value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

from deeplinear.model import Problem

#: Default numerical-rank threshold, relative to ``sigma_1(P* R)`` (theory.md 7).
RANK_RTOL = 1e-6

Weights = Sequence[np.ndarray]


def balance_matrices(W: Weights) -> list[np.ndarray]:
    """``D_j = W_{j+1}^T W_{j+1} - W_j W_j^T`` for ``j = 1..N-1``, each ``(..., d_j, d_j)``."""
    return [
        np.swapaxes(W[j + 1], -1, -2) @ W[j + 1] - W[j] @ np.swapaxes(W[j], -1, -2)
        for j in range(len(W) - 1)
    ]


def symmetric_norm(D: np.ndarray) -> np.ndarray:
    """Spectral norm of symmetric matrices ``(..., d, d)``: the largest |eigenvalue|."""
    lam = np.linalg.eigvalsh(D)
    return np.maximum(np.abs(lam[..., 0]), np.abs(lam[..., -1]))


def balancedness(W: Weights) -> np.ndarray:
    """``delta(W) = max_j ||D_j(W)||_2`` (0 for depth 1); shape ``(...)`` of the batch."""
    D = balance_matrices(W)
    batch = W[0].shape[:-2]
    if not D:
        return np.zeros(batch) if batch else np.float64(0.0)
    return np.max([symmetric_norm(Dj) for Dj in D], axis=0)


def balance_drifts(W: Weights, D0: Sequence[np.ndarray]) -> np.ndarray:
    """``||D_j(W) - D_j(0)||_2`` per layer pair, shape ``(..., N-1)`` (theory.md 4)."""
    D = balance_matrices(W)
    return np.stack([symmetric_norm(Dj - D0j) for Dj, D0j in zip(D, D0, strict=True)], axis=-1)


def balance_drift(W: Weights, D0: Sequence[np.ndarray]) -> np.ndarray:
    """``max_j ||D_j(W) - D_j(0)||_2`` against the initial balance matrices ``D0``."""
    batch = W[0].shape[:-2]
    if len(W) < 2:
        return np.zeros(batch) if batch else np.float64(0.0)
    return balance_drifts(W, D0).max(axis=-1)


def _gram(A: np.ndarray) -> np.ndarray:
    """The Gram matrix of the smaller side of each matrix in ``(..., p, q)``."""
    At = np.swapaxes(A, -1, -2)
    return A @ At if A.shape[-2] <= A.shape[-1] else At @ A


def spectral_norm(A: np.ndarray) -> np.ndarray:
    """Largest singular value of each matrix in ``(..., p, q)``: the square root of the
    largest eigenvalue of the Gram matrix of the smaller side."""
    return np.sqrt(np.maximum(np.linalg.eigvalsh(_gram(np.asarray(A)))[..., -1], 0.0))


def top_singular(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``||A||_2`` as :func:`spectral_norm` computes it and the top eigenvector of the Gram
    matrix of the smaller side (``eigh``), for each matrix in ``(k, p, q)``: ``(k,)`` and
    ``(k, min(p, q))``."""
    lam, E = np.linalg.eigh(_gram(np.asarray(A, dtype=np.float64)))
    return np.sqrt(np.maximum(lam[..., -1], 0.0)), np.ascontiguousarray(E[..., -1])


#: Relative gap between the power iteration's Rayleigh quotient and the largest eigenvalue
#: of the Gram matrix that :func:`norm_bounds` tries to certify, and its iterations.
CERTIFY_GAP = 1e-3
CERTIFY_ITERATIONS = 4


@numba.njit(cache=True, nogil=True)
def _certify(mats, vecs, gap, iterations, out) -> None:
    """For each ``(p, q)`` matrix of ``mats`` with Gram matrix ``A`` of its smaller side
    (``n x n``): a power iteration on ``A`` from ``vecs[i]`` (kept for the next call), its
    Rayleigh quotient ``rho``, and a Cholesky factorization of ``c I - A`` with ``c = rho (1 +
    gap)``; where it succeeds ``out[i] = sqrt(c (1 + 4 (n + 1)(p + q) u)) >= ||A||_2^(1/2)``
    (the allowance covers the rounding of ``A`` and of the factorization), else NaN."""
    k, p, q = mats.shape
    n = min(p, q)
    u = 2.0**-53
    allowance = 1.0 + 4.0 * (n + 1) * (p + q) * u
    L = np.empty((n, n))
    for i in range(k):
        M = mats[i]
        A = M @ M.T if p <= q else M.T @ M  # as _gram
        x = vecs[i].copy()
        nrm = math.sqrt(np.sum(x * x))
        if not nrm > 0.0:
            x[:] = 1.0 / math.sqrt(n)
        else:
            x /= nrm
        for _ in range(iterations):
            y = A @ x
            nrm = math.sqrt(np.sum(y * y))
            if not nrm > 0.0:
                break
            x = y / nrm
        rho = np.sum(x * (A @ x))
        c = max(rho, 0.0) * (1.0 + gap) + 1e-300
        vecs[i] = x
        ok = True
        for j in range(n):  # Cholesky of c I - A, lower triangle, stops at a pivot <= 0
            d = c - A[j, j]
            for m in range(j):
                d -= L[j, m] * L[j, m]
            if not d > 0.0:
                ok = False
                break
            L[j, j] = math.sqrt(d)
            for r in range(j + 1, n):
                t = -A[r, j]
                for m in range(j):
                    t -= L[r, m] * L[j, m]
                L[r, j] = t / L[j, j]
        out[i] = math.sqrt(c * allowance) if ok else math.nan


def norm_bounds(A: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """Upper bounds of ``||A||_2`` for each matrix of ``A`` ``(k, p, q)``, at most
    ``sqrt(1 + CERTIFY_GAP)`` (plus rounding) above it where certified, exact
    (:func:`top_singular`) elsewhere; ``vecs`` ``(k, min(p, q))`` are warm starts of the top
    eigenvector of the Gram matrix of the smaller side, updated in place (theory.md 14).

    A few power iterations from the previous top eigenvector give a lower estimate ``rho``
    of ``||A||_2^2``; a Cholesky factorization of ``rho (1 + gap) I - A^T A`` that
    succeeds proves ``||A||_2^2 <= rho (1 + gap)``. This is about four times cheaper than
    an ``eigvalsh`` of the same matrices where the norm has hardly moved since the
    previous one (most refreshes of the adaptive schedule's layer bounds)."""
    A = np.ascontiguousarray(A, dtype=np.float64)
    out = np.empty(A.shape[0])
    _certify(A, vecs, CERTIFY_GAP, CERTIFY_ITERATIONS, out)
    failed = np.isnan(out)
    if failed.any():
        out[failed], vecs[failed] = top_singular(A[failed])
    return out


def weight_norms(W: Weights) -> np.ndarray:
    """Spectral norms ``||W_j||_2``, shape ``(..., N)``."""
    return np.stack([spectral_norm(Wj) for Wj in W], axis=-1)


def singular_values(A: np.ndarray) -> np.ndarray:
    """Singular values of each matrix in ``(..., p, q)``, descending (batched SVD)."""
    return np.linalg.svd(A, compute_uv=False)


def rank_threshold(prob: Problem, rtol: float = RANK_RTOL) -> float:
    """Absolute threshold ``rtol * sigma_1(P* R)`` on the singular values of ``P R``
    (theory.md 7)."""
    return rtol * float(singular_values(prob.P_star @ prob.R)[0])


def numerical_rank(P: np.ndarray, R: np.ndarray, threshold: float) -> np.ndarray:
    """The numerical rank of theory.md 7: the number of singular values of ``P R`` above
    ``threshold`` (absolute; :func:`rank_threshold`), shape ``(...)``.

    ``R`` is the Cholesky factor of ``C = X X^T`` (``Problem.R``): singular values are
    measured in the metric the loss sees, ``||(P - P*) R||_F``, so a direction the data
    weigh heavily counts even when its raw singular value in ``P`` is tiny.
    """
    return np.sum(singular_values(np.asarray(P) @ R) > threshold, axis=-1)


def first_passage(times: np.ndarray, values: np.ndarray, level: float) -> float:
    """First of ``times`` at which ``values`` is below ``level`` (NaN if never): on a logged
    trajectory, the escape time of theory.md 8 to the resolution of the log grid."""
    below = np.flatnonzero(np.asarray(values) < level)
    return float(np.asarray(times)[below[0]]) if below.size else math.nan
