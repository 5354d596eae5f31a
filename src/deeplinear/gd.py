"""The batched gradient-descent engine (pipeline.md, "The library"; theory.md 2-4, 6, 7, 11, 12).

:func:`run` advances ``B`` runs that share depth and widths at once, on stacked arrays
``(B, d_j, d_{j-1})``: different seeds, inits, step sizes and schedules in one batch.

Cost per iteration and run: one forward pass of prefix products, two products with the
Cholesky factor ``R`` of ``C = X X^T`` (done as one large GEMM for the whole batch), one
backward pass; nothing depends on the number of samples ``m``. All work arrays are
allocated once and written with ``out=``. Every batched product is laid out so that BLAS
sees plain or first-operand-transposed matrices (``A @ B^T`` with a transposed second
operand runs at half speed in OpenBLAS for small matrices, ``benchmarks/README.md``): the
backward pass carries ``V_j = E^T W_{N:j+1}`` instead of its transpose. The gradients of
the middle layers depend on nothing but the carries and the prefixes, so with one hidden
width they are one batched product (small shards are paced by the number of numpy calls,
not by flops). The weights and gradients of all layers live in one flat row per run, so the
update is one vectorized operation. Runs that converge, diverge or exhaust their budget
leave the batch (compaction of one state object, :class:`_Runs`, of the guarantee
tracker and of the weight rows).

The three guarantees of theory.md 6 are checked at every iteration by a
:class:`deeplinear.guarantees.Tracker` (theory.md 12, "Guarantees checked at every
iteration"): sufficient decrease directly, the balance drift and the layer norms by running
upper bounds that are anchored at exact values and recomputed exactly only when the bound
could matter. Callers that read statuses, losses and weights only (the step-size searches)
skip them with ``check_guarantees=False`` (no tracker).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numba
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from deeplinear import metrics, model, theory
from deeplinear.errors import InputError
from deeplinear.guarantees import (  # noqa: F401 (the allowances and precisions, re-exported)
    _UNIT_ROUNDOFF,
    NORM_RTOL,
    TRACK_RTOL,
    Tracker,
    decrease_tolerance,
    drift_allowance,
    norm_allowance,
)
from deeplinear.model import Problem

CONVERGED, DIVERGED, BUDGET = "converged", "diverged", "budget_exhausted"
#: Step rules (theory.md 11).
SCHEDULES = ("constant", "decreasing", "adaptive")
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

#: Precision of the layer-norm bounds ``s_j`` of the adaptive schedule (theory.md 14): a
#: new value of ``||W_j||_2`` (certified to 0.05%, :func:`metrics.norm_bounds`) is taken
#: once the steps since the last one add up to a fraction ``r = min(ADAPTIVE_NORM_RTOL,
#: ADAPTIVE_NORM_BUDGET / (N - 1))`` of it, so ``s_j`` is within a factor ``1.0005 (1 +
#: r) / (1 - r)`` of the exact norm and the ``2(N - 1)`` layer
#: factors of the Hessian bound within about ``exp(4 ADAPTIVE_NORM_BUDGET)`` together.
ADAPTIVE_NORM_RTOL = 0.05
ADAPTIVE_NORM_BUDGET = 0.25

#: The same for the prefix and suffix norms ``||W_{j:1}||_2``, ``||W_{N:j}||_2`` of the
#: adaptive schedule (theory.md 14, Lemma B'): each enters a term of the Hessian bound
#: once (squared), so one relative precision at every depth. A product whose norm was at
#: least ``ADAPTIVE_PART_USEFUL`` times the product of its layers' bounds (so that the
#: layers' bounds do about as well: balanced runs) gets its next value only at the next
#: multiple of ``ADAPTIVE_PART_RECHECK`` iterations; a product whose norm
#: is below ``ADAPTIVE_PART_FLOOR`` times the product of its layers' bounds gets its next
#: one at that fraction of the latter (a zero product would otherwise need one every step).
ADAPTIVE_PART_RTOL = 0.05
ADAPTIVE_PART_USEFUL = 0.8
ADAPTIVE_PART_RECHECK = 100
ADAPTIVE_PART_FLOOR = 1e-3


@dataclass
class RunResult:
    """Outcome of a batch of ``B`` runs; every array has the batch as its first axis.

    ``status`` (one of :data:`STATUSES`) and ``iterations`` (GD steps taken);
    ``weights`` the final layer stacks; ``loss``, ``excess_loss``, ``grad_norm`` at the
    final iterate; ``initial_loss``, ``initial_grad_norm`` at ``k = 0``.

    Guarantees of theory.md 6, checked at every iteration ``k <= iterations`` (theory.md 12):

    - ``decrease_failures``: steps that broke ``L(k+1) <= L(k) - eta_k/2 ||grad L(k)||^2``
      beyond the rounding allowance :func:`decrease_tolerance`;
    - ``drift_failures``: iterates with ``max_j ||D_j(k) - D_j(0)||_2`` above the run's
      ``drift_bound`` beyond :func:`drift_allowance` (0 when no bound was given);
    - ``norm_failures``: iterates with ``max_j ||W_j(k)||_2`` above the run's
      ``norm_bound`` beyond :func:`norm_allowance` (0 when no bound was given);
    - ``max_balance_drift``, ``max_weight_norm``: the maxima of those two quantities over
      all iterates ``0..iterations`` (spectral norms). Each is an upper bound of the exact
      maximum ``M`` that exceeds it by at most :data:`TRACK_RTOL` (drift) or
      :data:`NORM_RTOL` (norms) times ``max(M, bound)`` (``M`` without a bound; for the
      drift at least the rounding allowance); it never exceeds a given bound unless the
      exact value does.

    With ``run(..., check_guarantees=False)`` the three counters are ``-1`` (not checked)
    and the two maxima NaN.

    ``rank_threshold`` is the absolute threshold on the singular values of ``P R``
    (theory.md 7); ``trajectory`` one row per logged iterate with :data:`TRAJECTORY_COLUMNS`.

    Steps (theory.md 11): ``eta_largest``, ``eta_smallest`` over the steps of iterates
    ``0..iterations`` and ``eta_final``, the step at the final iterate (computed, not
    taken; for the adaptive schedule the certified step at the point reached);
    ``flow_time`` the sum of the steps taken. For the adaptive schedule
    ``trajectory_flow_time`` holds the flow time at each row of ``trajectory`` (NaN for the
    other schedules, whose flow time is :func:`flow_time`).
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
    drift_failures: np.ndarray
    norm_failures: np.ndarray
    max_balance_drift: np.ndarray
    max_weight_norm: np.ndarray
    rank_threshold: float
    trajectory: pd.DataFrame
    eta_largest: np.ndarray | None = None
    eta_smallest: np.ndarray | None = None
    eta_final: np.ndarray | None = None
    flow_time: np.ndarray | None = None
    trajectory_flow_time: np.ndarray | None = None


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


def _as_batch_array(value, B: int, name: str, dtype=np.float64) -> np.ndarray:
    """``value`` as a ``(B,)`` array; a scalar applies to every run."""
    try:
        return np.broadcast_to(np.asarray(value, dtype=dtype), (B,)).copy()
    except ValueError:
        raise InputError(
            f"{name} must be a scalar or have one entry per run ({B}), got shape {np.shape(value)}"
        ) from None


def _schedule_kinds(schedule, B: int) -> list[str]:
    kinds = [schedule] * B if isinstance(schedule, str) else list(schedule)
    if len(kinds) != B:
        raise InputError(f"schedule has {len(kinds)} entries for a batch of {B} runs")
    unknown = set(kinds) - set(SCHEDULES)
    if unknown:
        raise InputError(f"unknown step schedule {sorted(unknown)}; use one of {SCHEDULES}")
    return kinds


def _schedule_params(schedule, tau, alpha, B: int) -> tuple[np.ndarray, np.ndarray]:
    kinds = _schedule_kinds(schedule, B)
    tau = _as_batch_array(tau, B, "tau")
    alpha = _as_batch_array(alpha, B, "alpha")
    decreasing = np.array([k == "decreasing" for k in kinds])
    if np.any(decreasing & ~((alpha > 0) & (alpha <= 1))):
        raise InputError("decreasing schedule needs 0 < alpha <= 1")
    if np.any(decreasing & ~(tau > 0)):
        raise InputError("decreasing schedule needs tau > 0")
    return np.where(decreasing, alpha, 0.0), np.where(decreasing, tau, 1.0)


def _bound_array(value, B: int, name: str) -> np.ndarray:
    """An optional per-run bound as ``(B,)`` (``inf`` where absent); must be ``>= 0``."""
    if value is None:
        return np.full(B, np.inf)
    out = _as_batch_array(value, B, name)
    if np.any(np.isnan(out) | (out < 0)):
        raise InputError(f"{name} must be >= 0 (or None), got {value}")
    return out


def _t(A: np.ndarray) -> np.ndarray:
    return np.swapaxes(A, -1, -2)


def _any(mask: np.ndarray) -> bool:
    """``mask.any()`` for the per-iteration tests: ``count_nonzero`` skips the ufunc
    reduction machinery and costs a quarter as much on the few-element masks of a batch."""
    return np.count_nonzero(mask) > 0


class _Batch:
    """Preallocated work arrays for up to ``B`` runs; views are rebuilt after compaction.

    Shapes (``b`` active runs): ``W[j]``, ``G[j]`` views ``(b, d_{j+1}, d_j)`` of the flat
    rows ``Wflat``, ``Gflat``; ``pre[j] = W_{j+1:1}`` for ``j < N - 1``; ``P``, ``D = P - P*``,
    ``Z = D R``, ``E = Z R^T`` of shape ``(b, d_y, d_x)``; ``Et = eta E^T`` and the backward
    carries ``V[j] = eta E^T W_{N:j+2}`` of shape ``(b, d_x, d_{j+1})``. With one hidden
    width ``h`` and ``N >= 5`` (``interior``), ``pre[1..N-2]`` and ``V[2..N-1]`` are the
    layers of two stacks ``(N - 2, B, ., .)``, and ``backward`` writes ``G[2..N-2]`` with one
    product of the stacks; the results are bitwise those of one product per layer.
    """

    def __init__(self, widths: list[int], W0: Sequence[np.ndarray]):
        self.widths = widths
        self.N = N = len(widths) - 1
        B = W0[0].shape[0]
        d_x, d_y = widths[0], widths[-1]
        self.sizes = [widths[j + 1] * widths[j] for j in range(N)]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        # Runs of consecutive layers of equal size ([d_x, h, ..., h, d_y]: at most three),
        # as (first layer, number of layers, size): one reduction per run of layers.
        self.groups = []
        for j, size in enumerate(self.sizes):
            if self.groups and self.groups[-1][2] == size:
                first, n, _ = self.groups[-1]
                self.groups[-1] = (first, n + 1, size)
            else:
                self.groups.append((j, 1, size))
        self.Wflat = np.empty((B, self.offsets[-1]))
        self.Gflat = np.empty_like(self.Wflat)
        for j in range(N):
            self.Wflat[:, self.offsets[j] : self.offsets[j + 1]] = W0[j].reshape(B, -1)
        # Hidden layers of one width h and N >= 5: the prefixes pre[1..N-2] and the carries
        # V[2..N-1] live in two stacks, so that the gradients of the layers 2..N-2, which
        # are independent once the carries are known, are one batched product.
        self.interior = N >= 5 and len(set(widths[1:N])) == 1
        if self.interior:
            h = widths[1]
            # layer-major, so that every prefix and carry is one contiguous (B, ., .) block
            self.preS = np.empty((N - 2, B, h, d_x))
            self.VS = np.empty((N - 2, B, d_x, h))
            self.prefix = [None, *self.preS]
            self.V = [None, None, *self.VS]
        else:
            self.prefix = [None] + [np.empty((B, widths[j + 1], d_x)) for j in range(1, N - 1)]
            self.V = [None, None] + [np.empty((B, d_x, widths[j])) for j in range(2, N)]
        self.Pt = np.empty((B, d_x, d_y))  # P^T: the forward pass writes P transposed
        self.D = np.empty((B, d_x, d_y))  # (P - P*)^T
        self.Z = np.empty((B, d_x, d_y))  # Zt = R^T (P - P*)^T
        self.Et = np.empty((B, d_x, d_y))  # eta E^T = eta R Zt
        self.S = np.empty((B, N))  # ||eta G_j||_F^2
        self.b = B
        self.R = self.RT = self.Pstar = None
        self.rebuild()

    def layer(self, flat: np.ndarray, j: int) -> np.ndarray:
        d_out, d_in = self.widths[j + 1], self.widths[j]
        return flat[: self.b, self.offsets[j] : self.offsets[j + 1]].reshape(self.b, d_out, d_in)

    def rebuild(self) -> None:
        b = self.b
        self.W = [self.layer(self.Wflat, j) for j in range(self.N)]
        self.G = [self.layer(self.Gflat, j) for j in range(self.N)]
        o = self.offsets
        self.Gg = [
            self.Gflat[:b, o[j] : o[j + n]].reshape(b, n, size) for j, n, size in self.groups
        ]
        self.Sg = [self.S[:b, j : j + n] for j, n, _ in self.groups]
        self.pre = [self.W[0]] + [p[:b] for p in self.prefix[1:]]
        # P as a (b, d_y, d_x) view: of P^T for N > 1, of W_1 for N = 1
        self.Ptv = self.Pt[:b] if self.N > 1 else _t(self.W[0])
        self.Pv = self.PvT = _t(self.Ptv)
        self.Dv, self.Zv, self.Etv = self.D[:b], self.Z[:b], self.Et[:b]
        self.Vv = [None if v is None else v[:b] for v in self.V]
        # Transposed and flat views, built once per compaction rather than every iteration.
        n = self.widths[0] * self.widths[-1]
        self.preT = [_t(p) for p in self.pre]
        self.G0T = _t(self.G[0])
        self.VvT = [None if v is None else _t(v) for v in self.Vv]
        if self.interior:  # gradients of the layers 2..N-2: V[j+1]^T pre[j-1]^T
            N, h = self.N, self.widths[1]
            Gint = self.Gflat[:b, o[2] : o[N - 1]].reshape(b, N - 3, h, h)
            self.Gint = np.swapaxes(Gint, 0, 1)  # layer-major like the stacks
            self.VintT = _t(self.VS[1 : N - 2, :b])
            self.preintT = _t(self.preS[: N - 3, :b])
        self.EtvT = _t(self.Etv)
        self.Ptflat = self.Ptv.reshape(b, n) if self.N > 1 else None
        self.Dflat, self.Zflat, self.Etflat = (
            a.reshape(b, n) for a in (self.Dv, self.Zv, self.Etv)
        )

    def compact(self, keep: np.ndarray) -> None:
        """Move the rows ``keep`` (boolean over the active rows) of the weights and of the
        pending steps to the front; the other buffers are recomputed at every iteration."""
        b, nb = self.b, int(keep.sum())
        self.Wflat[:nb] = self.Wflat[:b][keep]
        self.Gflat[:nb] = self.Gflat[:b][keep]
        self.b = nb
        self.rebuild()

    # The step as four operations, so that benchmarks/bench_gd.py --profile can time each.
    def forward(self) -> None:
        """Prefix products ``pre[j] = W_{j+1} pre[j-1]`` and the product ``P``."""
        W, pre, N = self.W, self.pre, self.N
        for j in range(1, N - 1):
            np.matmul(W[j], pre[j - 1], out=pre[j])
        if N > 1:
            np.matmul(W[N - 1], pre[N - 2], out=self.PvT)

    def residual(self, prob: Problem, eta: np.ndarray) -> np.ndarray:
        """The residual in transposed layout, so that no transposed copy is needed:
        ``Zt = R^T (P - P*)^T`` and ``Et = eta R Zt = eta E^T`` (batched products with the
        shared ``R``); returns ``eps = ||Zt||_F^2 / 2`` per run (theory.md 3)."""
        if self.R is not prob.R:
            self.R = prob.R
            self.RT = np.ascontiguousarray(prob.R.T)
            self.PstarT = np.ascontiguousarray(prob.P_star.T).ravel()
        if self.N > 1:
            np.subtract(self.Ptflat, self.PstarT, out=self.Dflat)
        else:
            np.subtract(self.Ptv, self.PstarT.reshape(self.Dv.shape[1:]), out=self.Dv)
        np.matmul(self.RT, self.Dv, out=self.Zv)
        if self.N == 1:
            np.matmul(self.R, self.Zv, out=self.Etv)
            np.multiply(self.Etflat, eta[:, None], out=self.Etflat)
            np.copyto(self.G[0], self.EtvT)
        else:
            np.matmul(self.R, self.Zv, out=self.Etv)
            np.multiply(self.Etflat, eta[:, None], out=self.Etflat)
        return 0.5 * np.vecdot(self.Zflat, self.Zflat)

    def backward(self) -> None:
        """Steps ``eta G_j = V_{j+1}^T pre[j-1]^T`` into ``G`` (``V^T B^T`` and ``V W`` are
        the fast BLAS layouts), with ``V_j = V_{j+1} W_{j+1}``; ``G_1 = V_1^T``."""
        N, W, preT, G = self.N, self.W, self.preT, self.G
        V, VT = self.Etv, self.EtvT
        if self.interior:  # the same products, the middle gradients in one call
            np.matmul(VT, preT[N - 2], out=G[N - 1])
            for j in range(N - 1, 1, -1):
                V = np.matmul(V, W[j], out=self.Vv[j])
            np.matmul(self.VvT[2], preT[0], out=G[1])
            np.matmul(V, W[1], out=self.G0T)
            np.matmul(self.VintT, self.preintT, out=self.Gint)
            return
        for j in range(N - 1, 0, -1):
            np.matmul(VT, preT[j - 1], out=G[j])
            if j == 1:
                np.matmul(V, W[j], out=self.G0T)
            else:
                V, VT = np.matmul(V, W[j], out=self.Vv[j]), self.VvT[j]

    def step_norms(self) -> np.ndarray:
        """``||eta G_j||_F^2`` per active run and layer, shape ``(b, N)``: one reduction
        per run of equal-size layers, into a buffer that the next call overwrites."""
        for g, out in zip(self.Gg, self.Sg, strict=True):
            np.vecdot(g, g, out=out)
        return self.S[: self.b]

    def update(self, factor: np.ndarray | None = None) -> None:
        """``W_j <- W_j - eta G_j`` for every layer at once; with ``factor`` ``(b,)``,
        ``W_j <- W_j - factor (eta G_j)`` in the same single pass (the adaptive runs'
        certified steps; a factor of exactly 1 gives bitwise ``W_j - eta G_j``)."""
        if factor is None:
            np.subtract(self.Wflat[: self.b], self.Gflat[: self.b], out=self.Wflat[: self.b])
        else:
            _scaled_subtract(self.Wflat[: self.b], self.Gflat[: self.b], factor)

    def step_direction(self, prob: Problem, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``eta_b G_j`` into ``G``; returns ``eps`` and ``||eta G_j||_F^2`` ``(b, N)``."""
        self.forward()
        eps = self.residual(prob, eta)
        self.backward()
        return eps, self.step_norms()


@numba.njit(cache=True, nogil=True)
def _scaled_subtract(W: np.ndarray, G: np.ndarray, factor: np.ndarray) -> None:
    """``W[r] -= factor[r] * G[r]`` for every row of the ``(b, n)`` arrays, in one pass
    (rounded as ``W[r] - (factor[r] * G[r])``)."""
    for r in range(W.shape[0]):
        f = factor[r]
        for i in range(W.shape[1]):
            W[r, i] -= f * G[r, i]


@dataclass
class _Runs:
    """State of the active runs, one row per run (row ``i`` is run ``ids[i]``).

    Inputs (``eta0, alpha, tau, budget``), the stopping thresholds fixed at ``k = 0`` and
    the balance matrices ``D0`` of ``W(0)`` (the reference of the logged drift; the guarantee
    trackers of theory.md 12 are a :class:`~deeplinear.guarantees.Tracker` of their own).
    ``log_next`` is the next iteration at which the run is logged (its own
    geometric grid ``log_grid(budget, log_points)``, so a run's trajectory never depends on
    the other runs of its batch), ``log_pos`` its position in that grid.
    Adaptive schedule (theory.md 14; only when some run has it): ``adaptive`` marks its
    runs, ``eta0`` is then the multiple of the certified step and ``eta_cap`` the cap
    ``eta_max``; ``ad_anchor + ad_inc`` bounds ``||W_j||_2`` (a certified value plus the
    steps since, :data:`ADAPTIVE_NORM_RTOL`); ``ad_part_anchor + ad_part_inc`` ``(b, 2(N -
    2))`` bounds the norms of the prefixes ``W_{j:1}`` then of the suffixes ``W_{N:j}``,
    ``j = 2..N-1`` (a certified value plus the multilinear increments since,
    :data:`ADAPTIVE_PART_RTOL`); ``ad_vec`` and ``ad_part_vec`` (one array per layer and
    per product) keep the warm starts of :func:`metrics.norm_bounds`; ``step_hi``,
    ``step_lo``, ``step_now`` and ``flow`` the largest, smallest and current step and the
    flow time so far; ``step_factor`` multiplies ``G`` in the update.
    :meth:`keep` compacts every field at once.
    """

    ids: np.ndarray
    eta0: np.ndarray
    alpha: np.ndarray
    tau: np.ndarray
    budget: np.ndarray
    div_limit: np.ndarray | None = None
    conv_eps: np.ndarray | None = None
    conv_g2: np.ndarray | None = None
    D0: list[np.ndarray] | None = None
    log_next: np.ndarray | None = None
    log_pos: np.ndarray | None = None
    adaptive: np.ndarray | None = None
    eta_cap: np.ndarray | None = None
    max_time: np.ndarray | None = None
    ad_anchor: np.ndarray | None = None
    ad_inc: np.ndarray | None = None
    ad_vec: list[np.ndarray] | None = None
    ad_part_vec: list[np.ndarray] | None = None
    ad_part_anchor: np.ndarray | None = None
    ad_part_inc: np.ndarray | None = None
    ad_part_rtol: np.ndarray | None = None
    step_hi: np.ndarray | None = None
    step_lo: np.ndarray | None = None
    step_now: np.ndarray | None = None
    step_factor: np.ndarray | None = None
    flow: np.ndarray | None = None

    def __post_init__(self) -> None:
        #: Whether every run of the call is adaptive (no per-row selection needed).
        self.all_adaptive = self.adaptive is not None and bool(self.adaptive.all())

    def keep(self, mask: np.ndarray) -> None:
        """Keep the rows ``mask`` (boolean) of every per-run field."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                setattr(self, f.name, [x[mask] for x in v])
            elif isinstance(v, np.ndarray):
                setattr(self, f.name, v[mask])


@dataclass
class _Settings:
    """Settings shared by all runs of a call to :func:`run`."""

    gtol: float
    ftol: float
    divergence_factor: float
    rank_threshold: float
    log_points: int
    progress: Callable[[int, int], None] | None

    def __post_init__(self) -> None:
        self._grids: dict[int, np.ndarray] = {}

    def grid(self, budget: int) -> np.ndarray:
        """The logging grid of a run with this budget (cached: runs share budgets)."""
        if budget not in self._grids:
            self._grids[budget] = log_grid(budget, self.log_points)
        return self._grids[budget]


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
    rank_rtol: float = metrics.RANK_RTOL,
    log_points: int = 200,
    drift_bound=None,
    norm_bound=None,
    problem: Problem | None = None,
    blas_threads: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
    check_guarantees: bool = True,
    eta_max=None,
    max_time=None,
) -> RunResult:
    """Run gradient descent on a batch of deep linear networks.

    Parameters
    ----------
    X, Y
        Data ``(d_x, m)`` and targets ``(d_y, m)``.
    W0
        Initial weights: a list of ``N`` stacks ``(B, d_j, d_{j-1})``.
    eta
        Step sizes ``(B,)`` (or a scalar): the constant step, or ``eta_0`` of the schedule;
        for the adaptive schedule the multiple of its certified step.
    max_iter
        Iteration budget, an int or ``(B,)`` ints.
    schedule, tau, alpha
        ``"constant"``, ``"decreasing"`` (``eta_k = eta_0 / (1 + k/tau)^alpha``) or
        ``"adaptive"`` (``eta_k = eta * theory.adaptive_step`` at ``W(k)``, theory.md 14), for
        all runs or one entry per run (theory.md 11).
    gtol, ftol
        Convergence: ``||grad L(k)|| <= gtol ||grad L(0)||`` or
        ``eps(k) <= ftol * max(eps0, tiny)``. ``gtol = 0`` disables the convergence stop.
        Convergence wins over the budget at the same iteration.
    divergence_factor
        Divergence: a non-finite value or ``L(k) > divergence_factor * max(L(0), L*_0)``,
        recorded at that iteration and never raised (theory.md 12).
    rank_rtol
        Numerical rank threshold relative to ``sigma_1(P* R)`` (theory.md 7).
    log_points
        Size of the geometric logging grid; the final iterate of every run is logged too.
    drift_bound, norm_bound
        Optional guarantees 2 and 3 of theory.md 6 per run (``(B,)`` or a scalar, e.g.
        ``2 eta_cert eps0`` and ``K``): every iterate above them beyond rounding counts in
        ``drift_failures`` / ``norm_failures`` (theory.md 12).
    problem
        Precomputed :class:`~deeplinear.model.Problem` of ``X, Y`` (computed if ``None``).
    blas_threads
        BLAS threads used inside the loop (1: small matrices run fastest single-threaded,
        parallelism comes from running several jobs); ``None`` leaves BLAS alone.
    progress
        Called as ``progress(k, active_runs)`` at every logged iteration.
    check_guarantees
        ``False`` (only without drift and norm bounds): check none of the guarantees of
        theory.md 6 and keep no running maxima, for callers that read statuses, losses and
        weights only (the step-size searches). The three failure counters are then ``-1``
        (not checked) and ``max_balance_drift``, ``max_weight_norm`` NaN; statuses,
        iterates and logged values are those of a checked run.
    eta_max
        The cap of the adaptive schedule per run (``(B,)`` or a scalar, finite and > 0;
        e.g. :func:`deeplinear.theory.adaptive_cap`); needed when a run is adaptive.
    max_time
        Optional gradient-flow time budget of the adaptive runs (``(B,)`` or a scalar): an
        adaptive run also stops (``budget_exhausted``) at the first iterate with
        ``eta_0 + ... + eta_{k-1} >= max_time``.
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
    is_adaptive = np.array([kind == "adaptive" for kind in _schedule_kinds(schedule, B)])
    cap = None
    if is_adaptive.any():
        if eta_max is None:
            raise InputError("the adaptive schedule needs eta_max (theory.md 14)")
        cap = _as_batch_array(eta_max, B, "eta_max")
        if not np.all(np.isfinite(cap[is_adaptive]) & (cap[is_adaptive] > 0)):
            raise InputError(f"eta_max must be finite and > 0 for adaptive runs, got {eta_max}")
    if not check_guarantees and (drift_bound is not None or norm_bound is not None):
        raise InputError("drift_bound and norm_bound need check_guarantees=True")
    tracker = (
        Tracker(
            _bound_array(drift_bound, B, "drift_bound"),
            _bound_array(norm_bound, B, "norm_bound"),
            N=len(widths) - 1,
            dim=max(widths),
        )
        if check_guarantees
        else None
    )
    runs = _Runs(
        ids=np.arange(B),
        eta0=eta0,
        alpha=alpha_b,
        tau=tau_b,
        budget=budget,
        adaptive=is_adaptive if cap is not None else None,
        eta_cap=cap,
        max_time=_as_batch_array(np.inf if max_time is None else max_time, B, "max_time")
        if cap is not None
        else None,
    )
    settings = _Settings(
        gtol=gtol,
        ftol=ftol,
        divergence_factor=divergence_factor,
        rank_threshold=metrics.rank_threshold(prob, rank_rtol),
        log_points=log_points,
        progress=progress,
    )
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        with np.errstate(all="ignore"):
            return _loop(prob, _Batch(widths, W0), runs, tracker, settings)


def _empty_result(
    Wout: np.ndarray, widths: list[int], offsets, rank_threshold, checked: bool
) -> RunResult:
    """The result of a batch before any run finishes, filled in by :func:`_finish`:
    ``weights`` are views of ``Wout`` (one flat row of all layers per run, ``(B, n)``), and
    ``status`` is an object array until the loop ends; the failure counters are ``-1``
    (not checked) unless ``checked``."""
    B, N = Wout.shape[0], len(widths) - 1
    nan = lambda: np.full(B, np.nan)  # noqa: E731
    zero = lambda: np.zeros(B, dtype=np.int64)  # noqa: E731
    counter = lambda: np.full(B, 0 if checked else -1, dtype=np.int64)  # noqa: E731
    o, w = offsets, widths
    return RunResult(
        status=np.full(B, BUDGET, dtype=object),
        iterations=zero(),
        weights=[Wout[:, o[j] : o[j + 1]].reshape(B, w[j + 1], w[j]) for j in range(N)],
        loss=nan(),
        excess_loss=nan(),
        grad_norm=nan(),
        initial_loss=nan(),
        initial_grad_norm=nan(),
        decrease_failures=counter(),
        drift_failures=counter(),
        norm_failures=counter(),
        max_balance_drift=nan(),
        max_weight_norm=nan(),
        rank_threshold=rank_threshold,
        trajectory=pd.DataFrame(columns=TRAJECTORY_COLUMNS),
        eta_largest=nan(),
        eta_smallest=nan(),
        eta_final=nan(),
        flow_time=nan(),
    )


def _loop(
    prob: Problem, batch: _Batch, runs: _Runs, tracker: Tracker | None, settings: _Settings
) -> RunResult:
    B, widths = batch.b, batch.widths
    Wout = np.empty_like(batch.Wflat)
    checked = tracker is not None
    out = _empty_result(Wout, widths, batch.offsets, settings.rank_threshold, checked)
    decreasing = bool(np.any(runs.alpha > 0))
    logs: list[dict[str, np.ndarray]] = []
    runs.log_pos = np.zeros(B, dtype=np.int64)
    runs.log_next = np.zeros(B, dtype=np.int64)  # every grid starts at k = 0

    budget_min = runs.budget.min()
    next_log = 0  # the smallest log_next of the active runs: no test of each run before it
    adaptive = runs.adaptive is not None
    eta_k = runs.eta0
    if adaptive:  # adaptive runs: the direction G itself, scaled once their step is known
        eta_k = np.where(runs.adaptive, 1.0, runs.eta0)
    eta2 = eta_k * eta_k
    half_eta = 0.5 * eta_k
    k = 0
    while batch.b > 0:
        if decreasing:
            eta_k = step_sizes(runs.eta0, runs.alpha, runs.tau, k)
            if adaptive:
                eta_k = np.where(runs.adaptive, 1.0, eta_k)
            eta2, half_eta = eta_k * eta_k, 0.5 * eta_k
        eps, s = batch.step_direction(prob, eta_k)
        g2 = s.sum(axis=1) / eta2
        L = prob.L_star + eps
        if adaptive:
            eta_k = _adaptive_steps(runs, batch, prob, eps, s, eta_k, k)
            eta2, half_eta = eta_k * eta_k, 0.5 * eta_k
        if k == 0:
            _start(runs, batch, prob, settings, out, L, eps, g2)
            if checked:
                tracker.start(batch.W)
        elif checked:
            tracker.check_decrease(eps, prob.lam_max)
        if checked:
            tracker.check(batch.W, runs.D0, k)
        # Divergence: a non-finite value (NaN compares False) or L above the limit.
        bad = ~((L <= runs.div_limit) & (g2 < np.inf))
        done = bad
        if settings.gtol > 0:
            conv = (g2 <= runs.conv_g2) | (eps <= runs.conv_eps)
            done = done | conv
        if k >= budget_min:
            done = done | (runs.budget <= k)
        if adaptive:  # the flow-time budget of adaptive runs: t_k = eta_0 + ... + eta_{k-1}
            done = done | (runs.flow >= runs.max_time)
        any_done = _any(done)
        if k == next_log or any_done:
            due = runs.log_next == k
            logs.append(_log_rows(batch, prob, runs, due | done, k, L, eps, g2, settings))
            if k == next_log:
                next_log = _next_log(runs, due, settings)
                if settings.progress is not None:
                    settings.progress(k, batch.b)
        if any_done:
            converged = conv if settings.gtol > 0 else np.zeros_like(bad)
            status = np.where(bad, DIVERGED, np.where(converged, CONVERGED, BUDGET))
            _finish(out, Wout, runs, tracker, batch, done, status, k, L, eps, g2)
            keep = ~done
            batch.compact(keep)
            runs.keep(keep)
            if checked:
                tracker.keep(keep)
            eps, g2, s = eps[keep], g2[keep], s[keep]
            eta_k, eta2, half_eta = eta_k[keep], eta2[keep], half_eta[keep]
            if batch.b == 0:
                break
            budget_min = runs.budget.min()
            next_log = _first_log(runs)
        batch.update(runs.step_factor if adaptive else None)
        if checked:
            tracker.advance(s, eps, g2, half_eta)
        if adaptive:
            runs.flow += eta_k
            eta_k = np.where(runs.adaptive, 1.0, eta_k)
            eta2, half_eta = eta_k * eta_k, 0.5 * eta_k
        k += 1

    columns = [*TRAJECTORY_COLUMNS, "flow_time"]
    traj = pd.DataFrame({c: np.concatenate([r[c] for r in logs]) for c in columns})
    traj = traj.sort_values(["run", "iteration"], kind="stable", ignore_index=True)
    out.trajectory_flow_time = traj.pop("flow_time").to_numpy()
    out.trajectory = traj
    out.status = out.status.astype(str)
    return out


def _start(runs: _Runs, batch: _Batch, prob, settings: _Settings, out, L, eps, g2) -> None:
    """Thresholds fixed at ``k = 0`` and the balance matrices of ``W(0)`` (the reference of
    the logged drift and of the tracked one)."""
    out.initial_loss[:], out.initial_grad_norm[:] = L, np.sqrt(g2)
    runs.div_limit = settings.divergence_factor * np.maximum(L, prob.L_zero)
    runs.conv_eps = settings.ftol * np.maximum(eps, np.finfo(np.float64).tiny)
    runs.conv_g2 = (settings.gtol * np.sqrt(g2)) ** 2
    runs.D0 = metrics.balance_matrices(batch.W)


def _adaptive_steps(runs: _Runs, batch: _Batch, prob: Problem, eps, s, eta_k, k: int):
    """The steps of iteration ``k`` with the adaptive runs' certified steps (theory.md 14).

    On entry the adaptive rows of ``G`` hold ``G_j`` itself and ``s`` holds ``||G_j||_F^2``;
    their step ``eta0 * adaptive_step(s_j, ||G_j||_F, eps)`` (``eta0`` the multiple) scales
    ``s`` in place to ``||eta G_j||_F^2`` as for the other runs and becomes the row's
    ``step_factor``, by which the update multiplies ``G`` (exactly 1 for the other runs).
    ``s_j`` is the schedule's own bound ``ad_anchor + ad_inc`` of ``||W_j||_2``, given a new
    certified value where the steps since the last one exceed a fraction
    :data:`ADAPTIVE_NORM_RTOL` of it (at most :data:`ADAPTIVE_NORM_BUDGET` ``/ (N - 1)``);
    the prefix and suffix bounds ``ad_part_anchor + ad_part_inc`` likewise
    (:func:`_adaptive_partials`); the scalar work per run is :func:`_certified_steps`, and
    the bounds get the increments of this step. Returns the steps ``(b,)``."""
    ad, b, N = runs.adaptive, batch.b, batch.N
    if k == 0:
        runs.ad_anchor, runs.ad_vec = np.empty((b, N)), []
        for j, Wj in enumerate(batch.W):
            runs.ad_anchor[:, j], vec = metrics.top_singular(Wj)
            runs.ad_vec.append(vec)
        runs.ad_inc = np.zeros_like(runs.ad_anchor)
        d = batch.widths  # the smaller side of W_{j:1} (d_{j+1} x d_1), then of W_{N:j}
        sides = [min(d[j], d[0]) for j in range(2, N)] + [min(d[N], d[j - 1]) for j in range(2, N)]
        runs.ad_part_vec = [np.zeros((b, n)) for n in sides]  # no warm start at k = 0
        runs.ad_part_anchor = np.zeros((b, 2 * max(N - 2, 0)))
        runs.ad_part_inc = np.full_like(runs.ad_part_anchor, np.inf)  # exact values at k = 0
        runs.ad_part_rtol = np.full_like(runs.ad_part_anchor, ADAPTIVE_PART_RTOL)
        runs.flow = np.zeros(b)
        runs.step_hi, runs.step_lo = np.full(b, -np.inf), np.full(b, np.inf)
    rtol = min(ADAPTIVE_NORM_RTOL, ADAPTIVE_NORM_BUDGET / max(N - 1, 1))
    need = runs.ad_inc > rtol * runs.ad_anchor
    need &= ad[:, None]
    if _any(need):
        rows, cols = np.nonzero(need)
        for c in np.unique(cols):
            r = rows[cols == c]
            runs.ad_anchor[r, c] = _norm_bounds(batch.W[c][r], runs.ad_vec[c], r)
            runs.ad_inc[r, c] = 0.0
    bound = runs.ad_anchor + runs.ad_inc
    _adaptive_partials(runs, batch, bound, k)
    eta = np.empty(b)
    _certified_steps(
        ad, runs.eta0, runs.eta_cap, bound, runs.ad_part_anchor + runs.ad_part_inc, s, eps,
        prob.lam_max, eta_k, eta, runs.ad_inc, runs.ad_part_inc,
    )  # fmt: skip
    runs.step_factor = eta if runs.all_adaptive else np.where(ad, eta, 1.0)
    runs.step_now = eta
    runs.step_hi = np.fmax(runs.step_hi, eta)
    runs.step_lo = np.fmin(runs.step_lo, eta)
    return eta


@numba.njit(cache=True, nogil=True)
def _certified_steps(ad, multiple, cap, bound, part, s, eps, lam_max, eta_k, eta, inc, part_inc):
    """The compiled inner loop of :func:`_adaptive_steps`, one run at a time (theory.md 14).

    For an adaptive row (``ad``): the certified step (:func:`theory.log_certified_step`)
    from the layer bounds ``bound`` ``(b, N)``, ``||G_j||_F = sqrt(s)``, the prefix and
    suffix bounds ``part`` ``(b, 2(N - 2))`` (``p_j`` then ``q_j``, ``j = 2..N-1``; ``p_1 =
    s_1`` and ``q_N = s_N`` are the layers' own) and ``eps``, capped at ``cap`` and times
    ``multiple``, into ``eta``; then ``s`` becomes ``||eta G_j||_F^2``, the layers' ``inc``
    gets the steps' Frobenius norms and ``part_inc`` the multilinear increments of
    :func:`_partial_increments`. Other rows: ``eta = eta_k``, nothing else changes.
    Everything here is scalar work per run; as array operations over the batch it cost
    several times the arithmetic (benchmarks/README.md)."""
    b, N = bound.shape
    n = N - 2
    log_lam, tol = math.log(lam_max), math.log1p(theory.ADAPTIVE_RTOL)
    g, pre, suf = np.empty(N), np.full(max(N - 1, 0), np.inf), np.full(max(N - 1, 0), np.inf)
    sr, crude, log_pq, pq, work = theory.step_buffers(N)
    for r in range(b):
        if not ad[r]:
            eta[r] = eta_k[r]
            continue
        if N == 1:
            step = min(1.0 / lam_max, cap[r])
        else:
            for i in range(n):
                pre[i + 1], suf[i] = part[r, i], part[r, n + i]
            for j in range(N):
                g[j] = math.sqrt(s[r, j])
            tiny = theory.ADAPTIVE_TINY
            lin = theory.step_inputs(bound[r], pre, suf, tiny, sr, crude, log_pq, pq)
            e2 = 2.0 * eps[r]
            log_r0 = 0.5 * math.log(e2) if e2 > 0.0 else (-math.inf if e2 == 0.0 else math.nan)
            u = theory.log_certified_step(
                sr, g, log_r0, log_lam, crude, log_pq, pq, lin, math.log(cap[r]), tol, 64, work
            )
            step = min(math.exp(u), cap[r])  # exp(log(cap)) may round up
        eta[r] = multiple[r] * step
        f2 = eta[r] * eta[r]
        for j in range(N):
            s[r, j] *= f2
            g[j] = math.sqrt(s[r, j])
        if n > 0:
            _add_partial_increments(bound[r], g, part_inc[r])
        for j in range(N):
            inc[r, j] += g[j]


@numba.njit(cache=True, nogil=True)
def _add_partial_increments(x, h, out) -> None:
    """``out += prod_l (x_l + h_l) (1 + 4 N u) - prod_l x_l`` over the layers of the prefixes
    then of the suffixes ``j = 2..N-1`` (:func:`_partial_increments`, one run)."""
    N = x.shape[0]
    n = N - 2
    grow = 1.0 + 4.0 * N * _UNIT_ROUNDOFF
    a, c = x[0] + h[0], x[0]
    for j in range(1, N - 1):  # prefix W_{j+1:1}, column j - 1
        a *= x[j] + h[j]
        c *= x[j]
        out[j - 1] += a * grow - c
    a, c = x[N - 1] + h[N - 1], x[N - 1]
    for j in range(N - 2, 0, -1):  # suffix W_{N:j+1}, column n + j - 1
        a *= x[j] + h[j]
        c *= x[j]
        out[n + j - 1] += a * grow - c


def _norm_bounds(A: np.ndarray, vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`metrics.norm_bounds` of the matrices ``A`` ``(r, p, q)`` with the warm starts
    ``vecs[rows]``, which get the updated vectors."""
    v = np.ascontiguousarray(vecs[rows])
    out = metrics.norm_bounds(A, v)
    vecs[rows] = v
    return out


def _segment_products(x: np.ndarray) -> np.ndarray:
    """``prod_{l<=j} x_l`` then ``prod_{l>=j} x_l`` for ``j = 2..N-1``: ``(b, N)`` to
    ``(b, 2(N - 2))``, the column order of ``_Runs.ad_part_anchor``."""
    N = x.shape[1]
    pre = np.cumprod(x, axis=1)[:, 1 : N - 1]
    suf = np.cumprod(x[:, ::-1], axis=1)[:, N - 2 : 0 : -1]
    return np.concatenate([pre, suf], axis=1)


def _partial_increments(bound: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Upper bounds of the changes of ``||W_{j:1}||_2`` and then of ``||W_{N:j}||_2``,
    ``j = 2..N-1``, shape ``(b, 2(N - 2))``, under the step ``W_l -> W_l - eta G_l``
    (theory.md 14, Lemma B' (i)): ``prod_l (s_l + h_l) - prod_l s_l`` over the layers of the
    product, with ``bound`` ``(b, N)`` the layer bounds ``s_l >= ||W_l||_2``, ``h``
    ``(b, N)`` the step norms ``||eta G_l||_F``. Both products are rounded with a
    relative error below ``N u``: ``4 N u prod (s + h)`` more covers their difference."""
    out = np.zeros((bound.shape[0], 2 * max(bound.shape[1] - 2, 0)))
    for r in range(bound.shape[0]):
        _add_partial_increments(bound[r], h[r], out[r])
    return out


def _adaptive_partials(runs: _Runs, batch: _Batch, bound: np.ndarray, k: int) -> None:
    """Keeps the prefix and suffix bounds ``ad_part_anchor + ad_part_inc`` of the adaptive
    runs valid and close at the current iterate (nothing for ``N <= 2``), given the layer
    bounds ``bound`` ``(b, N)``. A bound whose increments since its last value exceed
    :data:`ADAPTIVE_PART_RTOL` times that value (or :data:`ADAPTIVE_PART_FLOOR` times the
    product of its layers' bounds, if larger) gets a new certified value
    (:func:`metrics.norm_bounds`), and at iterations ``k`` divisible by
    :data:`ADAPTIVE_PART_RECHECK` so does every bound whose last value was close to the
    product of its layers' bounds (:data:`ADAPTIVE_PART_USEFUL`); prefixes come from the
    forward pass's ``pre``, suffixes are multiplied out for the runs that need one. Between
    new values every bound stays the last value plus the increments since (a valid bound
    for all of them)."""
    N, n = batch.N, batch.N - 2
    if n <= 0:
        return
    crude = _segment_products(bound)
    anchor, inc, rtol = runs.ad_part_anchor, runs.ad_part_inc, runs.ad_part_rtol
    need = inc > rtol * np.maximum(anchor, ADAPTIVE_PART_FLOOR * crude)
    if k % ADAPTIVE_PART_RECHECK == 0:
        need |= rtol == np.inf
    need &= runs.adaptive[:, None]
    if _any(need):
        for c in np.flatnonzero(need[:, :n].any(axis=0)):  # prefix W_{c+2:1} = pre[c+1]
            r = np.flatnonzero(need[:, c])
            anchor[r, c] = _norm_bounds(batch.pre[c + 1][r], runs.ad_part_vec[c], r)
            inc[r, c] = 0.0
        rows = np.flatnonzero(need[:, n:].any(axis=1))
        if rows.size:
            sub = need[rows, n:]
            A = batch.W[N - 1][rows]
            for m in range(N - 1, 1, -1):  # suffix W_{N:m} (layers m..N), column n + m - 2
                A = A @ batch.W[m - 1][rows]
                r = np.flatnonzero(sub[:, m - 2])
                if r.size:
                    col = n + m - 2
                    anchor[rows[r], col] = _norm_bounds(A[r], runs.ad_part_vec[col], rows[r])
                    inc[rows[r], col] = 0.0
        useful = anchor < ADAPTIVE_PART_USEFUL * crude
        rtol[need] = np.where(useful, ADAPTIVE_PART_RTOL, np.inf)[need]


def _finish(
    out: RunResult,
    Wout: np.ndarray,
    runs: _Runs,
    tracker: Tracker | None,
    batch: _Batch,
    done,
    status,
    k,
    L,
    eps,
    g2,
) -> None:
    fin = runs.ids[done]
    out.status[fin] = status[done]
    out.iterations[fin] = k
    Wout[fin] = batch.Wflat[: batch.b][done]
    out.loss[fin], out.excess_loss[fin], out.grad_norm[fin] = L[done], eps[done], np.sqrt(g2[done])
    if runs.adaptive is not None:
        ad = runs.adaptive[done]
        out.eta_largest[fin[ad]] = runs.step_hi[done][ad]
        out.eta_smallest[fin[ad]] = runs.step_lo[done][ad]
        out.eta_final[fin[ad]] = runs.step_now[done][ad]
        out.flow_time[fin[ad]] = runs.flow[done][ad]
    else:
        ad = np.zeros(fin.size, bool)
    for i, row in zip(fin[~ad], np.flatnonzero(done)[~ad], strict=True):
        eta0, alpha, tau = runs.eta0[row], runs.alpha[row], runs.tau[row]
        out.eta_largest[i] = eta0
        out.eta_smallest[i] = out.eta_final[i] = step_sizes(eta0, alpha, tau, k)
        out.flow_time[i] = flow_time(eta0, alpha, tau, k)
    if tracker is not None:
        out.decrease_failures[fin] = tracker.decrease_failures[done]
        out.drift_failures[fin] = tracker.drift_failures[done]
        out.norm_failures[fin] = tracker.norm_failures[done]
        out.max_weight_norm[fin], out.max_balance_drift[fin] = tracker.peaks(done)


def _gram_singular_values(A: np.ndarray) -> np.ndarray:
    """Singular values of each matrix in ``(n, p, q)``, descending, from ``eigvalsh`` of the
    Gram matrix of the smaller side (about half the cost of an SVD; absolute error about
    ``u sigma_1^2`` in ``sigma_i^2``)."""
    At = _t(A)
    gram = A @ At if A.shape[-2] <= A.shape[-1] else At @ A
    return np.sqrt(np.maximum(np.linalg.eigvalsh(gram), 0.0))[..., ::-1]


def _next_log(runs: _Runs, due: np.ndarray, settings: _Settings) -> int:
    """Advance the logging grids of the runs ``due`` (``-1``: nothing left to log); returns
    the next iteration at which any run is logged (:func:`_first_log`)."""
    for i in np.flatnonzero(due):
        grid = settings.grid(int(runs.budget[i]))
        runs.log_pos[i] += 1
        runs.log_next[i] = grid[runs.log_pos[i]] if runs.log_pos[i] < grid.size else -1
    return _first_log(runs)


def _first_log(runs: _Runs) -> int:
    """The smallest ``log_next`` of the active runs (``-1`` when none is left to log)."""
    left = runs.log_next[runs.log_next >= 0]
    return int(left.min()) if left.size else -1


def _log_rows(batch, prob, runs: _Runs, rows, k, L, eps, g2, settings) -> dict[str, np.ndarray]:
    """Trajectory metrics of the active rows ``rows`` at iteration ``k`` (theory.md 12),
    computed exactly at the logged iterate: ``||P||_2``, the rank of ``P R`` (theory.md 7),
    ``max_j ||W_j||_2`` and ``max_j ||D_j - D_j(0)||_2`` (batched eigenvalues of the small
    Gram and balance matrices; the trackers' upper bounds serve only the per-iteration
    guarantee checks)."""
    idx = np.flatnonzero(rows)
    n = idx.size
    P = batch.Pv[idx]
    finite = np.isfinite(eps[idx]) & np.all(np.isfinite(P.reshape(n, -1)), axis=1)
    pnorm, wnorm, drift = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    rank = np.full(n, -1)
    if finite.any():
        f = idx[finite]
        W = [Wj[f] for Wj in batch.W]
        s_PR = _gram_singular_values(batch.Pv[f] @ prob.R)
        rank[finite] = np.sum(s_PR > settings.rank_threshold, axis=1)
        pnorm[finite] = metrics.spectral_norm(batch.Pv[f])
        wnorm[finite] = metrics.weight_norms(W).max(axis=1)
        drift[finite] = metrics.balance_drift(W, [D[f] for D in runs.D0])
    return {
        "run": runs.ids[idx],
        "iteration": np.full(n, k, dtype=np.int64),
        "loss": L[idx],
        "excess_loss": eps[idx],
        "grad_norm": np.sqrt(g2[idx]),
        "product_norm": pnorm,
        "max_weight_norm": wnorm,
        "balance_drift": drift,
        "rank": rank,
        "flow_time": runs.flow[idx] if runs.flow is not None else np.full(n, np.nan),
    }


# -- plain GD in a chosen precision (figure 8's single-precision runs, theory.md 15) -------


@dataclass(frozen=True)
class PlainResult:
    """Outcome of :func:`plain_run`: ``iteration`` (the logged iterates, ``log_grid``) and
    ``loss`` there, the exact float64 loss ``1/2 ||W_N ... W_1 X - Y||_F^2`` of the
    iterate the run holds in its own precision; ``weights`` the final layers (in that
    precision); ``last_change`` the last step that changed any weight (``-1``: none did),
    so that from iterate ``last_change + 1`` on the run sits at a fixed point of its
    rounded iteration."""

    iteration: np.ndarray
    loss: np.ndarray
    weights: list[np.ndarray]
    last_change: int


def plain_run(
    X: np.ndarray,
    Y: np.ndarray,
    W0: Sequence[np.ndarray],
    eta: float,
    iters: int,
    *,
    dtype: type = np.float32,
    log_points: int = 300,
) -> PlainResult:
    """``iters`` steps of full-batch GD ``W_j <- W_j - eta grad_j L`` on ``L = 1/2 ||W_N
    ... W_1 X - Y||_F^2`` with every operation in ``dtype`` (theory.md 15), as an automatic
    differentiation framework does it: forward ``H_j = W_j H_{j-1}`` (``H_0 = X``),
    residual ``D = H_N - Y``, backward ``grad_j = D_j H_{j-1}^T`` with ``D_{j-1} =
    W_j^T D_j``, each layer updated in place of the old one after its carry is formed.

    One run: ``X`` of shape ``(d_x, m)``, ``Y`` of ``(d_y, m)``, ``W0[j]`` of ``(d_j,
    d_{j-1})``. Constant step only, no stopping rule, no guarantee checked: it reads what
    a single-precision run of the published experiment shows (its rounding floors), which
    the float64 engine :func:`run` cannot. The loss is logged at ``log_grid(iters,
    log_points)`` in float64 from the rounded weights (the rounding of the run, not of the
    loss evaluation). BLAS runs on one thread, so the rounding, and with it every bit of
    the result, does not depend on the machine's thread count."""
    if iters < 0:
        raise InputError(f"plain_run: iters must be >= 0, got {iters}")
    dt = np.dtype(dtype).type
    Xd, Yd, step = X.astype(dt), Y.astype(dt), dt(eta)
    W = [np.array(w, dtype=dt) for w in W0]
    model.check_weights(W, X.shape[0], Y.shape[0])
    grid = log_grid(iters, log_points)
    loss = np.empty(grid.size)
    last_change, row = -1, 0
    with threadpool_limits(limits=1, user_api="blas"):  # one summation order everywhere
        for k in range(iters + 1):
            if k == grid[row]:
                loss[row] = model.loss([w.astype(np.float64) for w in W], X, Y)
                row += 1
            if k == iters:
                break
            H = [Xd]
            for w in W:
                H.append(w @ H[-1])
            D = H[-1] - Yd
            for j in range(len(W) - 1, -1, -1):
                G = D @ H[j].T
                if j:
                    D = W[j].T @ D
                new = W[j] - step * G
                if last_change < k and not np.array_equal(new, W[j]):
                    last_change = k
                W[j] = new
    return PlainResult(grid, loss, W, last_change)
