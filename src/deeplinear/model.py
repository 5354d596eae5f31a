"""Products, loss and gradients of deep linear networks (theory.md, sections 1-3).

All functions accept single runs (``W[j]`` of shape ``(d_{j+1}, d_j)``) and stacks
(``W[j]`` of shape ``(B, d_{j+1}, d_j)``): the batch axis simply leads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from deeplinear.errors import InputError

Weights = Sequence[np.ndarray]

#: Largest condition number of ``C = X X^T`` we accept (beyond it ``P*`` is noise).
MAX_CONDITION = 1e12


def _t(A: np.ndarray) -> np.ndarray:
    """Transpose of the last two axes (no complex conjugation: the HVP relies on it)."""
    return np.swapaxes(A, -1, -2)


def check_weights(W: Weights, d_x: int | None = None, d_y: int | None = None) -> list[int]:
    """Validate a list of layer matrices and return the widths ``[d_0, ..., d_N]``."""
    if len(W) < 1:
        raise InputError("depth N must be >= 1: got an empty list of layer matrices")
    widths = [W[0].shape[-1]]
    for j, Wj in enumerate(W, start=1):
        if Wj.ndim not in (2, 3):
            raise InputError(f"layer W_{j} must have 2 or 3 dimensions, got shape {Wj.shape}")
        if Wj.shape[-1] != widths[-1]:
            raise InputError(
                f"layer W_{j} has shape {Wj.shape[-2:]} but the previous layer outputs "
                f"{widths[-1]} features (need W_{j} of shape (d_{j}, {widths[-1]}))"
            )
        widths.append(Wj.shape[-2])
    if d_x is not None and widths[0] != d_x:
        raise InputError(f"W_1 has {widths[0]} columns but X has d_x = {d_x} rows")
    if d_y is not None and widths[-1] != d_y:
        raise InputError(f"W_N has {widths[-1]} rows but Y has d_y = {d_y} rows")
    return widths


def product(W: Weights) -> np.ndarray:
    """End-to-end matrix ``P = W_N ... W_1``, shape ``(..., d_y, d_x)``."""
    P = W[0]
    for Wj in W[1:]:
        P = Wj @ P
    return P


def loss(W: Weights, X: np.ndarray, Y: np.ndarray) -> float:
    """Direct loss ``L(W) = 1/2 ||P X - Y||_F^2`` of one run (no 1/m factor)."""
    check_weights(W, X.shape[0], Y.shape[0])
    R = product(W) @ X - Y
    return 0.5 * float(np.sum(R * R))


def gradients_from_residual(W: Weights, E: np.ndarray) -> list[np.ndarray]:
    """Per-layer gradients ``G_j = W_{N:j+1}^T E W_{j-1:1}^T`` (theory.md, section 2).

    ``E = P C - M`` is the residual correlation, shape ``(..., d_y, d_x)``. One forward
    pass of prefix products and one backward pass; works for real and complex dtype.
    """
    prefix = [W[0]]  # prefix[j] = W_{j+1:1}
    for Wj in W[1:-1]:
        prefix.append(Wj @ prefix[-1])
    G = [None] * len(W)
    T = E  # T = W_{N:j+1}^T E, shape (..., d_j, d_x)
    for j in range(len(W) - 1, 0, -1):
        G[j] = T @ _t(prefix[j - 1])
        T = _t(W[j]) @ T
    G[0] = T
    return G


def gradients(W: Weights, X: np.ndarray, Y: np.ndarray) -> list[np.ndarray]:
    """Gradients ``[dL/dW_1, ..., dL/dW_N]`` of one run, each shaped like its layer."""
    check_weights(W, X.shape[0], Y.shape[0])
    E = (product(W) @ X - Y) @ X.T
    return gradients_from_residual(W, E)


@dataclass(frozen=True)
class Problem:
    """The one-off precomputation of a least-squares problem (theory.md, sections 1 and 3).

    Attributes: ``C = X X^T`` and ``M = Y X^T``; ``R`` the lower Cholesky factor with
    ``C = R R^T``; ``P_star = M C^{-1}`` the least-squares optimum and ``L_star`` its loss;
    ``L_zero = 1/2 ||Y||_F^2`` the loss of the zero product; extreme eigenvalues of ``C``.
    """

    C: np.ndarray
    M: np.ndarray
    R: np.ndarray
    P_star: np.ndarray
    L_star: float
    L_zero: float
    lam_max: float
    lam_min: float

    @property
    def d_x(self) -> int:
        return self.C.shape[0]

    @property
    def d_y(self) -> int:
        return self.M.shape[0]

    @property
    def kappa(self) -> float:
        return self.lam_max / self.lam_min


def validate_data(X: np.ndarray, Y: np.ndarray, name: str = "data") -> None:
    """Raise :class:`InputError` unless ``X``, ``Y`` are finite 2-d arrays with equal ``m``."""
    for label, A in (("X", X), ("Y", Y)):
        if not isinstance(A, np.ndarray) or A.ndim != 2:
            raise InputError(f"{name}: {label} must be a 2-d array, got {getattr(A, 'shape', A)}")
        if not np.all(np.isfinite(A)):
            raise InputError(f"{name}: {label} contains non-finite values (NaN or inf)")
    if X.shape[1] != Y.shape[1]:
        raise InputError(f"{name}: X has {X.shape[1]} samples (columns) but Y has {Y.shape[1]}")


def precompute(X: np.ndarray, Y: np.ndarray, name: str = "data") -> Problem:
    """Validate ``X, Y`` and build the :class:`Problem` (``O(m d^2)``, done once).

    Raises :class:`InputError` if ``C = X X^T`` is not of full rank, naming its
    condition number.
    """
    validate_data(X, Y, name)
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    C = X @ X.T
    M = Y @ X.T
    lam = np.linalg.eigvalsh(C)
    lam_min, lam_max = float(lam[0]), float(lam[-1])
    cond = lam_max / lam_min if lam_min > 0 else np.inf
    if not cond <= MAX_CONDITION:
        raise InputError(
            f"{name}: X X^T is not of full rank (condition number {cond:.3g} > "
            f"{MAX_CONDITION:.0e}; d_x = {X.shape[0]}, m = {X.shape[1]}): remove constant "
            "or collinear features or add samples"
        )
    R = np.linalg.cholesky(C)
    # P* = M C^{-1} = (M R^{-T}) R^{-1}, by two triangular solves.
    Q = solve_triangular(R, M.T, lower=True).T
    P_star = solve_triangular(R, Q.T, lower=True, trans="T").T
    resid = P_star @ X - Y
    return Problem(
        C=C,
        M=M,
        R=R,
        P_star=P_star,
        L_star=0.5 * float(np.sum(resid * resid)),
        L_zero=0.5 * float(np.sum(Y * Y)),
        lam_max=lam_max,
        lam_min=lam_min,
    )


def excess_loss(P: np.ndarray, prob: Problem) -> np.ndarray:
    """Cancellation-free excess loss ``eps = 1/2 ||(P - P*) R||_F^2`` (theory.md, section 3).

    ``P`` of shape ``(..., d_y, d_x)``; returns an array of shape ``(...)``.
    """
    Z = (P - prob.P_star) @ prob.R
    return 0.5 * np.sum(Z * Z, axis=(-2, -1))


def residual_correlation(P: np.ndarray, prob: Problem) -> np.ndarray:
    """``E = P C - M = (P - P*) C``, computed without cancellation; shape of ``P``."""
    return ((P - prob.P_star) @ prob.R) @ prob.R.T
