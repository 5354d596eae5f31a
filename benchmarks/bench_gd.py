"""Benchmark of the batched GD engine (not a test; run with ``make bench``).

For each (depth N, width d, batch B) it prints, measured in one run on this machine:

- microseconds per run-iteration of the engine :func:`deeplinear.gd.run`;
- the same for the naive per-run numpy loop research code writes (it forms
  ``(P X - Y) X^T`` from the data at every step, m = 200) and the speed-up;
- the engine's achieved GFLOP/s (flops it must do: prefix products, two products with the
  Cholesky factor, backward pass) and its fraction of this machine's single-thread fp64
  GEMM rate on large matrices, measured in the same run;
- the rate of a bare batched ``np.matmul`` at the same width and batch, for reference;
- the step alone (products and residual, timed on its own arrays): the engine's ceiling
  without the checks, the update and the step norms;
- the cost of logging every iterate against logging none (``log_points`` = iterations), and
  its floor with exact logged values: ``2N + 1`` batched ``eigvalsh`` per logged iterate;
- the adaptive schedule (theory.md 14) at (5, 20, 64), unchecked and checked, against an
  unchecked constant step, in calls of equal length;
- a scaling table: time per run-iteration against width at depth 5 and against depth at
  width 20 (batch 16), with fitted log-log slopes next to those of the flop count.

``--profile`` adds a per-operation breakdown of one engine iteration at every case.
Everything runs with one BLAS thread: ratios, not absolute times, are what to compare.
See benchmarks/README.md for recorded results.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from deeplinear import data, gd, init, model, theory

#: Four reference shapes, then the shape of a typical shard of the default config (width
#: 10, a block of 10 seeds) and of the deepest threshold-search shard (depth 20, width 6,
#: 4 seeds), where the fixed cost of each array operation outweighs the products.
CASES = [(3, 10, 64), (5, 20, 64), (5, 64, 16), (10, 20, 64), (5, 10, 10), (20, 6, 4)]
M = 200
SCALING_BATCH = 16
ADAPTIVE_ITERS = 2000  # the shortest calls of the adaptive-schedule comparison
LONG = 6  # the "long run" column: one run this many times as long as the calibrated one
SCALING_WIDTHS = (10, 20, 40, 70, 128)  # at depth 5
SCALING_DEPTHS = (2, 3, 4, 6, 8, 12, 16, 20)  # at width 20


def gemm_rate(n: int = 2000, repeats: int = 3) -> float:
    """Best single-thread fp64 GEMM rate (GFLOP/s) on ``n x n`` matrices."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    C = np.empty((n, n))
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(A, B, out=C)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def batched_matmul_rate(d: int, B: int, repeats: int = 200) -> float:
    """GFLOP/s of one ``np.matmul`` on ``(B, d, d)`` stacks: the ceiling of any batched engine."""
    rng = np.random.default_rng(0)
    A, C = rng.standard_normal((B, d, d)), rng.standard_normal((B, d, d))
    out = np.empty((B, d, d))
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            np.matmul(A, C, out=out)
        best = min(best, (time.perf_counter() - t) / repeats)
    return 2 * B * d**3 / best / 1e9


def engine_flops(N: int, d: int) -> float:
    """Flops per run-iteration with every width ``d``: ``2 d^3 (3 (N - 1) + 2)``."""
    return 2.0 * d**3 * (3 * (N - 1) + 2)


def naive_loop(W: list[np.ndarray], X: np.ndarray, Y: np.ndarray, eta: float, iters: int):
    """The plain per-run loop: data products at every step, fresh arrays everywhere."""
    for _ in range(iters):
        G = model.gradients(W, X, Y)
        W = [Wj - eta * Gj for Wj, Gj in zip(W, G, strict=True)]
    return W


def setup(N: int, d: int, B: int):
    """Data, problem, ``B`` balanced starts (scale 0.5, as in the default config) and, per
    start, the certified step size and bounds of theory.md 6 (as the experiments run)."""
    ds = data.synthetic(d, d, M, rank=d // 2, noise=0.1, seed=1)
    prob = model.precompute(ds.X, ds.Y)
    runs = [init.balanced([d] * (N + 1), 0.5, seed) for seed in range(B)]
    certs = [theory.certified_step_size(ds.X, ds.Y, W) for W in runs]
    bounds = {"drift_bound": [c.drift_bound for c in certs], "norm_bound": [c.K for c in certs]}
    return ds, prob, runs, init.stack(runs), np.array([c.eta for c in certs]), bounds


def engine_time(
    N: int,
    d: int,
    B: int,
    seconds: float,
    log_every: bool = False,
    long: int = 1,
    bounded: bool = True,
) -> float:
    """Best of two seconds-long engine calls, per run-iteration (s); ``log_every`` logs
    every iterate; ``long > 1``: one call ``long`` times as long instead (start-up costs
    such as the first exact norms of the guarantee trackers weigh less); ``bounded=False``
    leaves out the drift and norm bounds (the trackers then keep relative precision)."""
    ds, prob, _, W0, eta, bounds = setup(N, d, B)
    bounds = bounds if bounded else {}

    def engine(iters: int) -> float:
        points = iters + 1 if log_every else 2
        t = time.perf_counter()
        gd.run(ds.X, ds.Y, W0, eta, iters, gtol=0, problem=prob, log_points=points, **bounds)
        return time.perf_counter() - t

    iters = max(20, int(seconds / max(engine(20) / 20, 1e-9)))
    if long > 1:
        return engine(long * iters) / (long * iters * B)
    return min(engine(iters) for _ in range(2)) / (iters * B)


def adaptive_time(N: int, d: int, B: int, seconds: float) -> tuple[float, float, float]:
    """Per run-iteration (s), best of two calls of equal length from the same starts: the
    constant certified step unchecked, the adaptive schedule (theory.md 14) unchecked, and
    the adaptive schedule checked with its own drift and norm bounds."""
    ds, prob, runs, W0, eta, _ = setup(N, d, B)
    ab = [theory.adaptive_bound(prob, W) for W in runs]
    cap = [a.eta_max for a in ab]
    checked = {"drift_bound": [a.drift_bound for a in ab], "norm_bound": [a.K for a in ab]}
    calls = {
        "constant": lambda n: gd.run(ds.X, ds.Y, W0, eta, n, gtol=0, problem=prob,
                                     log_points=2, check_guarantees=False),
        "adaptive": lambda n: gd.run(ds.X, ds.Y, W0, 1.0, n, gtol=0, problem=prob,
                                     log_points=2, check_guarantees=False,
                                     schedule="adaptive", eta_max=cap),
        "checked": lambda n: gd.run(ds.X, ds.Y, W0, 1.0, n, gtol=0, problem=prob,
                                    log_points=2, schedule="adaptive", eta_max=cap, **checked),
    }  # fmt: skip

    def per_iteration(call, n: int) -> float:
        t = time.perf_counter()
        call(n)
        return (time.perf_counter() - t) / (n * B)

    # One iteration count for all three, calibrated on the constant step (at least
    # ADAPTIVE_ITERS: the schedule's start-up, where the layers move fast and their exact
    # norms are refreshed often, should weigh as in a run that converges).
    iters = max(ADAPTIVE_ITERS, int(seconds / B / max(per_iteration(calls["constant"], 50), 1e-12)))
    return tuple(min(per_iteration(call, iters) for _ in range(2)) for call in calls.values())


def step_time(N: int, d: int, B: int) -> float:
    """Per run-iteration (s) of the step alone: forward pass, residual and backward pass of
    ``gd._Batch`` on its own arrays, without checks, update and step norms."""
    _, prob, _, W0, etas, _ = setup(N, d, B)
    batch = gd._Batch([d] * (N + 1), W0)

    def step() -> None:
        batch.forward()
        batch.residual(prob, etas)
        batch.backward()

    step()
    return best_time(step, calibrated_repeats(step)) / B


def eigvalsh_time(d: int, B: int) -> float:
    """Per matrix (s): one batched ``np.linalg.eigvalsh`` of ``B`` symmetric ``d x d``
    matrices, the exact spectral norm a logged iterate computes ``2N + 1`` times per run."""
    A = np.random.default_rng(0).standard_normal((B, d, d))
    gram = A @ np.swapaxes(A, -1, -2)
    return best_time(lambda: np.linalg.eigvalsh(gram), 5) / B


def measure(N: int, d: int, B: int, seconds: float) -> dict[str, float]:
    ds, _, runs, _, eta, _ = setup(N, d, B)
    t_engine = engine_time(N, d, B, seconds)

    def naive(iters: int) -> float:
        t = time.perf_counter()
        naive_loop(runs[0], ds.X, ds.Y, eta[0], iters)
        return (time.perf_counter() - t) / iters

    naive_iters = max(20, int(seconds / 6 / max(naive(5), 1e-9)))

    t_naive = min(
        naive(naive_iters) for _ in range(3)
    )  # best of three, like the engine's best of two
    return {
        "matmul_gflops": batched_matmul_rate(d, B),
        "long_us": engine_time(N, d, B, seconds, long=LONG) * 1e6,
        "step_us": step_time(N, d, B) * 1e6,
        "engine_us": t_engine * 1e6,
        "unbounded_us": engine_time(N, d, B, seconds, bounded=False) * 1e6,
        "naive_us": t_naive * 1e6,
        "gflops": engine_flops(N, d) / t_engine / 1e9,
    }


def best_time(fn, repeats: int) -> float:
    """Best of five means over ``repeats`` calls of ``fn`` (s)."""
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - t) / repeats)
    return best


def calibrated_repeats(fn) -> int:
    """Calls of ``fn`` per timing, so that each timing takes about 50 ms (at least 10)."""
    return max(10, int(0.05 / max(best_time(fn, 3), 1e-9)))


def profile(N: int, d: int, B: int, seconds: float) -> list[tuple[str, float]]:
    """Per-operation time (us) of one engine iteration on a batch of ``B`` runs.

    The engine's step is four batch operations (``gd._Batch``: prefix products, residual
    with the two products by ``R``, backward pass, step norms) and the update; each is
    timed alone on the same arrays. "checks and bookkeeping" is the rest of a full
    iteration of :func:`gd.run`: the stopping tests, the sufficient-decrease test, the
    guarantee trackers and their exact recomputations, compaction and Python overhead.
    """
    _, prob, _, W0, etas, _ = setup(N, d, B)
    batch = gd._Batch([d] * (N + 1), W0)
    batch.step_direction(prob, etas)
    repeats = calibrated_repeats(lambda: batch.step_direction(prob, etas))
    ops = [
        ("prefix products (N-1 bmm)", batch.forward),
        ("residual: P - P*, 2 products with R, eta", lambda: batch.residual(prob, etas)),
        ("backward (2(N-1) bmm)", batch.backward),
        ("step norms ||eta G_j||_F^2", batch.step_norms),
        ("update W -= eta G", batch.update),
    ]
    rows = [(name, best_time(fn, repeats) * 1e6) for name, fn in ops]
    total = engine_time(N, d, B, seconds) * B * 1e6
    rows.append(("checks and bookkeeping (rest)", total - sum(t for _, t in rows)))
    rows.append(("iteration", total))
    return rows


def slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def scaling(seconds: float) -> tuple[list, list]:
    """Time per run-iteration (us) against width (depth 5) and depth (width 20)."""
    B = SCALING_BATCH
    by_width = [(d, engine_time(5, d, B, seconds) * 1e6) for d in SCALING_WIDTHS]
    by_depth = [(N, engine_time(N, 20, B, seconds) * 1e6) for N in SCALING_DEPTHS]
    return by_width, by_depth


def print_profile(rows_by_case) -> None:
    for (N, d, B), rows in rows_by_case:
        total = rows[-1][1]
        print(f"\nprofile (N, width, batch) = ({N}, {d}, {B}): one iteration of the batch")
        for name, t in rows:
            print(f"  {name:<42} {t:9.1f} us {100 * t / total:6.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument(
        "--profile", action="store_true", help="per-operation breakdown of one iteration"
    )
    args = parser.parse_args()
    with threadpool_limits(limits=1, user_api="blas"), np.errstate(all="ignore"):
        peak = gemm_rate()
        rows = [(case, measure(*case, args.seconds)) for case in CASES]
        unlogged = engine_time(5, 20, 64, args.seconds / 2)
        logged = engine_time(5, 20, 64, args.seconds / 2, log_every=True)
        eig = eigvalsh_time(20, 64)
        adaptive = adaptive_time(5, 20, 64, args.seconds)
        by_width, by_depth = scaling(args.seconds / 4)
        profiles = (
            [(case, profile(*case, args.seconds / 2)) for case in CASES] if args.profile else []
        )
    print(f"single-thread fp64 GEMM (2000^3): {peak:.1f} GFLOP/s\n")
    head = f"{'N':>3} {'width':>5} {'batch':>5} | {'engine us':>9} {'naive us':>9} {'speed-up':>8}"
    tail = f" | {'GFLOP/s':>7} {'of GEMM':>7} | {'bmm GF/s':>8} {'of GEMM':>7}"
    print(head + tail)
    print("-" * len(head + tail))
    for (N, d, B), r in rows:
        print(
            f"{N:>3} {d:>5} {B:>5} | {r['engine_us']:>9.2f} {r['naive_us']:>9.2f} "
            f"{r['naive_us'] / r['engine_us']:>7.1f}x | {r['gflops']:>7.2f} "
            f"{100 * r['gflops'] / peak:>6.0f}% | {r['matmul_gflops']:>8.2f} "
            f"{100 * r['matmul_gflops'] / peak:>6.0f}%"
        )
    print("\nbmm: one np.matmul on (batch, width, width) stacks, the ceiling of a batched engine")
    print(f"long runs ({LONG}x as many iterations, one call), us per run-iteration:")
    for (N, d, B), r in rows:
        print(
            f"{N:>3} {d:>5} {B:>5} | {r['long_us']:>9.2f} us  "
            f"naive {r['naive_us'] / r['long_us']:.1f}x  "
            f"{100 * engine_flops(N, d) / r['long_us'] / 1e3 / peak:.0f}% of GEMM"
        )
    print("without drift and norm bounds (calibrated calls), us per run-iteration:")
    for (N, d, B), r in rows:
        print(
            f"{N:>3} {d:>5} {B:>5} | {r['unbounded_us']:>9.2f} us  "
            f"{r['unbounded_us'] / r['engine_us']:.2f}x the bounded engine"
        )
    print("the step alone (products and residual, no checks, update or norms), per run-iter:")
    for (N, d, B), r in rows:
        print(
            f"{N:>3} {d:>5} {B:>5} | {r['step_us']:>9.2f} us  "
            f"{100 * engine_flops(N, d) / r['step_us'] / 1e3 / peak:.0f}% of GEMM  "
            f"{r['step_us'] / r['long_us']:.0%} of a long-run iteration"
        )
    print(
        f"\nlogging every iterate at (5, 20, 64): {logged * 1e6:.2f} us/run-iter against "
        f"{unlogged * 1e6:.2f} unlogged: a logged iteration costs {logged / unlogged:.2f}x"
    )
    floor = 1 + 11 * eig / unlogged
    print(
        f"  one exact spectral norm (eigvalsh, 20 x 20): {eig * 1e6:.2f} us per matrix; "
        f"11 per run at N = 5 put the floor of exact logging at {floor:.1f}x"
    )
    constant, unchecked, checked = adaptive
    print(
        f"\nadaptive schedule at (5, 20, 64), us per run-iteration: constant step unchecked "
        f"{constant * 1e6:.2f}, adaptive unchecked {unchecked * 1e6:.2f} "
        f"({unchecked / constant:.2f}x), adaptive checked {checked * 1e6:.2f} "
        f"({checked / constant:.2f}x)"
    )
    print(f"\nscaling, batch {SCALING_BATCH} (us per run-iteration):")
    print(f"  {'width':>5} (depth 5) {'us':>9} | {'depth':>5} (width 20) {'us':>9}")
    for i in range(max(len(by_width), len(by_depth))):
        left = (
            f"{by_width[i][0]:>5} {'':9} {by_width[i][1]:>9.2f}" if i < len(by_width) else " " * 25
        )
        right = f"{by_depth[i][0]:>5} {'':10} {by_depth[i][1]:>9.2f}" if i < len(by_depth) else ""
        print(f"  {left} | {right}")
    w, tw = zip(*by_width, strict=True)
    n, tn = zip(*by_depth, strict=True)
    fw = [engine_flops(5, d) for d in w]
    fn = [engine_flops(N, 20) for N in n]
    print(
        f"  fitted exponent: width {slope(w, tw):.2f} (flops {slope(w, fw):.2f}), "
        f"depth {slope(n, tn):.2f} (flops {slope(n, fn):.2f})"
    )
    print_profile(profiles)


if __name__ == "__main__":
    main()
