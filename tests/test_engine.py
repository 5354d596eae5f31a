"""The batched GD engine against a plain loop, its determinism, statuses and inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from deeplinear import data, gd, init, model, theory
from deeplinear.errors import InputError


def reference(W, X, Y, eta, iters, alpha=0.0, tau=1.0):
    """The plain per-run loop, for comparison."""
    for k in range(iters):
        step = eta / (1 + k / tau) ** alpha
        W = [w - step * g for w, g in zip(W, model.gradients(W, X, Y), strict=True)]
    return W


def problem(depth: int, seed: int = 0, hidden=None):
    """Data and four near-balanced starts; ``hidden`` widths default to ``depth - 1`` fives."""
    ds = data.synthetic(4, 3, 30, 3, 0.1, seed)
    widths = [4, *(hidden or [5] * (depth - 1)), 3]
    runs = [init.near_balanced(widths, 0.6, s, xi=0.05) for s in range(4)]
    eta = np.array([theory.certified_step_size(ds.X, ds.Y, W).eta for W in runs])
    return ds, runs, eta


@pytest.mark.parametrize(
    "depth, hidden",
    # depth >= 5 with one hidden width: the middle gradients come from one batched product
    [(1, None), (2, None), (3, None), (5, None), (8, None), (5, [5, 6, 5, 6])],
)
@pytest.mark.parametrize("schedule", ["constant", "decreasing"])
def test_engine_equals_the_plain_loop(depth, hidden, schedule):
    ds, runs, eta = problem(depth, hidden=hidden)
    res = gd.run(ds.X, ds.Y, init.stack(runs), eta, 300, schedule=schedule, tau=50, alpha=0.5)
    for b, W in enumerate(runs):
        alpha = 0.5 if schedule == "decreasing" else 0.0
        ref = reference(W, ds.X, ds.Y, eta[b], int(res.iterations[b]), alpha, 50)
        for wr, we in zip(ref, res.weights, strict=True):
            assert np.abs(we[b] - wr).max() <= 1e-12 * max(1.0, np.abs(wr).max())
    assert (res.decrease_failures == 0).all()


def test_same_inputs_give_bitwise_identical_results():
    ds, runs, eta = problem(3)
    a = gd.run(ds.X, ds.Y, init.stack(runs), eta * 3, 2000)
    b = gd.run(ds.X, ds.Y, init.stack(runs), eta * 3, 2000)
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert wa.tobytes() == wb.tobytes()
    assert a.trajectory.equals(b.trajectory)


@pytest.mark.parametrize("depth", [3, 6])
def test_a_run_does_not_depend_on_its_batch(depth):
    ds, runs, eta = problem(depth)
    mult = np.array([1.0, 500.0, 1.0, 0.5])  # run 1 diverges early: compaction happens
    together = gd.run(ds.X, ds.Y, init.stack(runs), eta * mult, 3000)
    for b in (0, 2, 3):
        alone = gd.run(ds.X, ds.Y, init.stack([runs[b]]), eta[b] * mult[b], 3000)
        assert alone.status[0] == together.status[b]
        assert alone.iterations[0] == together.iterations[b]
        for wa, wt in zip(alone.weights, together.weights, strict=True):
            assert np.abs(wa[0] - wt[b]).max() <= 1e-12 * np.abs(wt[b]).max()


def test_huge_step_diverges_quietly_at_the_right_iteration():
    ds, runs, eta = problem(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = gd.run(ds.X, ds.Y, init.stack(runs[:1]), eta[:1] * 1e3, 10_000)
    assert res.status[0] == gd.DIVERGED
    prob = model.precompute(ds.X, ds.Y)
    W, limit = runs[0], 1e8 * max(model.loss(runs[0], ds.X, ds.Y), prob.L_zero)
    with np.errstate(all="ignore"):
        for k in range(10_000):  # noqa: B007 (k is the answer)
            L = model.loss(W, ds.X, ds.Y)
            if not np.isfinite(L) or L > limit:
                break
            W = [
                w - eta[0] * 1e3 * g for w, g in zip(W, model.gradients(W, ds.X, ds.Y), strict=True)
            ]
    assert res.iterations[0] == k


def test_convergence_and_the_disabled_stop():
    ds, runs, eta = problem(2)
    res = gd.run(ds.X, ds.Y, init.stack(runs), eta, 200_000)
    assert (res.status == gd.CONVERGED).all()
    assert (res.grad_norm <= 1e-9 * res.initial_grad_norm * (1 + 1e-12)).any() or (
        res.excess_loss <= 1e-14 * res.initial_loss
    ).any()
    off = gd.run(ds.X, ds.Y, init.stack(runs), eta, 500, gtol=0)
    assert (off.status == gd.BUDGET).all() and (off.iterations == 500).all()


def test_a_runs_trajectory_does_not_depend_on_the_budgets_of_its_batch():
    """Each run logs on its own grid: a longer run beside it changes nothing it logs."""
    ds, runs, eta = problem(3)
    alone = gd.run(ds.X, ds.Y, init.stack(runs[:1]), eta[:1], 2000, gtol=0, log_points=50)
    budgets = np.array([2000, 20000, 500, 2000])
    together = gd.run(ds.X, ds.Y, init.stack(runs), eta, budgets, gtol=0, log_points=50)
    mine = together.trajectory.query("run == 0").reset_index(drop=True)
    assert mine.equals(alone.trajectory)
    for b, g in together.trajectory.groupby("run"):
        assert g["iteration"].iloc[-1] == budgets[b]
        assert g["iteration"].tolist() == gd.log_grid(int(budgets[b]), 50).tolist()


def test_logged_norms_drift_and_rank_are_exact_at_the_logged_iterates():
    ds, runs, eta = problem(3)
    res = gd.run(ds.X, ds.Y, init.stack(runs[:1]), 3 * eta[:1], 300, gtol=0, log_points=20)
    W = runs[0]
    D0 = [W[j + 1].T @ W[j + 1] - W[j] @ W[j].T for j in range(2)]
    for row in res.trajectory.itertuples():
        Wk = reference(runs[0], ds.X, ds.Y, 3 * eta[0], row.iteration)
        P = Wk[2] @ Wk[1] @ Wk[0]
        np.testing.assert_allclose(row.product_norm, np.linalg.norm(P, 2), rtol=1e-9)
        norms = max(np.linalg.norm(Wj, 2) for Wj in Wk)
        np.testing.assert_allclose(row.max_weight_norm, norms, rtol=1e-9)
        drift = max(
            np.linalg.norm(Wk[j + 1].T @ Wk[j + 1] - Wk[j] @ Wk[j].T - D0[j], 2) for j in range(2)
        )
        np.testing.assert_allclose(row.balance_drift, drift, rtol=1e-6, atol=1e-13)
        assert row.rank == 3


def test_trajectory_grid_and_columns():
    ds, runs, eta = problem(3)
    res = gd.run(ds.X, ds.Y, init.stack(runs), eta, 5000, gtol=0, log_points=100)
    t = res.trajectory
    assert list(t.columns) == gd.TRAJECTORY_COLUMNS
    for b, g in t.groupby("run"):
        it = g["iteration"].to_numpy()
        assert it[0] == 0 and it[-1] == res.iterations[b] == 5000
        assert 80 <= len(it) <= 101
        assert np.all(np.diff(it) > 0)
        ratios = it[2:][it[1:-1] > 20] / it[1:-1][it[1:-1] > 20]
        assert ratios.max() < 1.2  # geometric spacing
    prob = model.precompute(ds.X, ds.Y)
    np.testing.assert_allclose(t["loss"], prob.L_star + t["excess_loss"], rtol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eta": -1.0}, "eta"),
        ({"eta": np.nan}, "eta"),
        ({"schedule": "cyclic"}, "schedule"),
        ({"max_iter": -5}, "max_iter"),
        ({"eta": np.ones(3)}, "one entry per run"),
    ],
)
def test_bad_engine_inputs_raise(kwargs, message):
    ds, runs, eta = problem(2)
    args = {"eta": eta, "max_iter": 10} | kwargs
    with pytest.raises(InputError, match=message):
        gd.run(ds.X, ds.Y, init.stack(runs), args.pop("eta"), args.pop("max_iter"), **args)


def test_bad_weights_raise():
    ds, runs, eta = problem(2)
    W0 = init.stack(runs)
    W0[0][0, 0, 0] = np.inf
    with pytest.raises(InputError, match="non-finite"):
        gd.run(ds.X, ds.Y, W0, eta, 10)
    with pytest.raises(InputError, match="columns"):
        gd.run(
            ds.X,
            ds.Y,
            [w[:, :, :2] if i == 0 else w for i, w in enumerate(init.stack(runs))],
            eta,
            10,
        )


def test_bad_data_and_widths_raise():
    with pytest.raises(InputError, match="depth"):
        init.gaussian([3], 1.0, 0)
    with pytest.raises(InputError, match="width"):
        init.gaussian([3, 0, 2], 1.0, 0)
    with pytest.raises(InputError, match="depth"):
        model.loss([], np.ones((2, 3)), np.ones((1, 3)))
    X = np.random.default_rng(0).standard_normal((3, 10))
    with pytest.raises(InputError, match="non-finite"):
        data.validate(data.Dataset(np.where(X > 1, np.nan, X), np.ones((2, 10))))
    with pytest.raises(InputError, match="samples"):
        data.validate(data.Dataset(X, np.ones((2, 9))))
    with pytest.raises(InputError, match="condition number"):
        data.validate(data.Dataset(np.vstack([X, X[:1]]), np.ones((2, 10))))
    with pytest.raises(InputError, match="unknown init"):
        init.make("xavier", [2, 2], 1.0, 0)
    with pytest.raises(InputError, match="unknown dataset"):
        data.make("mnist")


def test_datasets_are_deterministic_and_digits_is_full_rank():
    a, b = data.synthetic(4, 3, 20, 2, 0.1, 5), data.synthetic(4, 3, 20, 2, 0.1, 5)
    assert a.X.tobytes() == b.X.tobytes() and a.Y.tobytes() == b.Y.tobytes()
    white = data.synthetic(4, 3, 20, 2, 0.1, 5, whiten=True)
    np.testing.assert_allclose(white.X @ white.X.T, 20 * np.eye(4), atol=1e-10)
    d = data.digits(m=400, seed=1)
    assert d.Y.shape == (10, 400) and np.all(d.Y.sum(axis=0) == 1)
    assert np.all(d.X.std(axis=1) > 0) and d.X.shape[0] == d.meta["d_x"]


def test_orthogonal_and_gaussian_inits():
    W = init.orthogonal([6, 4, 8], 0.5, 1)
    np.testing.assert_allclose(W[0] @ W[0].T, 0.25 * np.eye(4), atol=1e-12)
    np.testing.assert_allclose(W[1].T @ W[1], 0.25 * np.eye(4), atol=1e-12)
    G = init.gaussian([400, 300], 2.0, 3)[0]
    assert G.var() == pytest.approx(4.0 / 400, rel=0.02)


def test_writers_are_deterministic_and_leave_no_temporary_files(tmp_path):
    import pandas as pd

    from deeplinear import io

    arrays = {"X": np.arange(6.0).reshape(2, 3), "Y": np.ones((1, 3))}
    io.save_npz(tmp_path / "a.npz", **arrays)
    io.save_npz(tmp_path / "b.npz", **arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert np.array_equal(io.load_npz(tmp_path / "a.npz")["X"], arrays["X"])
    df = pd.DataFrame({"x": [0.1, 1 / 3], "s": ["a", "b"]})
    io.write_csv(df, tmp_path / "t.csv")
    assert pd.read_csv(tmp_path / "t.csv")["x"].tolist() == df["x"].tolist()  # full precision
    with pytest.raises(ZeroDivisionError), io.atomic_path(tmp_path / "t.csv") as tmp:
        tmp.write_text("half-written")
        raise ZeroDivisionError
    assert pd.read_csv(tmp_path / "t.csv").equals(df)  # the old file survives a failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "t.csv"]
