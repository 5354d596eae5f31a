"""Numerical rank, balancedness, weight norms and first passages (theory.md 4, 7 and 8)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

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


def balance_drift(W: Weights, D0: Sequence[np.ndarray]) -> np.ndarray:
    """``max_j ||D_j(W) - D_j(0)||_2`` against the initial balance matrices ``D0``."""
    D = balance_matrices(W)
    batch = W[0].shape[:-2]
    if not D:
        return np.zeros(batch) if batch else np.float64(0.0)
    return np.max([symmetric_norm(Dj - D0j) for Dj, D0j in zip(D, D0, strict=True)], axis=0)


def spectral_norm(A: np.ndarray) -> np.ndarray:
    """Largest singular value of each matrix in ``(..., p, q)``."""
    return np.linalg.svd(A, compute_uv=False)[..., 0]


def weight_norms(W: Weights) -> np.ndarray:
    """Spectral norms ``||W_j||_2``, shape ``(..., N)``."""
    return np.stack([spectral_norm(Wj) for Wj in W], axis=-1)


def numerical_rank(P: np.ndarray, threshold: float) -> np.ndarray:
    """Number of singular values of ``P`` above ``threshold`` (absolute), shape ``(...)``.

    The library's convention (theory.md, section 7) is
    ``threshold = rtol * sigma_1(P*)`` with ``rtol = 1e-6``.
    """
    s = np.linalg.svd(P, compute_uv=False)
    return np.sum(s > threshold, axis=-1)


def first_passage(times: np.ndarray, values: np.ndarray, level: float) -> float:
    """First of ``times`` at which ``values`` is below ``level`` (NaN if never): on a logged
    trajectory, the escape time of theory.md 8 to the resolution of the log grid."""
    below = np.flatnonzero(np.asarray(values) < level)
    return float(np.asarray(times)[below[0]]) if below.size else math.nan
