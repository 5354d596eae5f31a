"""Tanh networks (theory.md 16): gradients against finite differences and the linear model,
the batched GD's statuses and logs, the linear certified step on tanh weights, the reading
score, and the claim 6 rule on constructed tables (theory.md 13)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deeplinear import claims, data, gd, model, tanh, theory
from deeplinear.errors import InputError

S, NS, INC = claims.SUPPORTED, claims.NOT_SUPPORTED, claims.INCONCLUSIVE


def problem(d=(4, 5, 6, 3), m=7, seed=0, scale=0.6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(d[0], m))
    Y = 0.5 * rng.normal(size=(d[-1], m))
    W = [scale * rng.normal(size=(d[j + 1], d[j])) for j in range(len(d) - 1)]
    return X, Y, W


@pytest.mark.parametrize("activation", tanh.ACTIVATIONS)
def test_gradients_match_central_finite_differences(activation):
    X, Y, W = problem()
    L, G = tanh.loss_and_gradients(W, X, Y, activation)
    assert L == pytest.approx(tanh.loss(W, X, Y, activation), rel=1e-14)
    h = 1e-6
    for j, Wj in enumerate(W):
        for a, b in np.ndindex(Wj.shape):
            Wp = [w.copy() for w in W]
            Wm = [w.copy() for w in W]
            Wp[j][a, b] += h
            Wm[j][a, b] -= h
            fd = (tanh.loss(Wp, X, Y, activation) - tanh.loss(Wm, X, Y, activation)) / (2 * h)
            assert G[j][a, b] == pytest.approx(fd, rel=1e-6, abs=1e-7)


def test_identity_is_the_linear_network_and_the_activations_differ():
    X, Y, W = problem()
    L, G = tanh.loss_and_gradients(W, X, Y, tanh.IDENTITY)
    assert L == pytest.approx(model.loss(W, X, Y), rel=1e-13)
    for Gt, Gl in zip(G, model.gradients(W, X, Y), strict=True):
        np.testing.assert_allclose(Gt, Gl, rtol=1e-12, atol=1e-13)
    f_out, _ = tanh.forward(W, X, tanh.OUTPUT)
    np.testing.assert_allclose(f_out, np.tanh(model.product(W) @ X), rtol=1e-14)
    f_bet, _ = tanh.forward(W, X, tanh.BETWEEN)
    np.testing.assert_allclose(f_bet, W[2] @ np.tanh(W[1] @ np.tanh(W[0] @ X)), rtol=1e-14)


def test_batched_gradients_equal_the_single_run_ones():
    X, Y, W = problem()
    _, _, W2 = problem(seed=1)
    Ws = [np.stack([a, b]) for a, b in zip(W, W2, strict=True)]
    L, G = tanh.loss_and_gradients(Ws, X, Y, tanh.BETWEEN)
    for i, w in enumerate((W, W2)):
        Li, Gi = tanh.loss_and_gradients(w, X, Y, tanh.BETWEEN)
        assert L[i] == pytest.approx(Li, rel=1e-14)
        for a, b in zip(G, Gi, strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-12, atol=1e-14)


def test_unknown_activation_and_bad_steps_are_clear_errors():
    X, Y, W = problem()
    with pytest.raises(InputError, match="activation"):
        tanh.loss(W, X, Y, "relu")
    Ws = [w[None] for w in W]
    with pytest.raises(InputError, match="steps"):
        tanh.run(X, Y, Ws, -1.0, 10, tanh.BETWEEN)
    with pytest.raises(InputError, match="problem"):
        tanh.run(X, Y, Ws, 0.1, 10, tanh.BETWEEN, schedule="linear")


def small(seed=3):
    ds = data.synthetic(4, 4, 20, 4, 0.0, seed, whiten=True, x_scale=math.sqrt(2 / 20))
    W0 = tanh.starts({"kind": "balanced", "product_norm": 1.0, "spread": 0.0, "rank": None},
                     [4, 4, 4, 4], 7, [0, 1])  # fmt: skip
    return ds, W0


def test_gd_statuses_logs_and_batch_independence():
    ds, W0 = small()
    eta = np.array([0.1, 50.0])
    res = tanh.run(ds.X, ds.Y, W0, eta, [4000, 4000], tanh.BETWEEN, gtol=1e-3, log_points=20)
    assert list(res.status) == [gd.CONVERGED, gd.DIVERGED]
    assert res.loss[0] < 1e-3 * res.initial_loss[0] and res.decrease_violations[0] == 0
    t = res.trajectory
    assert list(t.columns) == tanh.TRAJECTORY_COLUMNS
    for b in (0, 1):
        it = t[t["run"] == b]["iteration"].to_numpy()
        assert it[0] == 0 and it[-1] == res.iterations[b] and np.all(np.diff(it) > 0)
    alone = tanh.run(ds.X, ds.Y, [w[:1] for w in W0], eta[:1], 4000, tanh.BETWEEN, gtol=1e-3,
                     log_points=20)  # fmt: skip
    assert alone.iterations[0] == res.iterations[0] and alone.loss[0] == res.loss[0]
    pd.testing.assert_frame_equal(alone.trajectory, t[t["run"] == 0].reset_index(drop=True))


def test_budget_and_a_saturated_output_is_not_converged():
    ds, W0 = small()
    res = tanh.run(ds.X, ds.Y, W0, 1e-4, 10, tanh.OUTPUT, gtol=1e-6, log_points=5)
    assert (res.status == gd.BUDGET).all() and (res.iterations == 10).all()
    # weights so large that tanh saturates: a vanishing gradient far from a minimizer
    big = [200.0 * w for w in W0]
    res = tanh.run(ds.X, ds.Y, big, 1e-6, 50, tanh.OUTPUT, gtol=1e-3, log_points=5)
    assert not (res.status == gd.CONVERGED).any()


def test_product_norm_and_layer_norm_are_logged_exactly():
    ds, W0 = small()
    res = tanh.run(ds.X, ds.Y, W0, 0.01, 0, tanh.BETWEEN, log_points=5)
    row = res.trajectory[res.trajectory["run"] == 1].iloc[0]
    W = [w[1] for w in W0]
    assert row["product_norm"] == pytest.approx(np.linalg.norm(model.product(W), 2), rel=1e-12)
    assert row["max_weight_norm"] == pytest.approx(max(np.linalg.norm(w, 2) for w in W))


def test_linear_step_is_the_adaptive_step_of_the_linear_network():
    ds, W0 = small()
    prob = model.precompute(ds.X, ds.Y)
    cap = tanh.linear_cap(W0, prob)
    eta = tanh.linear_step(W0, prob, cap)
    for i in range(2):
        W = [w[i] for w in W0]
        assert eta[i] == pytest.approx(theory.adaptive_step_at(prob, W, cap[i]), rel=1e-12)
    # unbalanced starts: Lemma B' (the norms of the partial products), not Lemma B
    W0 = tanh.starts({"kind": "gaussian", "scale": 0.6}, [4, 4, 4, 4, 4], 7, [0, 1, 2])
    cap = tanh.linear_cap(W0, prob)
    eta = tanh.linear_step(W0, prob, cap)
    for i in range(3):
        W = [w[i] for w in W0]
        assert eta[i] == pytest.approx(theory.adaptive_step_at(prob, W, cap[i]), rel=1e-12)
    g = np.stack([np.linalg.norm(G, axis=(-2, -1)) for G in model.gradients_from_residual(
        W0, model.residual_correlation(model.product(W0), prob))], axis=-1)  # fmt: skip
    eps = model.excess_loss(model.product(W0), prob)
    crude = theory.adaptive_step(tanh.spectral_norms(W0), g, eps, prob.lam_max, cap)
    assert (eta >= crude).all() and (eta > 1.01 * crude).any()


def test_linear_schedule_on_the_identity_network_never_violates_decrease():
    ds, W0 = small()
    prob = model.precompute(ds.X, ds.Y)
    res = tanh.run(ds.X, ds.Y, W0, tanh.linear_cap(W0, prob), 300, tanh.IDENTITY,
                   schedule="linear", problem=prob, log_points=5)  # fmt: skip
    assert (res.decrease_violations == 0).all() and (res.eta_smallest > 0).all()


def test_a_step_too_large_counts_decrease_violations():
    ds, W0 = small()
    res = tanh.run(ds.X, ds.Y, W0, 3.0, 20, tanh.IDENTITY, gtol=0.0, log_points=5)
    assert (res.decrease_violations > 0).all()


def test_bracket_from_sweep_outcomes():
    m = np.array([0.3, 1, 3, 10, 30])
    assert tanh.bracket(m, np.array([1, 1, 1, 0, 0], bool)) == (3.0, 10.0)
    assert tanh.bracket(m, np.array([0, 1, 1, 0, 1], bool)) == (3.0, 10.0)
    assert tanh.bracket(m, np.array([1, 1, 1, 1, 1], bool)) == (30.0, math.inf)
    assert all(math.isnan(x) for x in tanh.bracket(m, np.zeros(5, bool)))


# --- the reading score ------------------------------------------------------------------------

POINT = {"depth": 2, "epoch": 1000.0, "loss": 10.0, "feature": "descent", "bound": "point",
         "epoch_factor": 1.5, "loss_factor": 2.0, "source": "s"}  # fmt: skip


def test_point_distance_in_units_of_reading_precision():
    p = pd.Series(POINT)
    assert tanh.point_distance([1, 1e6], [10.0, 10.0], p) == pytest.approx(0.0, abs=1e-12)
    assert tanh.point_distance([1, 1e6], [20.0, 20.0], p) == pytest.approx(1.0)
    assert tanh.point_distance([1, 1e6], [40.0, 40.0], p) == pytest.approx(2.0)
    # a vertical drop 1.5x later in epochs is one precision away
    assert tanh.point_distance([1, 1500, 1500, 1e6], [100, 100, 0.1, 0.1], p) == pytest.approx(1)


def test_score_is_mean_squared_distance_and_nan_without_a_depth():
    pts = pd.DataFrame([POINT, POINT | {"depth": 3, "loss": 20.0}])
    curves = pd.DataFrame({"depth": [2, 2, 3, 3], "epoch": [1, 1e6] * 2, "loss": [10.0] * 4})
    out = tanh.score(curves, pts)
    assert out["score"] == pytest.approx(0.5) and out["score_N3"] == pytest.approx(1.0)
    assert math.isnan(tanh.score(curves[curves["depth"] == 2], pts)["score"])


def test_readings_table_ranks_by_score(tmp_path):
    pts = pd.DataFrame([POINT])
    curves = pd.concat([
        pd.DataFrame({"reading": "a", "depth": 2, "epoch": [1, 1e6], "loss": [40.0, 40.0]}),
        pd.DataFrame({"reading": "b", "depth": 2, "epoch": [1, 1e6], "loss": [10.0, 10.0]}),
    ])  # fmt: skip
    readings = [{"name": n, "dataset": "d", "activation": "between", "init": {"kind": "gaussian"}}
                for n in ("a", "b")]  # fmt: skip
    table = tanh.readings_table(curves, pts, readings)
    assert list(table["reading"]) == ["b", "a"] and list(table["best"]) == [True, False]
    assert tanh.chosen(table, readings)["name"] == "b"


def test_published_points_file_reads_and_bad_rows_name_the_line(tmp_path):
    pts = tanh.read_published("data/authors_tanh_published_loss.csv")
    assert set(pts["depth"]) == {2, 3, 5} and (pts["epoch_factor"] == 1.5).all()
    assert (pts["loss_factor"] == 2).all() and pts["source"].str.contains("issue 23").all()
    bad = pd.DataFrame([POINT, POINT | {"loss": -1.0}])
    path = tmp_path / "p.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match="line 3"):
        tanh.read_published(path)


def test_config_check_names_the_key():
    cfg = {"readings": [{"name": "a", "dataset": "nope"}], "sweep": {"dataset": "x"}}
    with pytest.raises(InputError, match=r"tanh.readings.0.dataset"):
        tanh.check_config(cfg, {"x": None})
    cfg = {"readings": [{"name": "a", "dataset": "x"}] * 2, "sweep": {"dataset": "x"}}
    with pytest.raises(InputError, match="twice"):
        tanh.check_config(cfg, {"x": None})


# --- claim 6 on constructed tables (theory.md 13) ---------------------------------------------

MULTIPLES = (0.3, 1.0, 3.0, 10.0, 100.0)


def sweep_table(crit_multiple: float = 5.0, depths=(2, 3, 4, 6), seeds=3, **overrides):
    """Sweep rows: converged at multiples <= ``crit_multiple``, diverged above."""
    rows = []
    for N in depths:
        for s in range(seeds):
            for m in MULTIPLES:
                ok = m <= crit_multiple
                rows.append({"depth": N, "seed": s, "multiple": m, "budget_capped": False,
                             "status": gd.CONVERGED if ok else gd.DIVERGED})  # fmt: skip
    table = pd.DataFrame(rows)
    for k, v in overrides.items():
        table[k] = v
    return table


def critical_table(law, depths=(2, 3, 4, 6, 8), seeds=3, activation="between"):
    rows = []
    for N in depths:
        for s in range(seeds):
            for act, f in ((activation, law), ("identity", lambda n: 0.5 / n)):
                rows.append({"activation": act, "depth": N, "seed": s,
                             "critical_eta": f(N) * (1 + 0.01 * s)})  # fmt: skip
    return pd.DataFrame(rows)


def schedule_table(violations=(0, 0, 0)) -> pd.DataFrame:
    """The linear certified schedule on the tanh weights: decrease violations per start."""
    return pd.DataFrame(
        {"activation": "between", "depth": 2, "seed": range(len(violations)),
         "decrease_violations": list(violations)}
    )  # fmt: skip


def power(N):
    return 0.4 / N**1.5


def test_claim6_supported_on_a_power_law_with_convergence_below_and_failure_above():
    row = claims.claim6(sweep_table(), critical_table(power), schedule_table())
    assert row["verdict"] == S
    assert "0 decrease violations" in row["measured"]
    assert row["headline"].startswith("A holds (100% of 24 runs within the linear step")
    # the violations are reported, not judged
    row = claims.claim6(sweep_table(), critical_table(power), schedule_table((0, 3, 4)))
    assert row["verdict"] == S and "7 decrease violations" in row["measured"]


def test_claim6_not_supported_when_the_critical_step_decays_exponentially():
    row = claims.claim6(sweep_table(), critical_table(lambda N: 0.5 * 0.3**N))
    assert row["verdict"] == NS and "C fails" in row["measured"]


def test_claim6_not_supported_when_runs_within_the_linear_step_fail():
    sweep = sweep_table()
    sweep.loc[sweep["multiple"] == 0.3, "status"] = gd.BUDGET
    assert claims.claim6(sweep, critical_table(power))["verdict"] == NS
    sweep = sweep_table()
    sweep.loc[0, "status"] = gd.DIVERGED  # one run at multiple 0.3 diverged
    assert claims.claim6(sweep, critical_table(power))["verdict"] == NS


def test_claim6_not_supported_when_nothing_fails_even_at_the_top():
    row = claims.claim6(sweep_table(crit_multiple=1e9), critical_table(power))
    assert row["verdict"] == NS and "B fails" in row["measured"]


def test_claim6_a_critical_step_growing_exponentially_is_not_exponentially_small():
    row = claims.claim6(sweep_table(), critical_table(lambda N: 0.01 * 1.8**N))
    assert row["verdict"] == S


def test_claim6_inconclusive_for_missing_evidence():
    # too few runs within the linear step (budget capped)
    capped = sweep_table(budget_capped=True)
    assert claims.claim6(capped, critical_table(power))["verdict"] == INC
    # critical steps at too few depths
    few = critical_table(power, depths=(2, 3))
    assert claims.claim6(sweep_table(), few)["verdict"] == INC
    # at one depth no start converged within the linear step (stalled, budget capped): the
    # onset of failure there is not observed
    sweep = sweep_table()
    low = (sweep["depth"] == 2) & (sweep["multiple"] <= 1)
    sweep.loc[low, "status"] = gd.BUDGET
    sweep.loc[low, "budget_capped"] = True
    row = claims.claim6(sweep, critical_table(power))
    assert row["verdict"] == INC and "B unknown" in row["measured"]
    # a config without tanh: the registry's claim 6 has no tables
    (claim6,) = [c for c in claims.CLAIMS if c.number == 6]
    row = claims.verdict_row(claim6, {})
    assert row["verdict"] == INC and row["claim"] == 6 and row["n_runs"] == 0


def test_claim6_missing_column_is_named():
    with pytest.raises(InputError, match="budget_capped"):
        claims.claim6(sweep_table().drop(columns="budget_capped"), critical_table(power))
    with pytest.raises(InputError, match="decrease_violations"):
        claims.claim6(sweep_table(), critical_table(power), schedule_table().iloc[:, :3])
