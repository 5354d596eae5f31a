"""The numbers the figures show: data preparation in deeplinear.plotting."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from deeplinear import figures, plotting

DEPTHS = [2, 3, 4, 6, 8, 12, 16, 20]
#: family -> (init, dataset, critical step at N = 2, its per-layer factor, certified
#: fraction of it, per-layer factor of eta_cert, ACGH step at N = 2 or NaN).
FAMILIES = {
    "balanced |P|=1 / whitened": ("balanced", "white", 0.5, 0.93, 0.08, 0.9, 1e-6),
    "balanced |P|=0.1 / whitened": ("balanced", "white", 0.8, 0.95, 0.05, 0.9, np.nan),
    "gaussian s=0.1 / cond 10": ("gaussian", "cond10", 0.05, 0.9, 0.02, 0.5, np.nan),
    "gaussian s=0.5 / whitened": ("gaussian", "white", 0.3, 0.85, 0.01, 0.3, np.nan),
    "near_balanced xi=0.1 / cond 10": ("near_balanced", "cond10", 0.06, 0.92, 0.05, 0.8, np.nan),
    "orthogonal s=1 / whitened": ("orthogonal", "white", 0.5, 0.93, 0.07, 0.85, np.nan),
}


def fake_thresholds(seeds: int = 3, seed: int = 0) -> pd.DataFrame:
    """A realistic thresholds.csv (one row per start): critical steps decaying slowly with
    depth, certified bounds below them, some searches without a critical step, the ACGH
    bound finite for one family at small depths only."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (family, spec) in enumerate(FAMILIES.items()):
        init, dataset, crit2, q, frac, q_cert, acgh2 = spec
        for N in DEPTHS:
            for s in range(seeds):
                critical = crit2 * q ** (N - 2) * np.exp(0.1 * rng.standard_normal())
                if init == "gaussian" and N >= 16 and s == 0:
                    critical = np.nan  # the bisection found no converging step
                cert = frac * crit2 * q_cert ** (N - 2) * np.exp(0.05 * rng.standard_normal())
                balanced_s = 2 / (crit2 * q ** (N - 2) * 1.05)
                rows.append(
                    {
                        "run_id": f"threshold-{i}{N:02d}{s}",
                        "family": family,
                        "dataset": dataset,
                        "depth": N,
                        "widths": "-".join(["4"] * N + ["3"]),
                        "init": init,
                        "init_scale": 1.0,
                        "init_spread": 0.0,
                        "seed": s,
                        "eta_cert": cert,
                        "critical_multiple": critical / cert,
                        "critical_eta": critical,
                        "sharpness_reached": 1.5 / critical if np.isfinite(critical) else np.nan,
                        "eos_eta": 2 / balanced_s,
                        "acgh_eta": acgh2 * 0.5 ** (N - 2) if N <= 4 else np.nan,
                        "eta_adaptive_start": 0.2 * crit2 * N**-1.0 * np.exp(0.1 * rng.random()),
                        "eta_adaptive_end": 0.5 * crit2 * q ** (N - 2),
                        "eta_adaptive_free": 0.3 * crit2 * N**-1.0 * np.exp(0.1 * rng.random()),
                        "eps0": 1.0 + rng.random(),
                        "delta0": 0.0 if init == "balanced" else rng.random(),
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture
def thresholds() -> pd.DataFrame:
    return fake_thresholds()


def runs_table() -> pd.DataFrame:
    """Five runs of two depths: every outcome, two starts."""
    return pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d", "e"],
            "depth": [2, 2, 3, 3, 3],
            "init": ["balanced", "gaussian", "balanced", "balanced", "gaussian"],
            "init_scale": [0.4] * 5,
            "init_rank": [1, 4, 1, 1, 4],
            "init_xi": [0.0, 0.0, 0.01, 0.0, 0.0],
            "status": ["converged", "converged", "budget_exhausted", "diverged", "converged"],
            "global_optimal": [True, True, False, False, False],
            "rank_optimal": [True, True, False, False, True],
            "final_rank": [4, 4, 3, 4, 1],
            "target_rank": [4] * 5,
            "widths": ["5-5-4", "5-5-4", "5-5-5-4", "5-5-5-4", "5-5-5-4"],
            "step_multiple": [1.0, 1.0, 1.0, 10.0, 0.5],
            "optimal_loss": [0.5, 0.5, 0.25, 0.25, 0.25],
            "eta": [0.1, 0.1, 0.01, 0.1, 0.005],
        }
    )


def trajectories_table() -> pd.DataFrame:
    """Three logged iterations per run, plus a run ("z") that is not in the runs table."""
    ids = ["a", "b", "c", "d", "e", "z"]
    return pd.DataFrame(
        {
            "run_id": np.repeat(ids, 3),
            "iteration": np.tile([0, 10, 20], len(ids)),
            "loss": np.tile([2.5, 1.0, 0.5], len(ids)),
        }
    )


def test_merge_runs_keeps_every_trajectory_row_and_adds_the_named_columns():
    traj, runs = trajectories_table(), runs_table()
    merged = plotting.merge_runs(traj, runs, ["depth", "optimal_loss"])
    kept = traj[traj["run_id"].isin(runs["run_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(merged[traj.columns], kept)
    assert list(merged.columns) == [*traj.columns, "depth", "optimal_loss"]
    by_run = runs.set_index("run_id")
    assert (merged["depth"] == by_run.loc[merged["run_id"], "depth"].to_numpy()).all()


def test_merge_runs_names_a_missing_column_and_rejects_repeated_runs():
    with pytest.raises(KeyError, match="no_such_column"):
        plotting.merge_runs(trajectories_table(), runs_table(), ["no_such_column"])
    runs = pd.concat([runs_table(), runs_table().iloc[:1]])
    with pytest.raises(ValueError, match="run_id"):
        plotting.merge_runs(trajectories_table(), runs, ["depth"])


def test_loss_curves_excess_k_t_and_floor():
    merged = plotting.merge_runs(
        trajectories_table(), runs_table(), ["optimal_loss", "eta", "status"]
    )
    merged.loc[0, "loss"] = merged.loc[0, "optimal_loss"] - 1e-3  # a rounding residue below L*
    curves = plotting.loss_curves(merged)
    assert curves.loc[0, "excess"] == plotting.EXCESS_FLOOR
    expected = (merged["loss"] - merged["optimal_loss"]).clip(lower=plotting.EXCESS_FLOOR)
    np.testing.assert_allclose(curves["excess"][1:], expected[1:])
    assert (curves["excess"] > 0).all()  # every point has a place on the log axis
    assert (curves["k"] == merged["iteration"] + 1).all()
    np.testing.assert_allclose(curves["t"], merged["eta"] * merged["iteration"])
    # The axis cap sits `decades` above the largest initial excess, and caps diverged runs.
    top = plotting.excess_cap(curves, decades=4)
    assert top == pytest.approx(1e4 * (2.5 - 0.25))
    capped = plotting.cap_curves(curves.assign(excess=curves["excess"] * 1e6), top=10.0)
    assert capped["excess_shown"].max() == 10.0
    assert set(capped.loc[capped["diverged"], "run_id"]) == {"d"}


def test_drift_bound_is_guarantee_2():
    assert plotting.drift_bound(0.01, 3.0, 1.0) == pytest.approx(2 * 0.01 * 2.0)


def test_guarantee_ratios_on_a_hand_made_table():
    traj = pd.DataFrame(
        {
            "run_id": ["a"] * 4,
            "iteration": [0, 1, 2, 3],
            "excess_loss": [1.0, 0.5, 0.25, 1.0 - 1e-12],
            "max_weight_norm": [1.0, 1.5, 2.0, 2.0],
            "balance_drift": [0.0, 0.004, 0.006, 1e-15],
            "eta_bound": [0.01] * 4,
            "eps0": [1.0] * 4,
            "bound_weight_norm": [4.0] * 4,
        }
    )
    out = plotting.guarantee_ratios(traj)
    assert list(out["k"]) == [1, 2, 3]  # iteration 0 has no place on the log axis
    np.testing.assert_allclose(out["norm_ratio"], [1.5 / 4, 2.0 / 4, 2.0 / 4])
    # drift / (2 eta (eps0 - eps)): 0.004 / 0.01 and 0.006 / 0.015
    np.testing.assert_allclose(out["drift_ratio"].iloc[:2], [0.4, 0.4])
    # at k = 3 the bound 2e-14 is below the rounding floor: not drawn
    assert 2 * 0.01 * 1e-12 < plotting.ROUNDING_FLOOR
    assert np.isnan(out["drift_ratio"].iloc[2])
    # an adaptive run's drift guarantee is 2 eta_max (eps0 - eps), eta_max = bound_drift / 2 eps0
    adaptive = traj.assign(step_rule="adaptive", bound_drift=2 * 0.1 * 1.0)
    out = plotting.guarantee_ratios(adaptive)
    np.testing.assert_allclose(out["drift_ratio"].iloc[:2], [0.04, 0.04])
    constant = plotting.guarantee_ratios(adaptive.assign(step_rule="constant"))
    np.testing.assert_allclose(constant["drift_ratio"].iloc[:2], [0.4, 0.4])


def test_outcome_shares_sum_to_one_in_the_colour_order():
    runs = runs_table().assign(start=plotting.start_labels(runs_table()))
    shares = plotting.outcome_shares(runs, ["depth", "start"])
    assert list(shares.columns) == list(plotting.OUTCOME_COLORS)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    depth3 = shares.loc[3]
    assert depth3.loc["balanced s=0.4 r0=1", "diverged"] == 1.0
    assert depth3.loc["balanced s=0.4 r0=1 xi=0.01", "not converged / not rank-optimal"] == 1
    assert depth3.loc["gaussian s=0.4 r0=4", "rank-r optimum (r < target)"] == 1.0
    rows = plotting.outcome_shares(
        runs.assign(row=plotting.start_depth_labels(runs)), "row", ascending=False
    )
    assert list(rows.index) == sorted(rows.index, reverse=True)
    assert "balanced s=0.4 r0=1, N = 2" in rows.index
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)


def test_outcome_bars_draw_one_stacked_bar_per_row():
    runs = runs_table().assign(start=plotting.start_labels(runs_table()))
    shares = plotting.outcome_shares(runs, "start")
    fig, ax = plotting.plt.subplots()
    plotting.draw_outcome_bars(ax, shares)
    widths = np.array([p.get_width() for p in ax.patches]).reshape(shares.shape[1], -1)
    np.testing.assert_allclose(widths.sum(axis=0), 1.0)  # each bar reaches 1
    plotting.plt.close(fig)
    handles, labels = plotting.outcome_legend()
    assert labels == list(plotting.OUTCOME_COLORS) and len(handles) == 4


def test_rank_texts_and_converged_share():
    runs = runs_table()
    assert plotting.target_rank_text(runs[runs["depth"] == 3]) == "4 (hidden 5)"
    assert plotting.limit_ranks(runs) == [1, 3, 4]  # run d diverged at rank 4 ... and a, b
    share = plotting.converged_share(runs)
    assert list(share.index) == [3, 2]
    assert list(share.columns) == ["0.5", "1", "10"]
    assert share.loc[3, "1"] == 0.0 and share.loc[3, "0.5"] == 1.0 and share.loc[2, "1"] == 1.0


def test_power_law_prefactor_recovers_a_known_prefactor():
    rng = np.random.default_rng(1)
    xi = np.geomspace(1e-4, 1e-1, 12)
    t = 0.37 * xi**-2.0
    assert plotting.power_law_prefactor(xi, t, -2.0) == pytest.approx(0.37, rel=1e-12)
    noisy = t * np.exp(0.05 * rng.standard_normal(xi.size))
    assert plotting.power_law_prefactor(xi, noisy, -2.0) == pytest.approx(0.37, rel=0.05)
    assert np.isnan(plotting.power_law_prefactor([], [], -1.0))


def test_escape_points_and_curves():
    runs = pd.DataFrame(
        {
            "depth": [3, 3, 3, 3, 2],
            "init_xi": [1e-3, 1e-2, 1e-1, 0.0, 1e-2],
            "escape_level": [0.1, 0.1, 0.1, 0.1, np.nan],
            "escape_time": [np.nan, 50.0, 5.0, np.nan, 1.0],
            "eta": [0.01] * 5,
            "iterations": [20000] * 5,
        }
    )
    points = plotting.escape_points(runs)
    assert list(points["init_xi"]) == [1e-3, 1e-2, 1e-1]  # unperturbed, no level: out
    assert list(points["escaped"]) == [False, True, True]
    assert list(points["t"]) == [200.0, 50.0, 5.0]  # censored at eta * iterations
    fit = pd.Series({"depth": 3, "xi_min_fitted": 1e-2, "xi_max_fitted": 1e-1})
    curve = plotting.escape_curves(fit, points[points["escaped"]], n=5)
    np.testing.assert_allclose(curve["xi"][[0, -1]], [1e-2, 1e-1])
    np.testing.assert_allclose(curve["predicted"][[0, -1]], [50.0, 5.0])  # t = 0.5 / xi
    fit2 = pd.Series(
        {
            "depth": 2,
            "xi_min_fitted": 1e-3,
            "xi_max_fitted": 1e-1,
            "log_intercept": 1.0,
            "log_slope": 0.5,
            "power_prefactor": 2.0,
            "fitted_exponent": -0.25,
        }
    )
    curve2 = plotting.escape_curves(fit2, points, n=3)
    np.testing.assert_allclose(curve2["log"], 1.0 + 0.5 * np.log(1 / curve2["xi"]))
    np.testing.assert_allclose(curve2["power"], 2.0 * curve2["xi"] ** -0.25)


def test_phase_grid_and_heatmap_position():
    stats = pd.DataFrame(
        {
            "depth": [2, 2, 2],
            "step_multiple": [1.0, 1.0, 10.0],
            "frac_converged": [1.0, 0.5, 0.0],
            "frac_diverged": [0.0, 0.0, 1.0],
            "frac_budget_exhausted": [0.0, 0.5, 0.0],
        }
    )
    grid = plotting.phase_grid(stats)
    assert grid.loc[(2, 1.0), "frac_converged"] == 0.75
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    cols = [0.5, 1.0, 10.0, 100.0]
    assert plotting.heatmap_position(10.0, cols) == 2.5  # centre of cell 2
    assert plotting.heatmap_position(np.sqrt(10 * 100), cols) == pytest.approx(3.0)
    assert plotting.heatmap_edge_after(1.0, cols) == 2  # between the cells 1 and 10
    assert plotting.heatmap_edge_after(0.1, cols) == 0


def test_critical_multiples_without_and_with_families(thresholds):
    legacy = pd.DataFrame({"depth": [2, 2, 3], "critical_multiple": [10.0, 20.0, 30.0]})
    crit, note = plotting.critical_multiples(legacy)
    assert crit.to_dict() == {2: 15.0, 3: 30.0} and note == ""
    per_family = thresholds.groupby(["family", "dataset", "init", "depth"], as_index=False)[
        "critical_multiple"
    ].median()
    crit, note = plotting.critical_multiples(per_family, "cond10", ["gaussian"])
    expected = per_family.query("family == 'gaussian s=0.1 / cond 10'")
    assert crit.to_dict() == dict(
        zip(expected["depth"], expected["critical_multiple"], strict=True)
    )
    assert "gaussian s=0.1 / cond 10" in note
    crit, note = plotting.critical_multiples(per_family, "cond10", ["near_balanced"])
    assert "near_balanced xi=0.1 / cond 10" in note
    crit, note = plotting.critical_multiples(per_family, "cond10", ["balanced"])
    assert "gaussian s=0.1 / cond 10" in note  # no balanced family on cond10: first by name
    crit, note = plotting.critical_multiples(per_family, "synthetic", ["balanced"])
    assert crit.empty and "synthetic" in note
    crit, note = plotting.critical_multiples(per_family.drop(columns="dataset"), "white")
    assert crit.empty and "dataset" in note


def test_threshold_summary_medians_bands_and_sharpness(thresholds):
    summary = plotting.threshold_summary(thresholds)
    assert len(summary) == len(FAMILIES) * len(DEPTHS)
    assert (summary["n_starts"] == 3).all()
    row = summary.query("family == 'gaussian s=0.1 / cond 10' and depth == 20").iloc[0]
    starts = thresholds.query("family == 'gaussian s=0.1 / cond 10' and depth == 20")
    found = starts["critical_eta"].dropna()
    assert row["n_critical_found"] == 2 == len(found)
    assert row["critical_eta"] == pytest.approx(found.median())
    assert (row["critical_eta_min"], row["critical_eta_max"]) == (found.min(), found.max())
    assert row["eos_reached"] == pytest.approx(np.median(2 / starts["sharpness_reached"].dropna()))
    assert row["eta_cert_min"] <= row["eta_cert"] <= row["eta_cert_max"]
    assert np.isnan(row["acgh_eta"]) and row["n_acgh_defined"] == 0
    acgh = summary.query("family == 'balanced |P|=1 / whitened'").set_index("depth")["acgh_eta"]
    assert acgh[2] == pytest.approx(1e-6) and np.isnan(acgh[6])
    # an infinite ACGH value (assumption not met) counts as undefined
    inf = thresholds.assign(acgh_eta=np.inf)
    assert plotting.threshold_summary(inf)["n_acgh_defined"].eq(0).all()


def test_threshold_summary_adds_the_adaptive_steps_and_their_fits(thresholds):
    summary = plotting.threshold_summary(thresholds)
    starts = thresholds.query("family == 'orthogonal s=1 / whitened' and depth == 8")
    row = summary.query("family == 'orthogonal s=1 / whitened' and depth == 8").iloc[0]
    for c in plotting.ADAPTIVE_STEPS:
        assert row[c] == pytest.approx(starts[c].median())
        assert (row[f"{c}_min"], row[f"{c}_max"]) == (starts[c].min(), starts[c].max())
    fits = plotting.adaptive_fits(summary).set_index("family")
    assert set(fits.index) == set(FAMILIES)
    # eta_adaptive_free ~ N^-1 (with noise): power about -1, factor per layer above 0.8
    assert fits["power"].to_numpy() == pytest.approx(-1.0, abs=0.1)
    assert (fits["factor"] > 0.8).all() and (fits["factor"] < 1).all()
    older = plotting.threshold_summary(thresholds.drop(columns=list(plotting.ADAPTIVE_STEPS)))
    assert "eta_adaptive_start" not in older and plotting.adaptive_fits(older).empty


def test_per_layer_factor_and_reference(thresholds):
    N = np.array(DEPTHS, dtype=float)
    assert plotting.per_layer_factor(N, 0.3 * 0.8**N) == pytest.approx(0.8)
    assert plotting.depth_power(N, 5 / N**2) == pytest.approx(-2.0)
    assert np.isnan(plotting.per_layer_factor([2, 3], [0.1, np.nan]))
    assert np.isnan(plotting.depth_power([2, 2], [0.1, 0.2]))
    np.testing.assert_allclose(plotting.exponential_reference([2, 3, 5], 2, 0.4), [0.4, 0.2, 0.05])
    summary = plotting.threshold_summary(thresholds)
    ref = plotting.family_reference(summary)
    assert set(ref["family"]) == set(FAMILIES)
    fam = ref[ref["family"] == "balanced |P|=1 / whitened"]
    first = summary.query("family == 'balanced |P|=1 / whitened' and depth == 2")
    assert fam["reference"].iloc[0] == first["critical_eta"].iloc[0]
    assert list(fam["depth"]) == list(range(2, 21))
    np.testing.assert_allclose(fam["reference"].iloc[1] / fam["reference"].iloc[0], 0.5)
    assert fam["fitted_factor"].iloc[0] == pytest.approx(0.93, abs=0.02)


def test_panel_grid():
    assert plotting.panel_grid(1) == (1, 1)
    assert plotting.panel_grid(7) == (2, 4)
    assert plotting.panel_grid(6, max_cols=3) == (2, 3)


def test_family_reference_fits_a_polynomial_family():
    summary = pd.DataFrame(
        {"family": "f", "depth": DEPTHS, "critical_eta": [0.8 / N for N in DEPTHS]}
    )
    ref = plotting.family_reference(summary)
    assert ref["fitted_power"].iloc[0] == pytest.approx(-1.0)
    assert ref["reference"].iloc[0] == pytest.approx(0.4)
    none_found = summary.assign(critical_eta=np.nan)
    assert plotting.family_reference(none_found).empty


def test_of_experiment_filters_and_names_a_missing_experiment():
    table = pd.DataFrame({"experiment": ["rank", "escape", "rank"], "x": [1, 2, 3]})
    assert list(plotting.of_experiment(table, "rank")["x"]) == [1, 3]
    one = table.drop(columns="experiment")
    assert plotting.of_experiment(one, "rank") is one
    with pytest.raises(ValueError, match="'stepsize'"):
        plotting.of_experiment(table, "stepsize")


def test_save_freezes_the_layout_at_rounded_positions(tmp_path):
    # constrained layout's positions can differ in the last bit between processes; the
    # saved figure uses them rounded, so its bytes do not
    fig = plt.figure(figsize=(6, 5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2, 1])
    axes = [*top.subplots(1, 2), bottom.subplots()]
    for ax in axes:
        ax.plot([1, 2, 3], [3, 1, 2], label="x")
    top.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center")
    plotting.save(fig, tmp_path / "f.pdf", tmp_path / "f.png")
    scale = 10**plotting.LAYOUT_DECIMALS
    for ax in axes:
        bounds = np.asarray(ax.get_position().bounds) * scale
        assert np.allclose(bounds, np.round(bounds), rtol=0, atol=1e-6)
    points = bottom.bbox_relative.get_points() * scale
    assert np.allclose(points, np.round(points), rtol=0, atol=1e-6)
    first = (tmp_path / "f.pdf").read_bytes()
    plotting.save(fig, tmp_path / "g.pdf", tmp_path / "g.png")
    assert (tmp_path / "g.pdf").read_bytes() == first
    plt.close(fig)


def test_tanh_critical_summary_and_law_labels():
    rows = [
        {"activation": a, "depth": N, "seed": s, "critical_eta": c * (1 + 0.01 * s),
         "eta_lin": 0.1 / N}
        for a, f in (("between", lambda N: 0.4 / N**1.5), ("identity", lambda N: 0.5 * 0.5**N))
        for N in (2, 3, 4, 6)
        for s in range(3)
        for c in [f(N)]
    ]  # fmt: skip
    crit = pd.DataFrame(rows)
    crit.loc[0, "critical_eta"] = np.nan
    out = plotting.tanh_critical_summary(crit)
    first = out.iloc[0]
    assert (first["activation"], first["depth"], first["n_starts"]) == ("between", 2, 3)
    assert first["n_critical_found"] == 2
    assert first["critical_eta_min"] == pytest.approx(0.4 / 2**1.5 * 1.01)
    labels = plotting.tanh_law_labels(crit)
    assert labels["between"].startswith("between: power")
    assert labels["identity"].startswith("identity: exponential")


def test_published_markers_span_the_reading_precision():
    pts = pd.DataFrame({"epoch": [1000.0], "loss": [10.0], "epoch_factor": [1.5],
                        "loss_factor": [2.0]})  # fmt: skip
    m = plotting.published_markers(pts).iloc[0]
    assert (m["epoch_lo"], m["epoch_hi"]) == pytest.approx((1000 / 1.5, 1500))
    assert (m["loss_lo"], m["loss_hi"]) == pytest.approx((5.0, 20.0))


# --- The panels the notebooks draw, and the notebooks themselves ---------------------------

ROOT = Path(__file__).resolve().parents[1]
#: Code lines a figure notebook may hold (non-blank, non-comment lines of code cells).
NOTEBOOK_CODE_LINES = 60
#: Parameters every notebook takes besides its registry's tables and experiments.
COMMON_PARAMETERS = {"dpi", "context", "palette", "out_pdf", "out_png"}


def code_cells(name: str) -> list[str]:
    nb = json.loads((ROOT / f"notebooks/{name}.ipynb").read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def code_lines(sources: list[str]) -> int:
    lines = (line.strip() for src in sources for line in src.splitlines())
    return sum(1 for line in lines if line and not line.startswith("#"))


def test_code_lines_count_code_only():
    assert code_lines(["# head\nx = 1\n\n  # note\ny = f(x)  # why\n", "plt.show()"]) == 3


@pytest.mark.parametrize("fig", figures.FIGURES, ids=lambda f: f.name)
def test_every_notebook_draws_in_at_most_60_code_lines(fig):
    assert code_lines(code_cells(fig.name)) <= NOTEBOOK_CODE_LINES


@pytest.mark.parametrize("fig", figures.FIGURES, ids=lambda f: f.name)
def test_every_notebook_takes_exactly_the_parameters_its_registry_entry_binds(fig):
    cell = code_cells(fig.name)[0]
    names = {line.split("=")[0].strip() for line in cell.splitlines() if " = " in line}
    assert names == set(fig.tables) | set(fig.experiments) | COMMON_PARAMETERS


def test_the_notebooks_readme_table_is_the_registrys():
    readme = (ROOT / "notebooks/README.md").read_text()
    assert figures.parameters_table() in readme
    table = figures.parameters_table().splitlines()
    assert len(table) == 2 + len(figures.FIGURES)
    assert "| `fig6_threshold` | `thresholds` of the study | none |" in table
    assert "`escape_runs` (`runs`) of `escape_experiment`" in table[5]


def line_data(ax: plt.Axes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Label -> (x, y) of the labelled lines of ``ax``."""
    return {
        line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata()))
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }


def test_escape_panels_draw_the_points_and_each_depths_fitted_form():
    points = pd.DataFrame({"depth": [2, 2, 3, 3, 3], "init_xi": [1e-2, 1e-1, 1e-2, 1e-1, 1e-3],
                           "t": [3.0, 2.0, 50.0, 5.0, 80.0],
                           "escaped": [True, True, True, True, False]})  # fmt: skip
    fits = pd.DataFrame({"depth": [2, 3], "xi_min_fitted": [1e-2] * 2, "xi_max_fitted": [1e-1] * 2,
                         "log_intercept": [1.0, np.nan], "log_slope": [0.5, np.nan],
                         "power_prefactor": [2.0, np.nan], "fitted_exponent": [-0.2, -1.1],
                         "predicted_exponent": [0, -1]})  # fmt: skip
    fig, (ax2, ax3, ax_exp) = plt.subplots(1, 3)
    plotting.draw_escape_times(ax2, ax3, points, fits, "viridis")
    plotting.draw_escape_exponents(ax_exp, fits)
    (escaped2,) = ax2.collections
    np.testing.assert_allclose(escaped2.get_offsets(), [[1e-2, 3.0], [1e-1, 2.0]])
    _, censored3 = ax3.collections
    np.testing.assert_allclose(censored3.get_offsets(), [[1e-3, 80.0]])
    x, y = line_data(ax3)["predicted xi^-1 (fitted xi^-1.10)"]
    np.testing.assert_allclose(y, 0.5 / x)  # c xi^(2-N) through t = 0.5 / xi
    x, y = line_data(ax2)["fit a + b log(1/xi), b = 0.5"]
    np.testing.assert_allclose(y, 1.0 - 0.5 * np.log(x))
    assert (ax2.get_xscale(), ax3.get_yscale()) == ("log", "log")
    exps = line_data(ax_exp)
    assert exps["fitted power of xi"][1].tolist() == [-1.1]
    assert exps["predicted 2 - N"][1].tolist() == [-1]
    plt.close(fig)


def test_band_draws_the_median_over_the_range():
    rows = pd.DataFrame({"depth": [2, 3], "eta": [0.2, 0.1], "eta_min": [0.1, 0.05],
                         "eta_max": [0.3, 0.2]})  # fmt: skip
    fig, ax = plt.subplots()
    plotting.draw_band(ax, rows, "eta", "s-", "C1", "median")
    assert line_data(ax)["median"][1].tolist() == [0.2, 0.1]
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 0.05 and ys.max() == 0.3
    plt.close(fig)


def test_threshold_title_has_one_line_per_known_fit():
    rows = pd.DataFrame({"n_starts": [3, 3], "n_critical_found": [3, 1]})
    ref = pd.DataFrame({"fitted_factor": [0.931], "fitted_power": [-0.52]})
    adaptive = pd.DataFrame({"factor": [0.9], "power": [-1.0]}, index=["fam"])
    title = plotting.threshold_title("fam", ref, adaptive, rows)
    assert title.splitlines() == [
        "fam",
        "critical step fit: x0.93 per layer, N^-0.52",
        "adaptive step before cap: x0.90 per layer, N^-1.00",
        "no critical step found: 2 of 6 starts",
    ]
    found = rows.assign(n_critical_found=3)
    assert plotting.threshold_title("other", ref.iloc[:0], adaptive, found) == "other"


def test_label_grid_and_legend_handles():
    fig, axes = plt.subplots(2, 2, squeeze=False)
    for ax in axes.flat[:3]:
        ax.plot([0, 1], [0, 1], label="shared")
    axes[0, 0].plot([0, 1], [1, 0], label="first only")
    plotting.label_grid(axes, 3, "depth N", "eta")
    assert not axes[1, 1].axison and axes[1, 0].axison
    assert [ax.get_xlabel() for ax in axes.flat] == ["", "", "depth N", "depth N"]
    assert [ax.get_ylabel() for ax in axes.flat] == ["eta", "", "eta", ""]
    handles = plotting.legend_handles(axes)
    assert list(handles) == ["shared", "first only"]
    assert handles["shared"] is axes[0, 0].get_lines()[0]
    plt.close(fig)


def test_within_bound_shares_leave_out_the_runs_above_the_bound():
    share = plotting.within_bound_shares(runs_table())
    # run d (balanced r0=1, N = 3, multiple 10, diverged) is the only one above the bound
    assert "balanced s=0.4 r0=1, N = 3" not in share.index and len(share) == 4
    assert share.loc["balanced s=0.4 r0=1 xi=0.01, N = 3", "diverged"] == 0.0
    assert list(share.index) == sorted(share.index, reverse=True)
    np.testing.assert_allclose(share.sum(axis=1), 1.0)


def test_converged_heatmap_and_outcome_legend():
    fig, (ax, ax2) = plt.subplots(1, 2)
    share = plotting.converged_share(runs_table())
    plotting.draw_converged_heatmap(ax, share)
    cells = share.to_numpy().ravel()  # NaN: no run of that depth and multiple, no text
    assert [t.get_text() for t in ax.texts] == [f"{v:.0%}" for v in cells[~np.isnan(cells)]]
    assert ax.get_ylabel() == "depth N"
    plotting.outcome_legend_below(ax2)
    texts = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert texts == list(plotting.OUTCOME_COLORS)
    plt.close(fig)


def test_reading_title_and_the_readings_shown():
    search = pd.DataFrame({"reading": ["r1", "r2", "r3", "r4", "r5"], "rank": [1, 2, 3, 4, 5],
                           "score": [0.5, 0.7, 0.9, 1.234, 2.0], "score_N2": [0.1] * 5,
                           "experiment": ["", "", "", "authors", "width70"],
                           "dataset": ["d"] * 5})  # fmt: skip
    assert plotting.reading_title(search, "authors") == "reading r4: score 1.2, rank 4 of 5"
    assert plotting.reading_title(search, "nope") == "reading not in the search"
    shown = plotting.readings_shown(search, ["authors", "width70"])
    assert list(shown["reading"]) == ["r1", "r2", "r3", "r4", "r5"]
    assert list(shown.columns) == ["reading", "rank", "score", "score_N2", "experiment"]
    assert list(plotting.readings_shown(search, ["authors"], top=1)["reading"]) == ["r1", "r4"]


def test_tanh_panels_draw_curves_points_critical_steps_and_outcomes():
    traj = pd.DataFrame({"depth": [2, 2, 3, 3], "seed": [0] * 4, "epoch": [1.0, 10.0] * 2,
                         "loss": [5.0, 1.0, 6.0, 2.0],
                         "product_norm": [0.1, 1.0, 0.2, 1.1]})  # fmt: skip
    pts = pd.DataFrame({"depth": [2], "epoch": [10.0], "loss": [1.5], "epoch_factor": [2.0],
                        "loss_factor": [1.5]})  # fmt: skip
    pts = plotting.published_markers(pts)
    fig, axes = plt.subplots(2, 2)
    ax_loss, ax_norm, ax_crit, ax_out = axes.ravel()
    plotting.draw_tanh_curves(ax_loss, ax_norm, traj, pts, {2: "C0", 3: "C1"})
    assert [line.get_ydata().tolist() for line in ax_norm.get_lines()] == [[0.1, 1.0], [0.2, 1.1]]
    (bars,) = [c for c in ax_loss.containers if c.get_label() == "N = 2 (published: circles)"]
    xerr = bars.lines[2][0].get_segments()[0][:, 0]
    np.testing.assert_allclose(xerr, [5.0, 20.0])  # epoch / 2 to epoch * 2
    summary = pd.DataFrame({"activation": ["between"] * 2 + ["identity"] * 2,
                            "depth": [2, 3] * 2, "critical_eta": [0.3, 0.2, 0.25, 0.1],
                            "critical_eta_min": [0.2] * 4, "critical_eta_max": [0.4] * 4,
                            "eta_lin": [0.05, 0.03] * 2})  # fmt: skip
    plotting.draw_tanh_critical(ax_crit, summary, {"between": "power"})
    lines = line_data(ax_crit)
    assert lines["critical, tanh (between): power"][1].tolist() == [0.3, 0.2]
    assert lines["critical, linear (identity): "][1].tolist() == [0.25, 0.1]
    assert lines["linear certified step at the start"][1].tolist() == [0.05, 0.03]
    outcomes = pd.DataFrame({"activation": ["between"] * 4 + ["output"] * 2,
                             "depth": [2, 2, 3, 3, 2, 2], "multiple": [1.0, 8.0] * 3,
                             "converged": [1.0, 0.5, 1.0, 0.0, 1.0, 1.0],
                             "diverged": [0.0, 0.5, 0.0, 1.0, 0.0, 0.0]})  # fmt: skip
    plotting.draw_tanh_outcomes(ax_out, outcomes, "between", "viridis")
    lines = line_data(ax_out)
    assert lines["N = 3 converged"][1].tolist() == [1.0, 0.0]
    assert ax_out.get_title() == "tanh (between) sweep outcomes"
    dashed = [line.get_ydata().tolist() for line in ax_out.get_lines() if line.get_ls() == "--"]
    assert dashed == [[0.0, 0.5], [0.0, 1.0]]
    plt.close(fig)


def test_float32_curves_are_dashed_per_depth_and_start_with_one_legend_entry():
    """Figure 8's single-precision curves: one dashed line per depth and start in its
    depth's colour, one legend entry for all; an empty table draws nothing."""
    fig, ax = plt.subplots()
    curves = pd.DataFrame({"depth": [2, 2, 2, 2, 3, 3], "start": [0, 0, 1, 1, 0, 0],
                           "epoch": [1.0, 10.0] * 3, "loss": [1.0, 0.1] * 3})  # fmt: skip
    labels = {2: "N = 2", 3: "N = 3"}
    plotting.draw_float32_curves(ax, curves, labels, ["N = 2", "N = 3"], "viridis")
    dashed = [
        line for line in ax.get_lines() if line.get_linestyle() == "--" and line.get_xdata().size
    ]
    assert len(dashed) == 3
    assert dashed[0].get_color() == dashed[1].get_color() != dashed[2].get_color()
    assert ax.get_legend_handles_labels()[1] == ["dashed: float32"]
    fig2, ax2 = plt.subplots()
    plotting.draw_float32_curves(ax2, curves.iloc[:0], labels, ["N = 2", "N = 3"], "viridis")
    assert not ax2.get_lines()
    plt.close(fig)
    plt.close(fig2)
