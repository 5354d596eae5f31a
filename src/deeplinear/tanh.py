"""Tanh networks: the authors' tanh experiment and where the linear theory stops (theory.md 16).

No certified guarantee of this project applies to tanh networks: the step-size bounds of
theory.md 6 and 14 are proven for linear networks only. Everything here is measurement.

Model (``activation``): ``between`` (``tanh`` after every layer but the last), ``output``
(``tanh`` once, at the output: ``f(X) = tanh(W_N ... W_1 X)``) or ``identity`` (the linear
network, for comparisons). Loss ``L(W) = 1/2 ||Y - f(X)||_F^2``. There is no ``C = X X^T``
shortcut: every iteration costs ``O(N d^2 m)``.

Weights are lists of layers ``W[j]`` of shape ``(d_{j+1}, d_j)`` or stacks
``(B, d_{j+1}, d_j)`` (the batch axis leads); ``X`` is ``(d_x, m)``, ``Y`` ``(d_y, m)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deeplinear import gd, model, theory
from deeplinear.errors import InputError
from deeplinear.search import bisect_log_step

BETWEEN, OUTPUT, IDENTITY = "between", "output", "identity"
ACTIVATIONS = (BETWEEN, OUTPUT, IDENTITY)

#: Divergence: loss above this factor times ``max(L(0), 1/2 ||Y||_F^2)`` (theory.md 12) ...
DIVERGE_LOSS = 1e8
#: ... or a layer's Frobenius norm above this factor times ``max(1, max_j ||W_j(0)||_F)``
#: (theory.md 16: with ``tanh`` at the output the loss is bounded and cannot blow up).
DIVERGE_NORM = 1e4

#: Convergence also needs the loss at most this fraction of its start: a saturated ``tanh``
#: has a vanishing gradient far from any minimizer (theory.md 16).
CONVERGED_LOSS = 0.5

#: Columns of the logged trajectory of :func:`run` (``run``: index in the batch).
TRAJECTORY_COLUMNS = ["run", "iteration", "loss", "grad_norm", "product_norm",
                      "max_weight_norm", "eta"]  # fmt: skip

_U = np.finfo(np.float64).eps / 2


def check_activation(activation: str) -> str:
    """``activation`` if it is one of :data:`ACTIVATIONS`, else :class:`InputError`."""
    if activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    return activation


def forward(W: Sequence[np.ndarray], X: np.ndarray, activation: str):
    """``(f, A)``: the output ``f(X)`` (shape ``(..., d_y, m)``) and the inputs ``A_{j-1}`` of
    every layer (``A[0] = X``), theory.md 16."""
    check_activation(activation)
    A = [X]
    Z = W[0] @ X
    for j in range(1, len(W)):
        A.append(np.tanh(Z) if activation == BETWEEN else Z)
        Z = W[j] @ A[-1]
    f = np.tanh(Z) if activation == OUTPUT else Z
    return f, A


def loss_and_gradients(W: Sequence[np.ndarray], X: np.ndarray, Y: np.ndarray, activation: str):
    """``(L, G)``: loss ``1/2 ||Y - f(X)||_F^2`` (shape ``(...)``) and per-layer gradients by
    backpropagation (theory.md 16), each shaped like its layer."""
    f, A = forward(W, X, activation)
    R = f - Y
    L = 0.5 * np.sum(R * R, axis=(-2, -1))
    delta = R * (1.0 - f * f) if activation == OUTPUT else R
    G = [None] * len(W)
    for j in range(len(W) - 1, -1, -1):
        G[j] = delta @ np.swapaxes(A[j], -1, -2)
        if j:
            delta = np.swapaxes(W[j], -1, -2) @ delta
            if activation == BETWEEN:
                delta = delta * (1.0 - A[j] * A[j])
    return L, G


def loss(W: Sequence[np.ndarray], X: np.ndarray, Y: np.ndarray, activation: str) -> np.ndarray:
    """Loss ``1/2 ||Y - f(X)||_F^2`` of one run or a stack (shape ``(...)``)."""
    f, _ = forward(W, X, activation)
    return 0.5 * np.sum((f - Y) ** 2, axis=(-2, -1))


def spectral_norms(W: Sequence[np.ndarray]) -> np.ndarray:
    """``||W_j||_2`` per run and layer, shape ``(B, N)`` for stacks ``(B, d, d')``."""
    return np.stack([np.linalg.norm(Wj, 2, axis=(-2, -1)) for Wj in W], axis=-1)


def linear_step(W: Sequence[np.ndarray], prob: model.Problem, eta_max: np.ndarray) -> np.ndarray:
    """The linear certified step at the weights ``W`` as if ``sigma`` were the identity
    (theory.md 14, 15): :func:`deeplinear.theory.adaptive_step` with the exact norms of the
    layers and of the prefix and suffix products (Lemma B'), the linear gradients'
    Frobenius norms and the linear excess loss; shape ``(B,)``."""
    P = model.product(W)
    G = model.gradients_from_residual(W, model.residual_correlation(P, prob))
    g = np.stack([np.sqrt(np.sum(Gj * Gj, axis=(-2, -1))) for Gj in G], axis=-1)
    eps = model.excess_loss(P, prob)
    pre, suf = theory.partial_product_norms(W)
    return theory.adaptive_step(spectral_norms(W), g, eps, prob.lam_max, eta_max, pre=pre, suf=suf)


def linear_cap(W: Sequence[np.ndarray], prob: model.Problem) -> np.ndarray:
    """``eta_max`` of the linear certified schedule per run (:func:`theory.adaptive_cap`
    with the start's product norm), shape ``(B,)``."""
    pn = np.linalg.norm(model.product(W), 2, axis=(-2, -1))
    return np.array([theory.adaptive_cap(prob, len(W), float(p)) for p in np.atleast_1d(pn)])


@dataclass
class TanhResult:
    """Outcome of :func:`run` for ``B`` runs (first axis): ``status`` (:data:`gd.STATUSES`),
    ``iterations``, final ``weights``, ``loss`` and ``grad_norm`` at the final iterate,
    ``initial_loss``, ``decrease_violations`` (steps with
    ``L(k+1) > L(k) - eta_k/2 ||G(k)||_F^2`` beyond rounding, theory.md 16), the largest and
    smallest step taken, and the logged ``trajectory`` (:data:`TRAJECTORY_COLUMNS`)."""

    status: np.ndarray
    iterations: np.ndarray
    weights: list[np.ndarray]
    loss: np.ndarray
    grad_norm: np.ndarray
    initial_loss: np.ndarray
    decrease_violations: np.ndarray
    eta_largest: np.ndarray
    eta_smallest: np.ndarray
    trajectory: pd.DataFrame


def run(
    X: np.ndarray,
    Y: np.ndarray,
    W0: Sequence[np.ndarray],
    eta,
    max_iter,
    activation: str,
    gtol: float = 1e-6,
    log_points: int = 100,
    schedule: str = "constant",
    problem: model.Problem | None = None,
) -> TanhResult:
    """GD on tanh networks, ``B`` runs of one architecture at once (theory.md 16). No
    certified guarantee applies: statuses and decrease violations are measurements.

    ``W0``: stacked starts ``(B, d_j, d_{j-1})``; ``eta`` ``(B,)`` or scalar: the constant
    step (``schedule="constant"``) or the cap ``eta_max`` of the linear certified schedule
    (``schedule="linear"``: at every iterate :func:`linear_step` of the current weights,
    which needs ``problem``, the linear precomputation of ``X, Y``); ``max_iter`` ``(B,)`` or
    scalar. Status per run: ``diverged`` (non-finite values, loss above
    :data:`DIVERGE_LOSS` times ``max(L(0), 1/2 ||Y||^2)``, a layer's Frobenius norm above
    :data:`DIVERGE_NORM` times ``max(1, max_j ||W_j(0)||_F)``), ``converged``
    (``||G||_F <= gtol ||G(0)||_F`` and ``L <= CONVERGED_LOSS L(0)``, checked before the
    budget), else ``budget_exhausted``.
    Runs that finish leave the batch; each logs on its own geometric grid of its budget.
    """
    check_activation(activation)
    if schedule not in ("constant", "linear"):
        raise InputError(f"schedule must be 'constant' or 'linear', got {schedule!r}")
    if schedule == "linear" and problem is None:
        raise InputError("the linear certified schedule needs problem=model.precompute(X, Y)")
    B = W0[0].shape[0]
    eta = np.broadcast_to(np.asarray(eta, dtype=float), (B,)).copy()
    budget = np.broadcast_to(np.asarray(max_iter, dtype=np.int64), (B,)).copy()
    if not np.all((eta > 0) & np.isfinite(eta)):
        raise InputError(f"steps must be finite and > 0, got {eta}")
    N = len(W0)
    dim = max(max(Wj.shape[-2:]) for Wj in W0)
    W = [np.array(Wj, dtype=float) for Wj in W0]
    frob0 = np.max(np.stack([np.linalg.norm(Wj, axis=(-2, -1)) for Wj in W], -1), -1)
    norm_limit = DIVERGE_NORM * np.maximum(1.0, frob0)
    with np.errstate(all="ignore"):
        L, G = loss_and_gradients(W, X, Y, activation)
    g2 = sum(np.sum(Gj * Gj, axis=(-2, -1)) for Gj in G)
    loss_limit = DIVERGE_LOSS * np.maximum(L, 0.5 * float(np.sum(Y * Y)))
    out = {
        "status": np.full(B, gd.BUDGET, dtype=object),
        "iterations": np.zeros(B, np.int64),
        "loss": L.copy(),
        "grad_norm": np.sqrt(g2),
        "initial_loss": L.copy(),
        "decrease_violations": np.zeros(B, np.int64),
        "eta_largest": np.zeros(B),
        "eta_smallest": np.full(B, np.inf),
    }
    weights = [Wj.copy() for Wj in W]
    g0 = np.sqrt(g2)
    L0 = L.copy()
    grids = [gd.log_grid(int(b), log_points) for b in budget]
    nxt = np.zeros(B, np.int64)  # position in each run's grid
    rows: list[tuple] = []
    idx = np.arange(B)  # runs still in the batch
    k = 0
    step = np.zeros(B)

    def log(sel: np.ndarray, eta_now: np.ndarray) -> None:
        Ws = [Wj[sel] for Wj in W]
        with np.errstate(all="ignore"):
            fin = np.all(np.isfinite(np.stack([w.reshape(len(sel), -1).sum(-1) for w in Ws])), 0)
            pn = np.full(sel.size, np.nan)
            mw = np.full(sel.size, np.nan)
            if fin.any():
                pn[fin] = np.linalg.norm(model.product([w[fin] for w in Ws]), 2, axis=(-2, -1))
                mw[fin] = np.max(spectral_norms([w[fin] for w in Ws]), axis=-1)
        for i, s in enumerate(sel):
            b = idx[s]
            rows.append((b, k, L[s], math.sqrt(g2[s]), pn[i], mw[i], eta_now[s]))

    while idx.size:
        # status at iterate k
        with np.errstate(all="ignore"):
            frob = np.max(np.stack([np.linalg.norm(Wj, axis=(-2, -1)) for Wj in W], -1), -1)
        bad = (
            ~np.isfinite(L) | ~np.isfinite(g2) | (L > loss_limit[idx]) | ~(frob <= norm_limit[idx])
        )
        conv = ~bad & (np.sqrt(g2) <= gtol * g0[idx]) & (L <= CONVERGED_LOSS * L0[idx])
        spent = k >= budget[idx]
        done = bad | conv | spent
        if schedule == "linear" and not np.all(done):
            live = ~done
            with np.errstate(all="ignore"):
                step[live] = linear_step([Wj[live] for Wj in W], problem, eta[idx][live])
        elif schedule == "constant":
            step = eta[idx]
        at_log = np.array([nxt[b] < len(grids[b]) and grids[b][nxt[b]] == k for b in idx], bool)
        at_log = at_log | done
        if at_log.any():
            log(np.flatnonzero(at_log), np.where(done, np.nan, step))
            for b in idx[at_log]:
                nxt[b] += 1
        if done.any():
            fin = idx[done]
            out["status"][fin] = np.where(
                bad[done], gd.DIVERGED, np.where(conv[done], gd.CONVERGED, gd.BUDGET)
            )
            out["iterations"][fin] = k
            out["loss"][fin] = L[done]
            out["grad_norm"][fin] = np.sqrt(g2[done])
            for Wout, Wj in zip(weights, W, strict=True):
                Wout[fin] = Wj[done]
            keep = ~done
            idx, L, g2, step = idx[keep], L[keep], g2[keep], step[keep]
            W = [Wj[keep] for Wj in W]
            G = [Gj[keep] for Gj in G]
            if not idx.size:
                break
        out["eta_largest"][idx] = np.maximum(out["eta_largest"][idx], step)
        out["eta_smallest"][idx] = np.minimum(out["eta_smallest"][idx], step)
        e = step[:, None, None]
        W = [Wj - e * Gj for Wj, Gj in zip(W, G, strict=True)]
        with np.errstate(all="ignore"):
            L_new, G = loss_and_gradients(W, X, Y, activation)
            tol = 8.0 * (N + dim) * _U * (np.abs(L) + step * g2)
            out["decrease_violations"][idx] += L_new > L - 0.5 * step * g2 + tol
        L = L_new
        g2 = sum(np.sum(Gj * Gj, axis=(-2, -1)) for Gj in G)
        k += 1
    out["eta_smallest"][~np.isfinite(out["eta_smallest"])] = np.nan
    traj = pd.DataFrame(rows, columns=TRAJECTORY_COLUMNS)
    traj = traj.sort_values(["run", "iteration"], kind="stable", ignore_index=True)
    return TanhResult(weights=weights, trajectory=traj, **out)


# --- Starts -----------------------------------------------------------------------------


def start_seed(base_seed: int, depth: int, seed: int) -> np.random.SeedSequence:
    """Seed of the start of depth ``depth`` and seed ``seed``: the same for every reading and
    architecture, so the reading search's seed-0 curve is the experiment's seed-0 run."""
    return np.random.SeedSequence(entropy=base_seed, spawn_key=(23, depth, seed))


def starts(init_spec: dict, widths: Sequence[int], base_seed: int, seeds: Sequence[int]):
    """Stacked starts ``(len(seeds), d_j, d_{j-1})`` of ``init_spec`` (a validated config
    ``init``: kind, scale or product_norm, rank, spread) at ``widths``."""
    from deeplinear import init

    spec = dict(init_spec)
    N = len(widths) - 1
    scale = spec["scale"] if "scale" in spec else spec["product_norm"] ** (1.0 / N)
    options = {k: spec[k] for k in ("rank", "spread", "xi") if k in spec}
    W = [
        init.make(spec["kind"], list(widths), scale,
                  np.random.default_rng(start_seed(base_seed, N, s)), **options)
        for s in seeds
    ]  # fmt: skip
    return init.stack(W)


# --- The reading search (theory.md 16, "Reading search and score") -----------------------

#: Columns of the published points (the same design as the linear reading search's).
PUBLISHED_COLUMNS = ("depth", "epoch", "loss", "feature", "bound", "epoch_factor",
                     "loss_factor", "source")  # fmt: skip
FEATURES = ("start", "descent", "shoulder", "plateau", "drop", "floor")


def read_published(path) -> pd.DataFrame:
    """The published loss points of the tanh figure, one row per point with
    :data:`PUBLISHED_COLUMNS`; :class:`InputError` naming the file and line of a bad row."""
    try:
        pts = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the published points: {err}") from None
    missing = [c for c in PUBLISHED_COLUMNS if c not in pts.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    for i, row in pts.iterrows():
        line = int(i) + 2
        vals = pd.to_numeric(row[["depth", "epoch", "loss", "epoch_factor", "loss_factor"]],
                             errors="coerce")  # fmt: skip
        if not (np.all(np.isfinite(vals)) and np.all(vals > 0)):
            raise InputError(f"{path}, line {line}: depth, epoch, loss and factors must be > 0")
        if row["epoch_factor"] <= 1 or row["loss_factor"] <= 1:
            raise InputError(f"{path}, line {line}: reading factors must be > 1")
        if row["feature"] not in FEATURES or row["bound"] != "point":
            raise InputError(
                f"{path}, line {line}: feature must be one of {list(FEATURES)} "
                f"and bound 'point', got {row['feature']!r}, {row['bound']!r}"
            )
    return pts[list(PUBLISHED_COLUMNS)].astype({"depth": int})


def point_distance(epoch, loss_values, point) -> float:
    """Distance of a published point from a curve in units of its reading precision: the
    curve is the polyline through ``(log10 epoch / log10 epoch_factor,
    log10 loss / log10 loss_factor)``; Euclidean distance of the point from it (a steep drop
    missed by a small shift in epochs counts as that shift). NaN for an empty curve."""
    ex, ly = math.log10(point["epoch_factor"]), math.log10(point["loss_factor"])
    x = np.log10(np.asarray(epoch, float)) / ex
    y = np.log10(np.maximum(np.asarray(loss_values, float), np.finfo(float).tiny)) / ly
    if x.size == 0:
        return math.nan
    px, py = math.log10(point["epoch"]) / ex, math.log10(point["loss"]) / ly
    if x.size == 1:
        return float(math.hypot(x[0] - px, y[0] - py))
    x0, y0, dx, dy = x[:-1], y[:-1], np.diff(x), np.diff(y)
    seg2 = dx * dx + dy * dy
    s = np.where(seg2 > 0, ((px - x0) * dx + (py - y0) * dy) / np.where(seg2 > 0, seg2, 1), 0)
    s = np.clip(s, 0.0, 1.0)
    return float(np.min(np.hypot(x0 + s * dx - px, y0 + s * dy - py)))


def score(curves: pd.DataFrame, points: pd.DataFrame) -> dict[str, float]:
    """Score of one reading (theory.md 16): mean over the published ``points`` of the squared
    :func:`point_distance` from the curve of their depth (``curves``: ``depth, epoch, loss``).
    0: every point on the curve; 1: every point one reading precision off. Also
    ``score_N<depth>`` per depth. A depth without a curve makes the score NaN."""
    by_depth = {int(N): g.sort_values("epoch") for N, g in curves.groupby("depth")}
    d = np.array([
        point_distance(by_depth[int(p["depth"])]["epoch"], by_depth[int(p["depth"])]["loss"], p)
        if int(p["depth"]) in by_depth else math.nan
        for _, p in points.iterrows()
    ])  # fmt: skip
    out = {"score": float(np.mean(d**2))}
    for N in sorted(points["depth"].unique()):
        out[f"score_N{int(N)}"] = float(np.mean(d[(points["depth"] == N).to_numpy()] ** 2))
    return out


def network_widths(d_x: int, d_y: int, hidden: int, depth: int) -> list[int]:
    """``[d_x, hidden, ..., hidden, d_y]`` for ``depth`` layers."""
    return [d_x] + [hidden] * (depth - 1) + [d_y]


def authors_runs(
    X,
    Y,
    activation: str,
    init_spec: dict,
    hidden: int,
    depth: int,
    seeds: Sequence[int],
    cfg: dict,
    base_seed: int,
) -> tuple[TanhResult, int]:
    """The authors' setting at one depth for ``seeds``, at the scaled step
    ``step_scale * eta`` for ``ceil(epochs / step_scale)`` steps without a convergence stop
    (gradient-flow time ``eta * epochs`` preserved, theory.md 16). Returns the result and
    the number of steps."""
    W0 = starts(init_spec, network_widths(X.shape[0], Y.shape[0], hidden, depth),
                base_seed, seeds)  # fmt: skip
    iters = math.ceil(cfg["epochs"] / cfg["step_scale"])
    res = run(X, Y, W0, cfg["step_scale"] * cfg["eta"], iters, activation, gtol=0.0,
              log_points=cfg["log_points"])  # fmt: skip
    return res, iters


def reading_runs(
    X, Y, reading: dict, depth: int, seeds: Sequence[int], cfg: dict, base_seed: int
) -> tuple[TanhResult, int]:
    """:func:`authors_runs` of one reading of ``cfg["readings"]`` (its activation and
    init) at the config's hidden width."""
    return authors_runs(X, Y, reading["activation"], reading["init"], cfg["hidden_width"],
                        depth, seeds, cfg, base_seed)  # fmt: skip


def curve_table(res: TanhResult, step_scale: float, depth: int, seeds: Sequence[int]):
    """Logged trajectory in the published axis: ``epoch = step_scale * iteration + 1``."""
    t = res.trajectory
    out = t.assign(depth=depth, seed=np.asarray(seeds)[t["run"].to_numpy()],
                   epoch=step_scale * t["iteration"].to_numpy() + 1.0)  # fmt: skip
    return out.drop(columns="run")[["depth", "seed", "iteration", "epoch", "loss",
                                    "grad_norm", "product_norm", "max_weight_norm"]]  # fmt: skip


READING_COLUMNS = ("reading", "dataset", "activation", "init", "rank", "best", "score")


def readings_table(curves: pd.DataFrame, points: pd.DataFrame, readings: Sequence[dict]):
    """``authors_tanh_readings.csv``: one row per reading with its :func:`score` against the
    published ``points`` (``curves`` rows keyed by ``reading``), its rank (1 = best, ties
    share) and ``best``; sorted by rank."""
    import json

    rows = []
    for r in readings:
        c = curves[curves["reading"] == r["name"]]
        rows.append(
            {
                "reading": r["name"],
                "dataset": r["dataset"],
                "activation": r["activation"],
                "init": json.dumps(dict(r["init"]), sort_keys=True),
                **score(c, points),
            }
        )
    out = pd.DataFrame(rows)
    out["rank"] = out["score"].rank(method="min", na_option="bottom").astype(int)
    out["best"] = out["rank"] == 1
    rest = [c for c in out.columns if c not in READING_COLUMNS]
    return out[list(READING_COLUMNS) + rest].sort_values(["rank", "reading"], ignore_index=True)


def chosen(readings: pd.DataFrame, config_readings: Sequence[dict]) -> dict:
    """The config entry of the best-scoring reading (first by name among ties)."""
    name = readings.sort_values(["rank", "reading"])["reading"].iloc[0]
    return next(r for r in config_readings if r["name"] == name)


# --- The step-size sweep, critical steps, linear schedule (theory.md 16) ------------------


def outcome_fractions(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per ``activation, depth, multiple``: number of runs and fractions ``converged``,
    ``diverged``, ``stalled`` (budget exhausted) of the sweep table."""
    s = sweep.assign(
        converged=sweep["status"] == gd.CONVERGED,
        diverged=sweep["status"] == gd.DIVERGED,
        stalled=sweep["status"] == gd.BUDGET,
    )
    g = s.groupby(["activation", "depth", "multiple"], sort=True)
    out = g[["converged", "diverged", "stalled"]].mean()
    return out.assign(runs=g.size()).reset_index()


def budget(eta: np.ndarray, time: float, max_iter: int) -> np.ndarray:
    """``min(ceil(T / eta), max_iter)`` per run."""
    return np.minimum(np.ceil(time / np.asarray(eta)), max_iter).astype(np.int64)


def bracket(multiples: np.ndarray, converged: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)`` of a start's critical multiple from its sweep outcomes on the sorted grid
    ``multiples``: ``lo`` the end of the first stretch of converging multiples, ``hi`` the
    next multiple (``inf`` if it converged up to the top); ``(nan, nan)`` without any."""
    ok = np.flatnonzero(converged)
    if not ok.size:
        return math.nan, math.nan
    i = ok[0]
    while i + 1 < len(multiples) and converged[i + 1]:
        i += 1
    return float(multiples[i]), float(multiples[i + 1]) if i + 1 < len(multiples) else math.inf


def critical_steps(X, Y, W0, eta_lin: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   activation: str, sw: dict) -> np.ndarray:  # fmt: skip
    """Largest converging constant multiple of ``eta_lin`` per start by bisection on
    ``log`` between ``lo`` (converged) and ``hi`` (did not) to relative precision
    ``sw['rtol']`` (:func:`deeplinear.search.bisect_log_step`); ``lo`` where ``hi`` is
    infinite, NaN where ``lo`` is NaN."""
    lo, hi = np.array(lo, float), np.array(hi, float)

    def converges(mid: np.ndarray, i: np.ndarray) -> np.ndarray:
        eta = mid[i] * eta_lin[i]
        res = run(X, Y, [Wj[i] for Wj in W0], eta, budget(eta, sw["time"], sw["max_iter"]),
                  activation, gtol=sw["gtol"], log_points=2)  # fmt: skip
        return res.status == gd.CONVERGED

    bracketed = np.isfinite(lo) & np.isfinite(hi)
    return bisect_log_step(converges, lo, hi, sw["rtol"], bracketed)[0]


SWEEP_COLUMNS = ("activation", "depth", "seed", "multiple", "eta", "eta_lin", "iterations",
                 "budget_capped", "status", "initial_loss", "final_loss",
                 "decrease_violations")  # fmt: skip
CRITICAL_COLUMNS = ("activation", "depth", "seed", "eta_lin", "critical_multiple",
                    "critical_eta", "critical_at_upper_end")  # fmt: skip
SCHEDULE_COLUMNS = ("activation", "depth", "seed", "iterations", "status", "initial_loss",
                    "final_loss", "eta_smallest", "eta_largest", "eta_lin",
                    "decrease_violations")  # fmt: skip


def sweep_depth(X, Y, prob: model.Problem, activation: str, depth: int, sw: dict,
                base_seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The sweep at one depth for one ``activation`` (theory.md 16): constant steps at every
    multiple of ``sw['multiples']`` of each start's linear certified step ``eta_lin``
    (:func:`linear_step` at the start, cap :func:`linear_cap`), one batch; the critical step
    of each start (:func:`bracket` from the sweep, then :func:`critical_steps`); and the
    linear certified schedule run on the same weights (budget ``ceil(T / eta_lin)``).
    Returns ``(sweep, critical, schedule)`` rows (:data:`SWEEP_COLUMNS`,
    :data:`CRITICAL_COLUMNS`, :data:`SCHEDULE_COLUMNS`)."""
    seeds = list(range(sw["seeds"]))
    widths = network_widths(X.shape[0], Y.shape[0], sw["hidden_width"], depth)
    W0 = starts(sw["init"], widths, base_seed, seeds)
    cap = linear_cap(W0, prob)
    eta_lin = linear_step(W0, prob, cap)
    mult = np.sort(np.asarray(sw["multiples"], float))
    S, M = len(seeds), len(mult)
    rep = np.repeat(np.arange(S), M)
    eta = (eta_lin[:, None] * mult[None, :]).ravel()
    full = budget(eta, sw["time"], 2**62)
    res = run(X, Y, [Wj[rep] for Wj in W0], eta, np.minimum(full, sw["max_iter"]), activation,
              gtol=sw["gtol"], log_points=2)  # fmt: skip
    sweep = pd.DataFrame({
        "activation": activation, "depth": depth, "seed": np.asarray(seeds)[rep],
        "multiple": np.tile(mult, S), "eta": eta, "eta_lin": eta_lin[rep],
        "iterations": res.iterations, "budget_capped": full > sw["max_iter"],
        "status": res.status, "initial_loss": res.initial_loss, "final_loss": res.loss,
        "decrease_violations": res.decrease_violations,
    })  # fmt: skip
    conv = (res.status == gd.CONVERGED).reshape(S, M)
    lo, hi = np.array([bracket(mult, c) for c in conv]).T
    crit = critical_steps(X, Y, W0, eta_lin, lo, hi, activation, sw)
    critical = pd.DataFrame({
        "activation": activation, "depth": depth, "seed": seeds, "eta_lin": eta_lin,
        "critical_multiple": crit, "critical_eta": crit * eta_lin,
        "critical_at_upper_end": np.isinf(hi),
    })  # fmt: skip
    lin = run(X, Y, W0, cap, budget(eta_lin, sw["time"], sw["max_iter"]), activation,
              gtol=sw["gtol"], log_points=2, schedule="linear", problem=prob)  # fmt: skip
    schedule = pd.DataFrame({
        "activation": activation, "depth": depth, "seed": seeds, "iterations": lin.iterations,
        "status": lin.status, "initial_loss": lin.initial_loss, "final_loss": lin.loss,
        "eta_smallest": lin.eta_smallest, "eta_largest": lin.eta_largest, "eta_lin": eta_lin,
        "decrease_violations": lin.decrease_violations,
    })  # fmt: skip
    return sweep, critical, schedule


def check_config(cfg: dict, datasets) -> None:
    """Cross-field checks of the config's ``tanh`` section: reading names unique, every
    dataset defined; :class:`InputError` naming the key."""
    names = [r["name"] for r in cfg["readings"]]
    for i, r in enumerate(cfg["readings"]):
        if names.count(r["name"]) > 1:
            raise InputError(f"config key tanh.readings.{i}.name: reading {r['name']!r} twice")
        if r["dataset"] not in datasets:
            raise InputError(
                f"config key tanh.readings.{i}.dataset: unknown dataset "
                f"{r['dataset']!r}; defined: {', '.join(sorted(datasets))}"
            )
    if cfg["sweep"]["dataset"] not in datasets:
        raise InputError(
            f"config key tanh.sweep.dataset: unknown dataset "
            f"{cfg['sweep']['dataset']!r}; defined: {', '.join(sorted(datasets))}"
        )


RUNS_COLUMNS = ("reading", "activation", "depth", "seed", "eta", "step_scale", "iterations",
                "status", "initial_loss", "final_loss", "final_grad_norm",
                "decrease_violations")  # fmt: skip


def runs_table(res: TanhResult, reading: dict, depth: int, seeds: Sequence[int], cfg: dict):
    """``authors_tanh_runs.csv`` rows of one depth: the published step ``eta``, the
    ``step_scale`` it ran at, status, losses, final gradient norm and decrease violations."""
    return pd.DataFrame({
        "reading": reading["name"], "activation": reading["activation"], "depth": depth,
        "seed": list(seeds), "eta": cfg["eta"], "step_scale": cfg["step_scale"],
        "iterations": res.iterations, "status": res.status, "initial_loss": res.initial_loss,
        "final_loss": res.loss, "final_grad_norm": res.grad_norm,
        "decrease_violations": res.decrease_violations,
    }, columns=list(RUNS_COLUMNS))  # fmt: skip
