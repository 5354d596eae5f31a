"""Bisection of a step-size limit on ``log(eta)`` (theory.md 9 and 13).

The critical step of the threshold search (:func:`deeplinear.experiments.critical_steps`),
the authors' largest stable step (:func:`deeplinear.authors.stable_steps`) and the tanh
critical step (:func:`deeplinear.tanh.critical_steps`) all narrow a bracket ``[lo, hi]``
per start, with a probe that says whether a step is still good, to relative precision
``rtol``; :func:`bisect_log_step` is that loop, :func:`probe_runs` the constant-step run
of a probe on the linear engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from deeplinear import gd
from deeplinear.data import Dataset
from deeplinear.model import Problem
from deeplinear.plan import Settings

#: ``probe(eta, idx)``: whether each start ``idx[i]`` is good at the step ``eta[idx[i]]``
#: (boolean ``(len(idx),)``; ``eta`` has one entry per start).
Probe = Callable[[np.ndarray, np.ndarray], np.ndarray]


def bisect_log_step(
    probe: Probe,
    lo: np.ndarray,
    hi: np.ndarray,
    rtol: float,
    active: np.ndarray | None = None,
    report: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Narrow the brackets ``[lo, hi]`` ``(B,)`` of the starts ``active`` (boolean, default
    all) at their geometric midpoints until ``hi / lo <= 1 + rtol``: a good midpoint becomes
    the new ``lo``, a bad one the new ``hi``. Each round probes every open start at once;
    ``report(rounds, lo, hi)`` is called after each. Returns new ``(lo, hi)`` (the inputs
    are not changed); a start with ``lo`` good and ``hi`` bad keeps that property."""
    lo, hi = np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)
    active = np.ones(lo.shape, dtype=bool) if active is None else active
    rounds = 0
    while np.any(open_ := active & (hi / lo > 1 + rtol)):
        idx = np.flatnonzero(open_)
        mid = np.sqrt(lo * hi)
        good = probe(mid, idx)
        lo[idx[good]] = mid[idx[good]]
        hi[idx[~good]] = mid[idx[~good]]
        rounds += 1
        if report is not None:
            report(rounds, lo, hi)
    return lo, hi


def probe_runs(
    ds: Dataset,
    prob: Problem,
    starts: Sequence[np.ndarray],
    settings: Settings,
    eta: np.ndarray,
    idx: np.ndarray,
) -> gd.RunResult:
    """Constant-step GD from the starts ``idx`` (rows of the stacks ``starts``) at the steps
    ``eta[idx]``, each with the budget ``settings.budget(eta)``, without the guarantee
    checks (a probe reads statuses, losses and weights only; theory.md 12)."""
    return gd.run(
        ds.X, ds.Y, [Wj[idx] for Wj in starts], eta[idx],
        [settings.budget(e) for e in eta[idx]], gtol=settings.gtol, log_points=2,
        problem=prob, check_guarantees=False,
    )  # fmt: skip
