"""Running the plan: one shard of runs through the engine, and the critical step search.

These functions turn runs of the plan (:mod:`deeplinear.plan`) and a dataset into the
tables of pipeline.md ("Output contracts"). They hold no file I/O: the workflow scripts do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from deeplinear import gd, init, metrics, model, stats, tables, theory
from deeplinear.data import Dataset
from deeplinear.errors import InputError, rebuild_command
from deeplinear.model import Problem
from deeplinear.plan import Run, Settings, StepSearch
from deeplinear.search import bisect_log_step, probe_runs

#: Columns of ``runs.csv``, in order (pipeline.md, "Output contracts"): one row per run.
#: The schema (kinds, allowed values, NaN) is :data:`deeplinear.tables.RUNS`.
RUNS_COLUMNS = tables.RUNS.names


def widths_of(run: Run, ds: Dataset) -> list[int]:
    """``[d_x, hidden, ..., hidden, d_y]`` for the run's depth."""
    return [ds.X.shape[0]] + [run.hidden] * (run.depth - 1) + [ds.Y.shape[0]]


def initial_weights(run: Run, widths: Sequence[int], base_seed: int) -> list[np.ndarray]:
    """The run's start, from its own seed (:meth:`deeplinear.plan.Run.init_seed`)."""
    options = {}
    if run.init in ("balanced", "near_balanced"):
        options["rank"] = run.init_rank
        options["spread"] = run.init_spread
    if run.init == "near_balanced":
        options["xi"] = run.init_xi
    if run.init == "ends":
        options["end_scale"] = run.init_xi
    rng = np.random.default_rng(run.init_seed(base_seed))
    return init.make(run.init, widths, run.init_scale, rng, **options)


def starts_and_bounds(runs: Sequence[Run], ds: Dataset, settings: Settings):
    """``(problem, widths, stacked starts, certified StepBound per run)`` of one shard."""
    prob = model.precompute(ds.X, ds.Y)
    widths = widths_of(runs[0], ds)
    W = [initial_weights(run, widths, settings.base_seed) for run in runs]
    bounds = [theory.step_bound(prob, *theory.initial_constants(prob, w), len(w)) for w in W]
    return prob, widths, init.stack(W), bounds


def check_moves(
    runs: Sequence[Run], prob: Problem, starts: Sequence[np.ndarray], eta: np.ndarray
) -> None:
    """Raise :class:`InputError` naming the runs whose first GD step ``W - eta G(W)`` leaves
    every weight of their start unchanged in float64 although no layer is zero (theory.md 12).

    Such a run cannot move at all: its product underflowed to 0 (a deep network with small
    layers: ``||P|| ~ scale^N``) or ``eta G`` is below the rounding of ``W``. The engine
    would report it ``converged`` at iteration 0 (zero gradient) or ``budget_exhausted``
    with the loss unchanged, neither of which is a result. A start with a zero layer
    (balanced of rank 0: the origin, a saddle for ``N >= 2``, theory.md 7) is a critical
    point in exact arithmetic too and is left to the engine. ``starts``: stacks
    ``(B, d_j, d_{j-1})``; ``eta``: ``(B,)`` steps.
    """
    E = model.residual_correlation(model.product(starts), prob)
    G = model.gradients_from_residual(starts, E)
    step = np.asarray(eta, dtype=float)[:, None, None]
    with np.errstate(all="ignore"):
        moves = np.zeros(len(runs), dtype=bool)
        for Wj, Gj in zip(starts, G, strict=True):
            moves |= np.any(Wj - step * Gj != Wj, axis=(1, 2))
            moves |= ~np.any(Wj != 0, axis=(1, 2))  # a zero layer: an exact critical point
    if moves.all():
        return
    stuck = [run for run, ok in zip(runs, moves, strict=True) if not ok]
    grad = float(np.sqrt(sum(np.sum(Gj[~moves] ** 2) for Gj in G)))
    first = stuck[0]
    raise InputError(
        f"{len(stuck)} run(s) of experiment {first.experiment!r} cannot move: the first GD "
        f"step leaves every weight unchanged in float64 (run {first.run_id}: depth "
        f"{first.depth}, hidden width {first.hidden}, init {first.init} with scale "
        f"{first.init_scale:g}, eta = {float(np.asarray(eta)[~moves][0]):.3g}; gradient norm "
        f"{grad:.3g}, product norm {float(np.abs(model.product(starts)[~moves]).max()):.3g}). "
        "The product of the layers vanishes in float64 at this depth: use fewer layers (config key "
        "depths) or a larger init scale (or product_norm)"
    )


def run_shard(
    runs: Sequence[Run],
    ds: Dataset,
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run one shard (runs sharing depth and widths) as one batch.

    Returns ``(summary, trajectories)``: one summary row per run with the ``runs.csv``
    columns, and the logged trajectories keyed by ``run_id``.
    """
    prob, widths, starts, bounds = starts_and_bounds(runs, ds, settings)
    # The adaptive schedule (theory.md 14): its own cap, start step and guarantees 2 and 3.
    adaptive = {
        i: theory.adaptive_bound(prob, [Wj[i] for Wj in starts])
        for i, run in enumerate(runs)
        if run.step_rule == "adaptive"
    }
    eta = np.array(
        [
            run.step_multiple
            * (
                adaptive[i].eta_start
                if i in adaptive
                else (b.eta if run.step_unit == "certified" else 1.0)
            )
            for i, (run, b) in enumerate(zip(runs, bounds, strict=True))
        ]
    )
    multiple = np.array([run.step_multiple for run in runs])
    check_moves(runs, prob, starts, eta)
    result = gd.run(
        ds.X,
        ds.Y,
        starts,
        np.where([i in adaptive for i in range(len(runs))], multiple, eta),
        [settings.max_iter if i in adaptive else settings.budget(e) for i, e in enumerate(eta)],
        schedule=[run.step_rule for run in runs],
        tau=[run.tau for run in runs],
        alpha=[run.alpha for run in runs],
        gtol=settings.gtol,
        log_points=settings.log_points,
        problem=prob,
        drift_bound=[adaptive[i].drift_bound if i in adaptive else b.drift_bound
                     for i, b in enumerate(bounds)],
        norm_bound=[adaptive[i].K if i in adaptive else b.K for i, b in enumerate(bounds)],
        progress=progress,
        eta_max=[adaptive[i].eta_max if i in adaptive else math.nan for i in range(len(runs))],
        max_time=settings.time,
    )  # fmt: skip
    summary = summarize(runs, widths, prob, bounds, eta, result, settings, adaptive)
    traj = result.trajectory.copy()
    ids = np.array([run.run_id for run in runs])
    traj.insert(0, "run_id", ids[traj.pop("run").to_numpy()])
    return summary, traj


def summarize(
    runs: Sequence[Run],
    widths: Sequence[int],
    prob: Problem,
    bounds: Sequence[theory.StepBound],
    eta: np.ndarray,
    result: gd.RunResult,
    settings: Settings,
    adaptive: Mapping[int, theory.AdaptiveBound] | None = None,
) -> pd.DataFrame:
    """The ``runs.csv`` rows of a finished batch (pipeline.md, "Output contracts").

    ``adaptive`` maps the rows of adaptive runs to their constants (theory.md 14): for
    them ``eta`` is the first step, ``eta_bound`` the certified step at ``W(0)`` and the
    bounds are the schedule's; ``flow_time`` is the sum of the steps taken, their budget
    flow time ``T`` within ``max_iter`` iterations (``budget_capped``: ``max_iter`` came
    first).

    A run that ends at ``P = 0`` while the target has rank > 0 sits at the origin, a saddle
    for ``N >= 2``: it is not counted as optimal on the rank-0 manifold (theory.md 7).
    """
    losses = theory.optimal_losses(prob)
    eos_eta = theory.edge_of_stability_step(theory.sharpness(prob, widths))
    represents = min(widths) >= theory.target_rank(prob, min(prob.d_x, prob.d_y))
    # theory.md 13: the edge is proven only where the network can represent P*.
    eos_eta_max = theory.edge_of_stability_max(prob, len(widths) - 1) if represents else math.inf
    r_max = min(widths)
    r_net = min(r_max, losses.size - 1)
    target = theory.target_rank(prob, r_max)
    traj = result.trajectory
    peaks = traj.groupby("run")[["max_weight_norm", "balance_drift"]].max()
    final = traj.groupby("run")["rank"].last()
    traj = traj.assign(flow_time=result.trajectory_flow_time)
    logged = dict(tuple(traj.groupby("run")[["iteration", "loss", "flow_time"]]))
    adaptive = adaptive or {}
    rows = []
    for i, (run, b) in enumerate(zip(runs, bounds, strict=True)):
        level, escape = _escape(run, eta[i], losses, min(target, r_net), logged[i])
        ab = adaptive.get(i)
        if ab is None:
            flow = float(gd.flow_time(eta[i], run.alpha, run.tau, result.iterations[i]))
            eta_bound, drift_bound, K = b.eta, b.drift_bound, b.K
        else:
            flow = float(result.flow_time[i])
            eta_bound, drift_bound, K = ab.eta_start, ab.drift_bound, ab.K
        rank = int(final[i])
        ok = result.status[i] != gd.DIVERGED and rank >= 0
        at_rank = float(losses[min(rank, r_net)]) if ok else math.nan
        stalled_at_origin = rank == 0 and target > 0
        rank_opt = (
            ok
            and not stalled_at_origin
            and theory.rank_optimal(result.loss[i], min(rank, r_net), losses, b.eps0)
        )
        rows.append(
            run.as_dict()
            | {
                "widths": "-".join(map(str, widths)),
                "init_rank": r_max if run.init_rank is None else run.init_rank,
                "eta": eta[i],
                "eta_bound": eta_bound,
                "eos_eta": eos_eta,
                "eos_eta_max": eos_eta_max,
                "iterations": int(result.iterations[i]),
                "budget_capped": settings.capped(eta[i])
                if ab is None
                else bool(result.iterations[i] >= settings.max_iter and flow < settings.time),
                "gtol": settings.gtol,
                "flow_time": flow,
                "status": result.status[i],
                "initial_loss": result.initial_loss[i],
                "eps0": b.eps0,
                "delta0": b.delta0,
                "final_loss": result.loss[i],
                "optimal_loss": float(losses[r_net]),
                "final_rank": rank,
                "target_rank": target,
                "optimal_loss_at_rank": at_rank,
                "rank_optimal": bool(rank_opt),
                "global_optimal": bool(rank_opt and rank == target),
                "max_weight_norm": peaks.loc[i, "max_weight_norm"],
                "max_balance_drift": peaks.loc[i, "balance_drift"],
                "bound_drift": drift_bound,
                "bound_weight_norm": K,
                "decrease_failures": int(result.decrease_failures[i]),
                "drift_failures": int(result.drift_failures[i]),
                "norm_failures": int(result.norm_failures[i]),
                "final_grad_norm": result.grad_norm[i],
                "escape_level": level,
                "escape_time": escape,
                "eta_largest": result.eta_largest[i],
                "eta_smallest": result.eta_smallest[i],
                "eta_final": result.eta_final[i],
            }
        )
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def _escape(run: Run, eta: float, losses: np.ndarray, target: int, logged) -> tuple[float, float]:
    """``(escape level, escape time)`` of a start on or near the rank-``r0`` manifold with
    ``r0 < target`` (theory.md 8); NaN for other starts, time NaN if it never escaped."""
    r0 = run.init_rank
    if run.init not in ("balanced", "near_balanced") or r0 is None or r0 >= target:
        return math.nan, math.nan
    level = theory.escape_level(losses, int(r0))
    if run.step_rule == "adaptive":
        times = logged["flow_time"].to_numpy()
    else:
        times = gd.flow_time(eta, run.alpha, run.tau, logged["iteration"].to_numpy())
    return level, metrics.first_passage(times, logged["loss"].to_numpy(), level)


#: A threshold probe succeeds only at a global minimizer: ``L - L* <= GLOBAL_TOL (L*_0 - L*)``.
GLOBAL_TOL = 1e-6

#: Budget of the constant-``eta_cert`` run of the threshold search, in units of the
#: iterations its adaptive run needed: ``iterations_cert`` is NaN beyond it (theory.md 14).
CERT_ITERATIONS_FACTOR = 10

#: The cap of ``eta_adaptive_free``: the certified step at the start without the schedule's
#: cap (theory.md 14), for claim 2.
UNCAPPED = 1e300


def critical_steps(
    runs: Sequence[Run],
    ds: Dataset,
    search: StepSearch,
    progress: Callable[[str], None] | None = None,
    adaptive: bool = False,
) -> pd.DataFrame:
    """Largest constant step that still converges within gradient-flow time ``T``, per start.

    Steps are measured in units of ``eos_eta = 2 / S`` of the balanced minimizer (theory.md
    9): no constant step above the edge of stability of the flattest minimizer can converge
    (theory.md 13), and for whitened data the balanced minimizer is the flattest. The
    search brackets each start's critical step between ``search.lo * eos_eta``
    and ``search.hi * eos_eta_max`` (:func:`deeplinear.theory.edge_of_stability_max`: for
    data that is not whitened a minimizer may be flatter than the balanced one); a start
    that diverges at the lower end moves it down by a
    factor 8 (never below ``eta_cert``, where the theorem excludes divergence), then bisects
    on ``log(eta)`` until ``hi / lo <= 1 + search.rtol``. A probe succeeds when the run ends
    ``converged`` within its budget ``min(ceil(T / eta), max_iter)`` at a global minimizer
    (``L - L* <= GLOBAL_TOL (L*_0 - L*)``, the data's own loss scale, not the start's; a
    run whose gradient merely became small, near a saddle such as the origin, fails). A
    start that neither converges nor diverges at its lower end (``T`` too short: a plateau,
    or a slow escape from the origin) has no critical step (NaN): a smaller step only buys
    the same time at a higher price. ``critical_at_upper_end`` flags starts that converged
    at ``hi`` itself.

    ``sharpness_reached`` is the largest Hessian eigenvalue at the point GD reached at the
    critical step (theory.md 9), so ``critical_eta * sharpness_reached`` near 2 means the
    step was limited by the edge of stability of the minimizer it found.

    With ``adaptive`` (the study's threshold search; theory.md 14) the table also has, per
    start: ``eta_adaptive_start`` (the certified step at ``W(0)``, exact layer norms),
    ``eta_adaptive_max`` (its cap), ``eta_adaptive_free`` (the certified step at ``W(0)``
    without the cap: what claim 2 judges), ``eta_adaptive_end`` (the certified step, exact
    layer norms, at the point an adaptive run reaches within the search's budget
    ``min(ceil(T / eta_adaptive_start), max_iter)``), ``iterations_adaptive`` (its
    iterations to convergence at a global minimizer, NaN otherwise) and
    ``iterations_cert``: the same for a constant step ``eta_cert`` from the same start
    with budget ``CERT_ITERATIONS_FACTOR`` times ``iterations_adaptive`` (and at most
    ``max_iter``); NaN when it does not converge within it, or when the adaptive run did
    not.

    Three steps: the lower ends (:func:`_bracket`), the bisection
    (:func:`deeplinear.search.bisect_log_step`) and the table (:func:`_critical_table`).
    """
    settings = search.settings
    prob, widths, starts, bounds = starts_and_bounds(runs, ds, settings)
    B = len(runs)
    eta_cert = np.array([b.eta for b in bounds])
    sharp = theory.sharpness(prob, widths)
    eos = theory.edge_of_stability_step(sharp)
    eos_max = theory.edge_of_stability_max(prob, len(widths) - 1)
    reached = [np.full_like(Wj, np.nan) for Wj in starts]
    losses = theory.optimal_losses(prob)
    r_net = min(min(widths), losses.size - 1)

    def probe(eta: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Status of the starts ``idx`` at steps ``eta[idx]``, ``converged`` only at a global
        minimizer (``budget_exhausted`` otherwise); keeps the reached weights."""
        res = probe_runs(ds, prob, starts, settings, eta, idx)
        status = res.status.copy()
        glob = res.loss - losses[r_net] <= GLOBAL_TOL * (losses[0] - losses[-1])
        status[(status == gd.CONVERGED) & ~glob] = gd.BUDGET
        ok = status == gd.CONVERGED
        for Rj, Wj in zip(reached, res.weights, strict=True):
            Rj[idx[ok]] = Wj[ok]
        return status

    def say(msg: str) -> None:
        if progress is not None:
            progress(msg)

    lo = np.maximum(np.full(B, search.lo * eos), eta_cert)
    lo, hi, found = _bracket(probe, lo, np.full(B, search.hi * eos_max), eta_cert, say)

    def report(rounds: int, lo: np.ndarray, hi: np.ndarray) -> None:
        say(f"probe {rounds}: widest bracket of the starts found {np.max((hi / lo)[found]):.3g}")

    converges = lambda eta, idx: probe(eta, idx) == gd.CONVERGED  # noqa: E731
    lo, hi = bisect_log_step(converges, lo, hi, search.rtol, found, report)
    critical = np.where(found, lo, np.nan)
    s_reached = [
        theory.sharpness_at(prob, [Rj[i] for Rj in reached]) if found[i] else np.nan
        for i in range(B)
    ]
    table = _critical_table(runs, ds, prob, widths, starts, bounds)
    table["sharpness"], table["eos_eta"], table["eos_eta_max"] = sharp, eos, eos_max
    upper = found & (critical >= search.hi * eos_max / (1 + search.rtol))
    table = table.assign(
        critical_eta=critical,
        critical_multiple=critical / eta_cert,
        critical_at_upper_end=upper,
        sharpness_reached=s_reached,
        critical_times_sharpness=critical * np.asarray(s_reached),
    )
    if adaptive:
        extra = _adaptive_columns(ds, prob, starts, eta_cert, settings, r_net)
        table = table.assign(**extra)
    return table[_critical_columns(adaptive)]


def _bracket(
    probe: Callable[[np.ndarray, np.ndarray], np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    eta_cert: np.ndarray,
    say: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Settle the lower ends ``lo`` ``(B,)`` of the critical-step brackets: a start whose
    probe (its status at ``lo``) converges is ``found``; one that diverges moves its bracket
    down (``hi`` to ``lo``, ``lo`` down by 8, never below ``eta_cert``, where the theorem
    excludes divergence) and probes again; one that does neither has no critical step.
    Returns new ``(lo, hi, found)``."""
    lo, hi = lo.copy(), hi.copy()
    B = lo.size
    pending = np.arange(B)  # starts whose lower end is not settled yet
    found = np.zeros(B, bool)
    while pending.size:
        status = probe(lo, pending)
        found[pending[status == gd.CONVERGED]] = True
        down = pending[(status == gd.DIVERGED) & (lo[pending] > eta_cert[pending])]
        hi[down] = lo[down]
        lo[down] = np.maximum(lo[down] / 8, eta_cert[down])
        say(f"lower ends: {int(found.sum())} of {B} converged, {down.size} moved down")
        pending = down
    return lo, hi, found


def _critical_columns(adaptive: bool) -> list[str]:
    """Columns of :func:`critical_steps` in order: those of ``thresholds.csv``
    (:data:`deeplinear.tables.THRESHOLDS`) but the ``family`` and ``dataset`` its rule
    inserts, the adaptive schedule's only with ``adaptive``."""
    left_out = {"family", "dataset", *([] if adaptive else ADAPTIVE_COLUMNS)}
    return [c for c in tables.THRESHOLDS.names if c not in left_out]


def _critical_table(runs: Sequence[Run], ds: Dataset, prob: Problem, widths, starts, bounds):
    """The columns of :func:`critical_steps` that describe the starts, whatever the search
    finds: the run's fields, the certified bound and the ACGH bounds (theory.md 10)."""
    B = len(runs)
    acgh = [theory.acgh_step_size(ds.X, ds.Y, [Wj[i] for Wj in starts]) for i in range(B)]
    near = theory.acgh_step_size(ds.X, ds.Y, acgh_reference_start(prob, widths))
    return pd.DataFrame(
        {
            "run_id": [r.run_id for r in runs],
            "widths": "-".join(map(str, widths)),
            "depth": [r.depth for r in runs],
            "init": [r.init for r in runs],
            "init_scale": [r.init_scale for r in runs],
            "init_spread": [r.init_spread for r in runs],
            "init_xi": [r.init_xi for r in runs],
            "seed": [r.seed for r in runs],
            "eta_cert": [b.eta for b in bounds],
            "eps0": [b.eps0 for b in bounds],
            "delta0": [b.delta0 for b in bounds],
            "acgh_eta": [a.eta for a in acgh],
            "acgh_reason": [a.reason for a in acgh],
            "acgh_eta_near_target": near.eta,
            "acgh_near_target_reason": near.reason,
        }
    )


#: The adaptive schedule's columns of the threshold search, in order (:func:`_adaptive_columns`).
ADAPTIVE_COLUMNS = (
    "eta_adaptive_free",
    "eta_adaptive_start",
    "eta_adaptive_max",
    "eta_adaptive_end",
    "iterations_adaptive",
    "iterations_cert",
)


def _adaptive_columns(ds: Dataset, prob: Problem, starts, eta_cert, settings: Settings, r_net):
    """The adaptive schedule's columns of the threshold search (:func:`critical_steps`)."""
    B = starts[0].shape[0]
    losses = theory.optimal_losses(prob)
    ab = [theory.adaptive_bound(prob, [Wj[i] for Wj in starts]) for i in range(B)]
    start = np.array([a.eta_start for a in ab])
    cap = np.array([a.eta_max for a in ab])
    free = [theory.adaptive_step_at(prob, [Wj[i] for Wj in starts], UNCAPPED) for i in range(B)]

    def at_global(res: gd.RunResult) -> np.ndarray:
        glob = res.loss - losses[r_net] <= GLOBAL_TOL * (losses[0] - losses[-1])
        return (res.status == gd.CONVERGED) & glob

    res = gd.run(
        ds.X, ds.Y, starts, 1.0,
        [settings.budget(e) for e in start], schedule="adaptive", eta_max=cap,
        gtol=settings.gtol, log_points=2, problem=prob, check_guarantees=False,
    )  # fmt: skip
    ok = at_global(res)
    # the certified step at the point reached, with exact layer norms (theory.md 14)
    end = [theory.adaptive_step_at(prob, [Wj[i] for Wj in res.weights], cap[i]) for i in range(B)]
    it_ad = np.where(ok, res.iterations, np.nan)
    it_cert = np.full(B, np.nan)
    idx = np.flatnonzero(ok)
    if idx.size:
        budget = np.minimum(CERT_ITERATIONS_FACTOR * res.iterations[idx], settings.max_iter)
        cert = gd.run(
            ds.X, ds.Y, [Wj[idx] for Wj in starts], eta_cert[idx], budget,
            gtol=settings.gtol, log_points=2, problem=prob, check_guarantees=False,
        )  # fmt: skip
        done = at_global(cert)
        it_cert[idx[done]] = cert.iterations[done]
    return {
        "eta_adaptive_free": free,
        "eta_adaptive_start": start,
        "eta_adaptive_max": cap,
        "eta_adaptive_end": end,
        "iterations_adaptive": it_ad,
        "iterations_cert": it_cert,
    }


def acgh_reference_start(prob: Problem, widths: Sequence[int]) -> list[np.ndarray]:
    """A start inside the ACGH 2019 assumptions: exactly balanced, product ``(1 - theta) P*``
    with ``theta = sigma_min(P*) / (2 ||P*||_F)``, so the deficiency margin is
    ``c = sigma_min / 2`` (theory.md 10; for whitened data ``Phi = P*``)."""
    s = np.linalg.svd(prob.P_star, compute_uv=False)
    theta = s[-1] / (2 * np.linalg.norm(prob.P_star))
    N = len(widths) - 1
    return [(1 - theta) ** (1 / N) * Wj for Wj in theory.balanced_minimizer(prob, widths)]


def check_shard(table: pd.DataFrame, expected: Sequence[str], source: str) -> None:
    """Raise :class:`InputError` naming ``source`` unless ``table`` holds exactly the runs
    ``expected`` (the shard's plan), each once (:func:`deeplinear.tables.check_runs`)."""
    ids = table["run_id"]
    duplicated = sorted(set(ids[ids.duplicated()]))
    if duplicated:
        shown = ", ".join(duplicated[:3])
        raise InputError(
            f"{source} does not match the plan of its shard: {len(duplicated)} duplicated "
            f"run(s) ({shown}). Rebuild it with: {rebuild_command(source)}"
        )
    tables.check_runs(table, expected, source, what="plan of its shard")


def check_columns(table: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise :class:`InputError` naming ``source`` unless ``table`` has exactly ``columns``
    (a shard written by another version of the code)."""
    missing = [c for c in columns if c not in table.columns]
    extra = [c for c in table.columns if c not in columns]
    if missing or extra:
        raise InputError(
            f"{source} was written by another version of the code (columns missing: "
            f"{', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'}). "
            f"Rebuild it with: {rebuild_command(source)}"
        )


def collect(
    tables: Mapping[str, pd.DataFrame],
    plan_ids: Mapping[str, Sequence[str]],
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Shard tables (``source -> table``) concatenated and sorted by ``run_id``, each checked
    against the run ids its shard's plan holds (``source -> ids``) and, if given, against
    ``columns``."""
    for source, table in tables.items():
        if columns is not None:
            check_columns(table, columns, source)
        check_shard(table, plan_ids[source], source)
    out = pd.concat(list(tables.values()), ignore_index=True)
    return out.sort_values("run_id", kind="stable", ignore_index=True)


def collect_trajectories(tables) -> pd.DataFrame:
    """Trajectory tables concatenated and sorted by ``run_id`` and ``iteration``."""
    out = pd.concat(list(tables), ignore_index=True)
    return out.sort_values(["run_id", "iteration"], kind="stable", ignore_index=True)


#: The aggregates of :func:`deeplinear.stats.aggregates`: their output key in the rules
#: ``aggregate_experiment`` and ``aggregate_study`` -> their table (``tables.FILES``).
AGGREGATE_TABLES = {
    "convergence": "convergence_stats",
    "ranks": "rank_stats",
    "escape": "escape_scaling",
}


def write_run_tables(runs: pd.DataFrame, traj: pd.DataFrame, output, inputs) -> None:
    """Write ``runs``, ``traj`` and the aggregates of ``runs`` to the rule's outputs
    ``output`` (keys ``runs``, ``trajectories`` and those of :data:`AGGREGATE_TABLES`), each
    with a digest record naming the digests ``inputs`` (:func:`tables.input_digests`)."""
    tables.write(runs, output["runs"], "runs", inputs)
    tables.write(traj, output["trajectories"], "trajectories", inputs)
    for key, table in stats.aggregates(runs).items():
        tables.write(table, output[key], AGGREGATE_TABLES[key], inputs)
