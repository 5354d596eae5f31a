"""Datasets: synthetic, random and the real ``digits`` data (pipeline.md, "The library").

Every generator returns a :class:`Dataset` that has passed :func:`validate`: finite values,
matching sample counts and ``X X^T`` of full rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deeplinear.errors import InputError
from deeplinear.model import precompute


@dataclass(frozen=True)
class Dataset:
    """``X`` of shape ``(d_x, m)``, ``Y`` of shape ``(d_y, m)`` and descriptive metadata."""

    X: np.ndarray
    Y: np.ndarray
    meta: dict = field(default_factory=dict)


def validate(ds: Dataset, name: str = "dataset") -> Dataset:
    """Raise :class:`InputError` naming the problem (non-finite values, shapes, rank of X X^T)."""
    precompute(ds.X, ds.Y, name=name)
    return ds


def _check_dims(**dims: int) -> None:
    for key, value in dims.items():
        if int(value) < 1:
            raise InputError(f"dataset parameter {key} must be >= 1, got {value}")


def _whiten(X: np.ndarray) -> np.ndarray:
    """Rescale ``X`` so that ``X X^T = m I`` exactly up to rounding."""
    d_x, m = X.shape
    if m < d_x:
        raise InputError(f"whiten needs m >= d_x (X X^T of full rank), got m = {m} < d_x = {d_x}")
    L = np.linalg.cholesky(X @ X.T / m)
    return np.linalg.solve(L, X)


def _condition(X: np.ndarray, cond: float) -> np.ndarray:
    """Whitened ``X`` with rows rescaled so that ``X X^T = m diag(c)``, ``c`` geometric from
    1 down to ``1 / cond``: the condition number of ``C = X X^T`` is exactly ``cond``."""
    if not (np.isfinite(cond) and cond >= 1):
        raise InputError(f"cond must be >= 1, got {cond}")
    c = np.geomspace(1.0, 1.0 / cond, X.shape[0])
    return np.sqrt(c)[:, None] * _whiten(X)


def synthetic(
    d_x: int,
    d_y: int,
    m: int,
    rank: int,
    noise: float,
    seed: int,
    whiten: bool = False,
    cond: float | None = None,
    x_scale: float = 1.0,
    target_scale: float = 1.0,
    target_ratio: float = 0.3,
    target_levels: list | None = None,
) -> Dataset:
    """Gaussian ``X``; ``Y = A X + noise * N(0, 1)`` with ``A`` of rank ``rank``.

    ``A = U diag(s) V^T`` with Haar ``U, V`` and ``s`` spaced geometrically from
    ``target_scale`` (default 1) down to ``target_ratio * target_scale`` (default 0.3), so
    the singular values of the target are distinct (the incremental-learning plateaus).
    ``whiten=True`` makes ``X X^T = m I`` (needed by the ACGH comparison, theory.md 10);
    ``cond`` instead makes ``X X^T`` diagonal with condition number exactly ``cond``.
    ``x_scale`` multiplies ``X`` after whitening or conditioning (``Y`` follows, ``Y = A X``):
    with ``whiten`` and ``x_scale = sqrt(c / m)``, ``X X^T = c I`` (figure 8's readings,
    theory.md 15). ``target_levels = [[n_1, s_1], [n_2, s_2], ...]`` instead gives ``A``
    ``n_i`` singular values equal to ``s_i`` (counts summing to ``rank``): a spectrum with
    gaps, whose groups are learned at separate times from a small start.
    """
    _check_dims(d_x=d_x, d_y=d_y, m=m)
    if not 0 <= rank <= min(d_x, d_y):
        raise InputError(f"synthetic rank must be in 0..min(d_x, d_y) = {min(d_x, d_y)}")
    if noise < 0:
        raise InputError(f"synthetic noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    if whiten and cond is not None:
        raise InputError("synthetic: give whiten or cond, not both (cond = 1 is whitened)")
    X = rng.standard_normal((d_x, m))
    if whiten:
        X = _whiten(X)
    elif cond is not None:
        X = _condition(X, cond)
    if not (np.isfinite(x_scale) and x_scale > 0):
        raise InputError(f"synthetic x_scale must be > 0, got {x_scale}")
    X = x_scale * X
    for key, value in (("target_scale", target_scale), ("target_ratio", target_ratio)):
        if not (np.isfinite(value) and value > 0) or (key == "target_ratio" and value > 1):
            raise InputError(f"synthetic {key} must be > 0 (target_ratio <= 1), got {value}")
    U = np.linalg.qr(rng.standard_normal((d_y, d_y)))[0][:, :rank]
    V = np.linalg.qr(rng.standard_normal((d_x, d_x)))[0][:, :rank]
    if target_levels is not None:
        if (target_scale, target_ratio) != (1.0, 0.3):
            raise InputError(
                "synthetic: give target_levels or target_scale / target_ratio, not both"
            )
        s = _levels(target_levels, rank)
    else:
        s = target_scale * np.geomspace(1.0, target_ratio, rank) if rank > 0 else np.zeros(0)
    A = (U * s) @ V.T
    Y = A @ X + noise * rng.standard_normal((d_y, m))
    meta = dict(kind="synthetic", d_x=d_x, d_y=d_y, m=m, rank=rank, noise=noise, seed=seed)
    meta |= {"whiten": whiten, "cond": cond} | ({"x_scale": x_scale} if x_scale != 1 else {})
    if (target_scale, target_ratio) != (1.0, 0.3):
        meta |= {"target_scale": target_scale, "target_ratio": target_ratio}
    if target_levels is not None:
        meta["target_levels"] = [[int(n), float(v)] for n, v in target_levels]
    return validate(Dataset(X, Y, meta), "synthetic")


def _levels(levels: list, rank: int) -> np.ndarray:
    """``(rank,)`` singular values of the target from ``[[count, value], ...]``: ``count``
    copies of each ``value``, in the order given (counts >= 1 summing to ``rank``, values
    finite and > 0)."""
    try:
        pairs = [(int(n), float(v)) for n, v in levels]
    except (TypeError, ValueError):
        raise InputError(
            f"synthetic target_levels must be a list of [count, value] pairs, got {levels!r}"
        ) from None
    for n, v in pairs:
        if n < 1 or not (np.isfinite(v) and v > 0):
            raise InputError(
                f"synthetic target_levels: count >= 1 and value > 0 needed, got {[n, v]}"
            )
    if sum(n for n, _ in pairs) != rank:
        raise InputError(
            f"synthetic target_levels: counts sum to {sum(n for n, _ in pairs)}, rank is {rank}"
        )
    return np.concatenate([np.full(n, v) for n, v in pairs]) if pairs else np.zeros(0)


def random(d_x: int, d_y: int, m: int, seed: int, whiten: bool = False) -> Dataset:
    """Gaussian ``X`` and Gaussian ``Y`` independent of ``X`` (pure memorization)."""
    _check_dims(d_x=d_x, d_y=d_y, m=m)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d_x, m))
    if whiten:
        X = _whiten(X)
    Y = rng.standard_normal((d_y, m))
    meta = dict(kind="random", d_x=d_x, d_y=d_y, m=m, seed=seed, whiten=whiten)
    return validate(Dataset(X, Y, meta), "random")


def digits(m: int | None = None, seed: int = 0, components: int | None = None) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits: pixels / 16, one-hot ``Y``.

    Constant pixels are removed, and in small samples also pixels that are linear
    combinations of others (QR with column pivoting), so ``X X^T`` has full rank. ``m``
    samples are drawn without replacement (all 1797 when ``None``).

    With ``components = k``, ``X`` holds the scores of the centred pixels on their ``k``
    leading principal components plus a constant row of ones (the bias input), so
    ``d_x = k + 1`` and the one-hot target keeps full rank 10. The raw pixels have
    ``cond(X X^T)`` near 1e7, which makes GD at the certified step need more than 1e7
    iterations; 16 components bring it near 15.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    Xall, labels = bunch.data / 16.0, bunch.target
    n = Xall.shape[0]
    idx = np.arange(n)
    if m is not None:
        _check_dims(m=m)
        if m > n:
            raise InputError(f"digits has {n} samples, cannot draw m = {m}")
        idx = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    Xs, labels = Xall[idx], labels[idx]
    keep = _independent_columns(Xs)
    X = np.ascontiguousarray(Xs[:, keep].T)
    Y = np.zeros((10, idx.size))
    Y[labels, np.arange(idx.size)] = 1.0
    if components is not None:
        X = _principal_scores(X, components)
    meta = dict(kind="digits", d_x=int(X.shape[0]), d_y=10, m=int(idx.size), seed=seed)
    if components is not None:
        meta["components"] = int(components)
    return validate(Dataset(X, Y, meta), "digits")


def _principal_scores(X: np.ndarray, k: int) -> np.ndarray:
    """``(k + 1, m)``: scores of the centred ``X`` on its ``k`` leading principal directions
    (signs fixed so each direction's largest entry is positive), then a row of ones."""
    _check_dims(components=k)
    if k > X.shape[0]:
        raise InputError(f"digits has {X.shape[0]} independent pixels, cannot keep {k} components")
    Xc = X - X.mean(axis=1, keepdims=True)
    U = np.linalg.svd(Xc, full_matrices=False)[0][:, :k]
    U = U * np.sign(U[np.abs(U).argmax(axis=0), np.arange(k)])
    return np.ascontiguousarray(np.vstack([U.T @ Xc, np.ones((1, X.shape[1]))]))


def _independent_columns(A: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Sorted indices of a maximal set of non-constant, linearly independent columns."""
    from scipy.linalg import qr

    nonconst = np.flatnonzero(A.std(axis=0) > 0)
    _, R, piv = qr(A[:, nonconst], mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > rtol * diag[0])) if diag.size else 0
    return np.sort(nonconst[piv[:rank]])


GENERATORS = {"synthetic": synthetic, "random": random, "digits": digits}


def make(kind: str, **params) -> Dataset:
    """Dispatch by name (``synthetic``, ``random``, ``digits``) with keyword parameters."""
    if kind not in GENERATORS:
        raise InputError(f"unknown dataset kind {kind!r}; choose one of {sorted(GENERATORS)}")
    try:
        return GENERATORS[kind](**params)
    except TypeError as err:
        raise InputError(f"dataset kind {kind!r}: {err}") from None
