"""Initializations of the layer matrices (pipeline.md, "The library").

Each function takes the widths ``[d_0, ..., d_N]``, a ``scale`` and a ``seed`` (an int,
a ``numpy.random.SeedSequence`` or a ``Generator``) and returns the list ``W`` of one run.
Use :func:`stack` to batch several runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deeplinear.errors import InputError

Seed = int | np.random.SeedSequence | np.random.Generator


def check_widths(widths: Sequence[int]) -> list[int]:
    """Validate ``[d_0, ..., d_N]``: depth ``N >= 1`` and every width ``>= 1``."""
    widths = [int(d) for d in widths]
    if len(widths) < 2:
        raise InputError(f"depth N must be >= 1: widths {widths} give N = {len(widths) - 1}")
    if min(widths) < 1:
        raise InputError(f"every width must be >= 1, got widths {widths}")
    return widths


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_scale(scale: float, name: str = "scale") -> float:
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"init {name} must be finite and > 0, got {scale}")
    return float(scale)


def _orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n x k`` matrix with orthonormal columns (``k <= n``), Haar distributed."""
    Q, R = np.linalg.qr(rng.standard_normal((n, k)))
    return Q * np.sign(np.diag(R))


def gaussian(widths: Sequence[int], scale: float, seed: Seed) -> list[np.ndarray]:
    """I.i.d. entries ``N(0, scale^2 / d_{j-1})`` in layer ``j``."""
    widths, scale, rng = check_widths(widths), _check_scale(scale), _rng(seed)
    return [
        rng.standard_normal((widths[j], widths[j - 1])) * (scale / np.sqrt(widths[j - 1]))
        for j in range(1, len(widths))
    ]


def normalized_gaussian(widths: Sequence[int], scale: float, seed: Seed) -> list[np.ndarray]:
    """:func:`gaussian` layers (``scale`` 1) rescaled by one common factor so that the
    product ``W_N ... W_1`` has spectral norm exactly ``scale^N``: with ``product_norm: p``
    (``scale = p^(1/N)``) a Gaussian start whose product has norm ``p`` at every depth, its
    other singular values spread as a product of Gaussian matrices spreads them (figure 8's
    reading search, theory.md 15)."""
    widths, scale = check_widths(widths), _check_scale(scale)
    W = gaussian(widths, 1.0, seed)
    P = W[0]
    for Wj in W[1:]:
        P = Wj @ P
    factor = scale / np.linalg.norm(P, 2) ** (1.0 / len(W))
    return [factor * Wj for Wj in W]


def orthogonal(widths: Sequence[int], scale: float, seed: Seed) -> list[np.ndarray]:
    """``scale`` times a random (semi-)orthogonal matrix of shape ``(d_j, d_{j-1})``."""
    widths, scale, rng = check_widths(widths), _check_scale(scale), _rng(seed)
    W = []
    for j in range(1, len(widths)):
        n, k = widths[j], widths[j - 1]
        Q = _orthonormal(rng, max(n, k), min(n, k))
        W.append(scale * (Q if n >= k else Q.T))
    return W


def ends(widths: Sequence[int], scale: float, seed: Seed, end_scale: float) -> list[np.ndarray]:
    """:func:`orthogonal` layers, the first and the last (at ``N = 2`` both layers)
    times ``end_scale``, the middle ones times ``scale``.

    Small ends on middle layers of moderate scale: while the ends are small the middle
    layers hardly move, and a target mode grows from the ends exponentially at the rate
    ``2 c sigma scale^(N - 2)`` (whitened data ``X X^T = c I``), so its escape time grows
    geometrically with depth, by ``1 / scale`` per layer (theory.md 15, figure 8's
    reading search)."""
    end_scale = _check_scale(end_scale, "end_scale")
    W = orthogonal(widths, 1.0, seed)
    last = len(W) - 1
    return [(end_scale if j in (0, last) else _check_scale(scale)) * Wj for j, Wj in enumerate(W)]


def balanced(
    widths: Sequence[int], scale: float, seed: Seed, rank: int | None = None, spread: float = 0.1
) -> list[np.ndarray]:
    """Exactly balanced start (``delta = 0``) whose product has rank ``rank``.

    ``W_j = O_j S O_{j-1}^T`` with random orthonormal ``O_j`` (``d_j x r``) and one diagonal
    ``S`` of layer singular values ``scale * exp(spread z)``, ``z ~ N(0, 1)``, shared by all
    layers, so ``W_{j+1}^T W_{j+1} = W_j W_j^T`` (theory.md, sections 4 and 8).
    ``rank`` defaults to the bottleneck ``r_max = min(widths)``. With ``spread = 0`` every
    nonzero singular value of the product is ``scale^N``, the same norm at every depth
    when ``scale = 1``.
    """
    widths, scale, rng = check_widths(widths), _check_scale(scale), _rng(seed)
    r_max = min(widths)
    r = r_max if rank is None else int(rank)
    if not 0 <= r <= r_max:
        raise InputError(f"balanced init rank must be in 0..{r_max} (bottleneck), got {rank}")
    if not (np.isfinite(spread) and spread >= 0):
        raise InputError(f"balanced init spread must be finite and >= 0, got {spread}")
    s = scale * np.exp(spread * rng.standard_normal(r))
    O = [_orthonormal(rng, d, r) for d in widths]
    return [(O[j] * s) @ O[j - 1].T for j in range(1, len(widths))]


def near_balanced(
    widths: Sequence[int],
    scale: float,
    seed: Seed,
    xi: float,
    rank: int | None = None,
    spread: float = 0.1,
) -> list[np.ndarray]:
    """:func:`balanced` plus a Gaussian perturbation ``N(0, xi^2 / d_{j-1})`` in every layer."""
    if not (np.isfinite(xi) and xi >= 0):
        raise InputError(f"near_balanced perturbation xi must be finite and >= 0, got {xi}")
    rng = _rng(seed)
    W = balanced(widths, scale, rng, rank, spread)
    return [Wj + rng.standard_normal(Wj.shape) * (xi / np.sqrt(Wj.shape[1])) for Wj in W]


INITS = {
    "balanced": balanced,
    "near_balanced": near_balanced,
    "gaussian": gaussian,
    "normalized_gaussian": normalized_gaussian,
    "orthogonal": orthogonal,
    "ends": ends,
}


def make(kind: str, widths: Sequence[int], scale: float, seed: Seed, **options) -> list[np.ndarray]:
    """Dispatch by name: ``kind`` is one of :data:`INITS`; ``options`` go to the init."""
    if kind not in INITS:
        raise InputError(f"unknown init {kind!r}; choose one of {sorted(INITS)}")
    return INITS[kind](widths, scale, seed, **options)


def stack(runs: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Stack runs of equal widths into ``[(B, d_1, d_0), ..., (B, d_N, d_{N-1})]``."""
    if not runs:
        raise InputError("cannot stack an empty list of runs")
    shapes = [tuple(Wj.shape for Wj in W) for W in runs]
    if len(set(shapes)) != 1:
        raise InputError(f"runs in one batch must share depth and widths, got {set(shapes)}")
    return [np.stack(layer) for layer in zip(*runs, strict=True)]
