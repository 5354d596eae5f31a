"""The guarantees of theory.md 6 checked at every iteration of the engine (theory.md 12).

:class:`Tracker` holds, for the active runs of one call to :func:`deeplinear.gd.run`, the
sufficient-decrease test of every step and running upper bounds of the layer norms
``||W_j||_2`` and the balance drifts ``||D_j - D_j(0)||_2``, anchored at exact values and
recomputed exactly only when the bound could matter, with the three failure counters and
the running maxima. The engine calls :meth:`Tracker.start` at ``k = 0``,
:meth:`Tracker.check_decrease` and :meth:`Tracker.check` at every iterate,
:meth:`Tracker.advance` after every step and :meth:`Tracker.keep` when runs leave the batch;
:meth:`Tracker.peaks` gives the maxima of the runs that finish.
"""

from __future__ import annotations

import numpy as np

from deeplinear import metrics

_UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2

#: Precision of the running maximum of the balance drift: a running upper bound is
#: replaced by an exact value once it exceeds the run's largest exact drift by this
#: fraction of the larger of that drift and the run's drift bound (theory.md 12).
TRACK_RTOL = 0.25

#: The same for the layer norms (their maximum is compared with ``K``, often within 15%).
NORM_RTOL = 0.1

#: When one tracked quantity needs an exact value, every quantity of the same run whose
#: running bound has used this fraction of the room to its own trigger is refreshed with it.
COALESCE = 0.5


def decrease_tolerance(
    eps, g2, lam_max: float, layer_norms2: np.ndarray, depth: int, dim: int
) -> np.ndarray:
    """Rounding allowance for the sufficient-decrease test ``eps(k+1) <= eps(k) - eta/2 g2``
    (theory.md 6, "Rounding allowances").

    ``layer_norms2`` holds ``||W_j||_2^2`` (spectral norms, last axis over layers; an upper
    bound such as ``||W_j||_F^2`` gives a valid but looser allowance). The computed product
    has an error of about ``dP = c (N + d) u prod_j ||W_j||_2``, which moves ``eps`` by
    ``sqrt(2 eps lam_max) dP + lam_max dP^2``; rounding the update itself moves the loss by
    about ``u ||grad|| ||W||``. A few ulps times these scales.
    """
    gamma = 8.0 * (depth + dim) * _UNIT_ROUNDOFF
    norms2 = np.asarray(layer_norms2)
    dP = gamma * np.sqrt(np.prod(norms2, axis=-1))
    w = np.sqrt(np.sum(norms2, axis=-1))
    return (
        gamma * eps + np.sqrt(2.0 * eps * lam_max) * dP + lam_max * dP**2 + gamma * np.sqrt(g2) * w
    )


def _rounding_scale(dim: int, k) -> np.ndarray:
    """``16 u (d + sqrt(k + 1))``: rounding of one product of width ``d`` plus the random-walk
    accumulation of the rounding of ``k`` updates (theory.md 12)."""
    return 16.0 * _UNIT_ROUNDOFF * (dim + np.sqrt(np.asarray(k, dtype=np.float64) + 1.0))


def drift_allowance(norms: np.ndarray, norms0: np.ndarray, dim: int, k) -> np.ndarray:
    """Rounding allowance of ``||D_j(k) - D_j(0)||_2`` per layer pair, shape ``(..., N-1)``.

    ``norms``, ``norms0``: ``||W_j||_2`` at iterate ``k`` and at ``0`` (``(..., N)``).
    Allowance ``16 u (d + sqrt(k+1)) (s_j + s_{j+1} + s_j(0) + s_{j+1}(0))`` with
    ``s_j = ||W_j||_2^2``: the rounding of the two Gram products of each ``D_j`` and the
    accumulated rounding of the updates (theory.md 12). It does not depend on the step, so
    a run with a tiny certified step is not failed by rounding of ``D_j`` itself.
    """
    s = np.asarray(norms) ** 2 + np.asarray(norms0) ** 2
    return _rounding_scale(dim, k)[..., None] * (s[..., 1:] + s[..., :-1])


def norm_allowance(bound, dim: int, k) -> np.ndarray:
    """Rounding allowance of ``max_j ||W_j(k)||_2 <= bound``: ``16 u (d + sqrt(k+1)) bound``."""
    return _rounding_scale(dim, k) * np.asarray(bound)


def _any(mask: np.ndarray) -> bool:
    """``mask.any()`` for the per-iteration tests: ``count_nonzero`` skips the ufunc
    reduction machinery and costs a quarter as much on the few-element masks of a batch."""
    return np.count_nonzero(mask) > 0


class Tracker:
    """Guarantee checks of ``b`` active runs of depth ``N``, one row per run (theory.md 12).

    ``drift_bound``, ``norm_bound``: ``(B,)``, ``inf`` where a run has none; ``dim`` the
    largest width (it scales the rounding allowances). Columns ``0..N-1`` of ``anchor``,
    ``inc``, ``trigger``, ``limit`` and ``peak`` (``(b, 2N - 1)``) are the layer norms
    ``||W_j||_2``, columns ``N..2N-2`` the drifts ``||D_j - D_j(0)||_2``: ``anchor`` holds
    the last exact value, ``inc`` the sum of the per-step increments since, ``anchor + inc``
    an upper bound of the current value, ``trigger`` the level at which the bound asks for
    an exact value, ``limit`` the bound plus its rounding allowance, ``peak`` the running
    maximum of the bounds. ``norm_exact``, ``drift_exact``: the largest exact value of each
    kind per run; ``norms0``: ``||W_j(0)||_2`` ``(b, N)``. ``eps_prev``, ``g2_prev``,
    ``half_eta_prev``: the previous iterate's excess loss, squared gradient norm and half
    step, for the decrease test. The counters ``decrease_failures``, ``drift_failures``,
    ``norm_failures`` are ``(b,)`` integers.
    """

    def __init__(self, drift_bound: np.ndarray, norm_bound: np.ndarray, N: int, dim: int):
        self.drift_bound = drift_bound
        self.norm_bound = norm_bound
        self.N, self.dim = N, dim
        #: Whether any run has a finite drift or norm bound (fixed for the whole call).
        self.bounded = bool(np.isfinite(drift_bound).any() or np.isfinite(norm_bound).any())
        #: Whether some trigger may lie above its failure limit (set by ``_anchor``; only
        #: after an exact value above the limit). While none does, an upper bound past its
        #: limit is past its trigger too, and the per-iteration test needs the trigger only.
        self.trigger_above_limit = self.bounded
        self.eps_prev = self.g2_prev = self.half_eta_prev = None

    def start(self, W: list[np.ndarray]) -> None:
        """Exact anchors at ``k = 0`` of the layers ``W`` (stacks ``(b, d_j, d_{j-1})``;
        the drift starts at exactly 0) and counters at 0."""
        b, N = W[0].shape[0], self.N
        self.decrease_failures = np.zeros(b, dtype=np.int64)
        self.drift_failures = np.zeros(b, dtype=np.int64)
        self.norm_failures = np.zeros(b, dtype=np.int64)
        self.norms0 = metrics.weight_norms(W)
        self.anchor = np.concatenate([self.norms0, np.zeros((b, N - 1))], axis=1)
        self.inc = np.zeros_like(self.anchor)
        self.trigger = np.zeros_like(self.anchor)
        self.limit = np.zeros_like(self.anchor)
        self.peak = self.anchor.copy()
        self.drift_exact = np.zeros(b)
        self.norm_exact = np.zeros(b)
        r, c = np.nonzero(np.ones_like(self.anchor, dtype=bool))
        self._anchor(r, c, self.anchor[r, c], 0)

    def check_decrease(self, eps: np.ndarray, lam_max: float) -> None:
        """Guarantee 1 of theory.md 6 for the step ``k-1 -> k`` (``eps`` ``(b,)`` at ``k``);
        the rounding allowance is evaluated only where the slack is positive, at the current
        iterate with the tracked upper bounds of the spectral layer norms (they equal
        W(k-1)'s to O(eta))."""
        slack = eps - self.eps_prev + self.half_eta_prev * self.g2_prev
        pos = slack > 0
        if _any(pos):
            nu = (self.anchor + self.inc)[:, : self.N]
            tol = decrease_tolerance(self.eps_prev, self.g2_prev, lam_max, nu**2, self.N, self.dim)
            self.decrease_failures += pos & (slack > tol)

    def check(self, W: list[np.ndarray], D0: list[np.ndarray], k: int) -> None:
        """Guarantees 2 and 3 of theory.md 6 at iterate ``k`` (layers ``W``, balance
        matrices at ``k = 0`` ``D0``, both over the active runs) and the running maxima:
        exact spectral norms only for the quantities whose running bounds cannot decide
        (upper bound past its trigger, or past the limit while the lower bound
        ``anchor - inc`` is not)."""
        N = self.N
        ub = self.anchor + self.inc
        need = ub > self.trigger
        # Past the limit implies past the trigger unless some trigger lies above its limit.
        past = ub > self.limit if self.trigger_above_limit else None
        if past is not None and _any(past):  # else no bound is broken: lower <= upper bound
            fail = self.anchor - self.inc > self.limit
            need |= past & ~fail
            sure = ~need.any(axis=1)
            self.norm_failures += sure & np.any(fail[:, :N], axis=1)
            self.drift_failures += sure & np.any(fail[:, N:], axis=1)
        if _any(need):
            # Refresh with them every quantity of the same runs close to its own trigger
            # (COALESCE): one batched recomputation now instead of many single-quantity ones
            # soon after. Only runs that need one: a run already decided above is counted
            # there, and a run's counters and recomputations never depend on its batch.
            close = self.inc > COALESCE * (self.trigger - self.anchor)
            need |= close & need.any(axis=1)[:, None]
            rows, cols = np.nonzero(need)
            vals = np.empty(rows.size)
            for c in np.unique(cols):  # norms first: drift allowances use the new norms
                at = cols == c
                vals[at] = _exact(W, D0, rows[at], int(c))
            vals[~np.isfinite(vals)] = np.inf  # a non-finite iterate: the run diverges here
            self._anchor(rows, cols, vals, k)
            over = np.zeros(need.shape, bool)
            over[rows, cols] = vals > self.limit[rows, cols]
            hit = np.unique(rows)
            if self.bounded:  # rows decided exactly: anchored columns exactly, others by bounds
                fail = self.anchor - self.inc > self.limit
                over[hit] |= fail[hit]
            self.norm_failures[hit] += np.any(over[hit, :N], axis=1)
            self.drift_failures[hit] += np.any(over[hit, N:], axis=1)

    def advance(self, s: np.ndarray, eps: np.ndarray, g2: np.ndarray, half_eta) -> None:
        """The step ``W(k+1) = W(k) - eta G(k)`` with ``s = ||eta G_j||_F^2`` ``(b, N)``:
        ``||W_j||_2`` moves by at most ``||eta G_j||_F`` and ``D_j`` by
        ``eta^2 (G_{j+1}^T G_{j+1} - G_j G_j^T)``, of norm at most
        ``max(||eta G_j||_F^2, ||eta G_{j+1}||_F^2)`` (theory.md 4 and 12); ``eps``, ``g2``
        and ``half_eta`` of iterate ``k`` are kept for the decrease test of the step."""
        N = self.N
        self.inc[:, :N] += np.sqrt(s)
        if N > 1:
            self.inc[:, N:] += np.maximum(s[:, 1:], s[:, :-1])
        self.eps_prev, self.g2_prev, self.half_eta_prev = eps, g2, half_eta

    def peaks(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        """``max_weight_norm`` and ``max_balance_drift`` of the rows ``rows`` (boolean):
        the largest running bound of each kind so far, the current one included."""
        N = self.N
        peak = np.maximum(self.peak[rows], self.anchor[rows] + self.inc[rows])
        return peak[:, :N].max(axis=1), peak[:, N:].max(axis=1) if N > 1 else 0.0

    def keep(self, mask: np.ndarray) -> None:
        """Keep the rows ``mask`` (boolean) of every per-run array."""
        for name, v in vars(self).items():
            if isinstance(v, np.ndarray):
                setattr(self, name, v[mask])

    def _anchor(self, r: np.ndarray, c: np.ndarray, v: np.ndarray, k: int) -> None:
        """Record exact values ``v`` of the tracked quantities ``(r[i], c[i])`` (run row,
        column) at iterate ``k``: new anchors, failure limits (bound plus rounding allowance)
        and trigger levels. A running bound asks for a new exact value once it exceeds the
        largest exact value of its kind in the run by :data:`NORM_RTOL` (norms) or
        :data:`TRACK_RTOL` (drift, at least the rounding allowance) times the larger of that
        value and the run's bound, or once it could cross the run's bound."""
        N, dim = self.N, self.dim
        # The bound before this anchor never exceeded its trigger and only grew since the
        # last anchor: min(bound now, trigger) bounds every iterate of that stretch.
        ub = np.minimum(self.anchor[r, c] + self.inc[r, c], self.trigger[r, c])
        self.peak[r, c] = np.maximum(self.peak[r, c], np.maximum(ub, v))
        self.anchor[r, c] = v
        self.inc[r, c] = 0.0
        is_norm = c < N
        bound = np.where(is_norm, self.norm_bound[r], self.drift_bound[r])
        # `base`: the level the run's maximum is known to have reached. Norms: the largest
        # exact layer norm of the run (a layer below it cannot raise the run's maximum, so
        # its bound may grow up to that level before it needs an exact value); drift: the
        # largest exact drift of the run.
        np.maximum.at(self.norm_exact, r[is_norm], v[is_norm])
        base = np.where(is_norm, self.norm_exact[r], 0.0)
        floor = np.zeros_like(v)
        limit = bound + norm_allowance(bound, dim, k)
        if N > 1 and not is_norm.all():
            dr = ~is_norm
            np.maximum.at(self.drift_exact, r[dr], v[dr])
            j, rr = c[dr] - N, r[dr]
            nu = self.anchor + self.inc
            sq = nu[rr, j] ** 2 + nu[rr, j + 1] ** 2 + self.norms0[rr, j] ** 2
            sq += self.norms0[rr, j + 1] ** 2
            allow = _rounding_scale(dim, k) * sq
            limit[dr] = bound[dr] + allow
            base[dr], floor[dr] = self.drift_exact[rr], allow
        # A running bound may exceed `base` by the relative precision times the larger of
        # `base` and the run's bound: with a bound, the counters need no precision far below
        # it (the drift starts at 0 and would otherwise ask for an exact value at every 25%
        # of growth from the rounding level up).
        scale = np.maximum(base, np.where(np.isfinite(bound), bound, 0.0))
        trig = np.maximum(base + np.where(is_norm, NORM_RTOL, TRACK_RTOL) * scale, floor)
        # Below its bound a quantity is re-checked before it can cross it; above, the lower
        # bound anchor - inc certifies the failure until it could fall back below the limit.
        cap = np.where(v <= bound, bound, limit)
        self.trigger[r, c] = np.where(v <= limit, np.minimum(trig, cap), trig)
        self.limit[r, c] = limit
        self.trigger_above_limit = self.bounded and _any(self.trigger > self.limit)


def _exact(W: list[np.ndarray], D0: list[np.ndarray], r: np.ndarray, c: int) -> np.ndarray:
    """Exact value of tracked column ``c`` for the rows ``r``: ``||W_c||_2`` for ``c < N``,
    else ``||D_j - D_j(0)||_2`` with ``j = c - N`` (spectral norms, metrics)."""
    N = len(W)
    if c < N:
        return metrics.spectral_norm(W[c][r])
    j = c - N
    return metrics.balance_drifts([W[j][r], W[j + 1][r]], [D0[j][r]])[:, 0]
