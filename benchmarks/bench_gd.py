"""Benchmark of the batched GD engine (not a test; run with ``make bench``).

For each (depth N, width d, batch B) it prints, measured in one run on this machine:

- microseconds per run-iteration of the engine :func:`deeplinear.gd.run`;
- the same for the naive per-run numpy loop research code writes (it forms
  ``(P X - Y) X^T`` from the data at every step, m = 200) and the speed-up;
- the engine's achieved GFLOP/s (flops it must do: prefix products, two products with the
  Cholesky factor, backward pass) and its fraction of this machine's single-thread fp64
  GEMM rate on large matrices, measured in the same run;
- the rate of a bare batched ``np.matmul`` at the same width and batch, for reference.

Everything runs with one BLAS thread: ratios, not absolute times, are what to compare.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from deeplinear import data, gd, init, model

CASES = [(3, 10, 64), (5, 20, 64), (5, 64, 16), (10, 20, 64)]
M = 200


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


def measure(N: int, d: int, B: int, seconds: float) -> dict[str, float]:
    ds = data.synthetic(d, d, M, rank=d // 2, noise=0.1, seed=1)
    prob = model.precompute(ds.X, ds.Y)
    runs = [init.gaussian([d] * (N + 1), 1.0, seed) for seed in range(B)]
    W0 = init.stack(runs)
    eta = 0.1 / (prob.lam_max * N)  # small: no run diverges during the timing

    # Calibrate the iteration count so each side runs for about `seconds`.
    def engine(iters: int) -> float:
        t = time.perf_counter()
        gd.run(ds.X, ds.Y, W0, eta, iters, gtol=0, problem=prob, log_points=2)
        return time.perf_counter() - t

    iters = max(20, int(seconds / max(engine(20) / 20, 1e-9)))
    t_engine = min(engine(iters) for _ in range(2)) / (iters * B)
    naive_iters = max(20, iters // 10)

    def naive() -> float:
        t = time.perf_counter()
        naive_loop(runs[0], ds.X, ds.Y, eta, naive_iters)
        return (time.perf_counter() - t) / naive_iters

    t_naive = min(naive() for _ in range(3))  # best of three, like the engine's best of two
    return {
        "matmul_gflops": batched_matmul_rate(d, B),
        "engine_us": t_engine * 1e6,
        "naive_us": t_naive * 1e6,
        "gflops": engine_flops(N, d) / t_engine / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    args = parser.parse_args()
    with threadpool_limits(limits=1, user_api="blas"):
        peak = gemm_rate()
        rows = [(case, measure(*case, args.seconds)) for case in CASES]
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


if __name__ == "__main__":
    main()
