"""The claim rules of the registry (theory.md 13): each can come out against its claim, and
missing evidence gives "inconclusive", never "supported"."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeplinear import claims, stats, tables
from deeplinear.errors import InputError

S, NS, INC = claims.SUPPORTED, claims.NOT_SUPPORTED, claims.INCONCLUSIVE

RUN = {
    "experiment": "x", "dataset": "d", "depth": 2, "widths": "4-4-3", "init": "gaussian",
    "init_scale": 1.0, "init_rank": 3, "init_xi": 0.0, "init_spread": 0.1,
    "step_rule": "constant", "step_multiple": 1.0, "step_unit": "certified", "eta_bound": 1.0,
    "eos_eta": 100.0,
    "status": "converged", "decrease_failures": 0, "drift_failures": 0, "norm_failures": 0,
    "budget_capped": False, "gtol": 1e-9, "global_optimal": True, "rank_optimal": True,
    "final_rank": 3,
    "escape_level": np.nan, "escape_time": np.nan,
}  # fmt: skip


def runs(n: int, **columns) -> pd.DataFrame:
    """``n`` runs (seeds 0..n-1) with the defaults of :data:`RUN`, overridden by ``columns``;
    ``eta`` is ``step_multiple * eta_bound`` and ``eos_eta_max`` is ``eos_eta`` unless given."""
    table = pd.DataFrame({"seed": np.arange(n)} | RUN | columns, index=range(n))
    table["run_id"] = [f"r{i}" for i in range(n)]
    if "eta" not in columns:
        table["eta"] = table["step_multiple"] * table["eta_bound"]
    if "eos_eta_max" not in columns:
        table["eos_eta_max"] = table["eos_eta"]
    return table


def escape_runs(times_of_xi, depth: int, levels: int = 7, per_level: int = 3) -> pd.DataFrame:
    """Perturbed rank-deficient starts (rank 1 < 3) at ``levels`` values of xi."""
    xi = np.repeat(np.geomspace(1e-4, 1e-1, levels), per_level)
    noise = np.exp(0.05 * np.random.default_rng(2).standard_normal(xi.size))
    return runs(
        xi.size, depth=depth, init="near_balanced", init_rank=1, init_xi=xi,
        seed=np.tile(np.arange(per_level), levels), escape_level=1.0,
        escape_time=times_of_xi(xi) * noise, final_rank=3,
    )  # fmt: skip


def log_law(xi):
    return 0.02 + 0.01 * np.log(1 / xi)


# --- claim 1 -------------------------------------------------------------------------------


def test_claim1_supported_when_the_guarantees_hold_and_the_runs_converge():
    assert claims.claim1(runs(30))["verdict"] == S


@pytest.mark.parametrize(
    "broken",
    [
        {"decrease_failures": 1},
        {"drift_failures": 2},
        {"norm_failures": 1},
        {"status": "diverged"},
    ],
    ids=["decrease", "drift", "norm", "diverged"],
)
def test_claim1_fails_on_a_single_broken_guarantee(broken):
    t = runs(30)
    for k, v in broken.items():
        t.loc[7, k] = v
    assert claims.claim1(t)["verdict"] == NS
    t["step_multiple"] = 2.0  # the same runs above the bound: not evidence for claim 1
    assert claims.claim1(pd.concat([runs(30), t]))["verdict"] == S


def test_claim1_fails_when_runs_with_their_full_flow_time_did_not_converge():
    assert claims.claim1(runs(30, status="budget_exhausted"))["verdict"] == NS
    t = runs(50)
    t.loc[:2, "status"] = "budget_exhausted"  # 47 / 50 = 94% < 95%
    assert claims.claim1(t)["verdict"] == NS
    t.loc[:2, "budget_capped"] = True  # their budget was cut: left out, 47 / 47
    assert claims.claim1(t)["verdict"] == S


def test_claim1_leaves_out_runs_without_a_convergence_stop_only():
    # gtol = 0 (a fixed-budget replication): such a run ends budget_exhausted by design
    t = runs(50)
    t.loc[:2, ["status", "gtol"]] = ["budget_exhausted", 0.0]
    row = claims.claim1(t)
    assert row["verdict"] == S and "3 more without a convergence stop" in row["measured"]
    t.loc[3:5, "status"] = "budget_exhausted"  # with a stop and not converged: 44 / 47
    assert claims.claim1(t)["verdict"] == NS
    broken = runs(30, gtol=0.0, status="budget_exhausted")
    broken.loc[4, "norm_failures"] = 1  # the guarantees are still checked on every run
    assert claims.claim1(pd.concat([runs(30), broken]))["verdict"] == NS
    assert claims.claim1(runs(30, gtol=0.0, status="budget_exhausted"))["verdict"] == INC


def test_claim1_leaves_out_starts_on_the_balanced_rank_deficient_set_only():
    plateau = runs(10, init="near_balanced", init_rank=1, status="budget_exhausted")
    assert claims.claim1(pd.concat([runs(30), plateau]))["verdict"] == S
    full_rank = plateau.assign(init_rank=3)  # a full-rank near-balanced start must converge
    assert claims.claim1(pd.concat([runs(30), full_rank]))["verdict"] == NS


def test_claim1_is_inconclusive_without_enough_eligible_runs():
    assert claims.claim1(runs(30, step_multiple=2.0))["verdict"] == INC
    assert claims.claim1(runs(30, budget_capped=True))["verdict"] == INC
    assert claims.claim1(runs(19))["verdict"] == INC
    row = claims.claim1(runs(0))
    assert row["verdict"] == INC and row["n_runs"] == 0


def test_claim1_takes_an_absolute_step_in_units_of_the_run_s_certified_step():
    # step_multiple 1 of an absolute step is eta = 1: three times this run's bound
    above = runs(30, step_unit="absolute", step_multiple=1.0, eta=3.0, eta_bound=1.0)
    assert claims.claim1(above)["verdict"] == INC  # no run within the bound
    above.loc[3, "status"] = "diverged"  # above the bound: not evidence against claim 1
    assert claims.claim1(pd.concat([runs(30), above]))["verdict"] == S
    within = runs(30, step_unit="absolute", step_multiple=1.0, eta=0.5, eta_bound=1.0)
    within.loc[3, "status"] = "diverged"  # within the bound by its step: claim 1 fails
    assert claims.claim1(within)["verdict"] == NS
    with pytest.raises(InputError, match="step_unit"):
        claims.claim1(runs(30).drop(columns="step_unit"))


def test_claim1_reads_budget_capped_as_written_to_csv():
    t = runs(30, budget_capped="True", status="budget_exhausted")
    assert claims.claim1(t)["verdict"] == INC


# --- claim 2 -------------------------------------------------------------------------------


def thresholds(eta_of_depth, critical_of_depth=None, family="balanced s=1 / whitened",
               delta0=0.0, depths=range(2, 21), seeds=3, noise=0.05, rng_seed=0,
               cert_of_depth=None):  # fmt: skip
    """One row per start of the threshold search, with lognormal seed noise:
    ``eta_adaptive_free`` follows ``eta_of_depth`` (the judged step), ``eta_adaptive_start``
    (capped) a third of it, ``eta_adaptive_end`` twice it,
    the critical step ``critical_of_depth`` (default 5 times it) and ``eta_cert``
    ``cert_of_depth`` (default a tenth of it)."""
    critical_of_depth = critical_of_depth or (lambda N: 5 * eta_of_depth(N))
    cert_of_depth = cert_of_depth or (lambda N: 0.1 * eta_of_depth(N))
    rng = np.random.default_rng(rng_seed)
    rows = []
    for N in depths:
        for s in range(seeds):
            z = np.exp(noise * rng.standard_normal(5))
            rows.append(
                {
                    "run_id": f"{family}-{N}-{s}", "family": family, "depth": N, "seed": s,
                    "eta_adaptive_free": eta_of_depth(N) * z[0],
                    "eta_adaptive_start": eta_of_depth(N) * z[4] / 3,
                    "eta_adaptive_end": 2 * eta_of_depth(N) * z[1],
                    "critical_eta": critical_of_depth(N) * z[2],
                    "eta_cert": cert_of_depth(N) * z[3], "delta0": delta0,
                }
            )  # fmt: skip
    t = pd.DataFrame(rows)
    t["critical_multiple"] = t["critical_eta"] / t["eta_cert"]
    t["eos_eta"] = 10 * t["critical_eta"]
    return t


def test_claim2_supported_by_a_power_law_in_the_depth():
    row = claims.claim2(thresholds(lambda N: 0.1 * N**-2.0))
    assert row["verdict"] == S and row["n_runs"] == 57


def test_claim2_not_supported_by_an_exponential_decay_of_0_8_per_layer():
    assert claims.claim2(thresholds(lambda N: 0.8**N))["verdict"] == NS


def test_claim2_judges_the_adaptive_step_not_the_constant_bound_or_the_critical_step():
    """An exponentially small constant bound (the unbalanced starts of theory.md 6) or
    critical step is reported, not judged: the claim is about the certified schedule."""
    t = thresholds(lambda N: N**-1.0, lambda N: 0.8**N, cert_of_depth=lambda N: 0.05**N)
    assert claims.claim2(t)["verdict"] == S
    fits = claims.claim2_fits(t)
    law = fits.set_index("column")["decision"]
    assert law["eta_cert"] == law["critical_eta"] == "exponential"
    assert law["eta_adaptive_free"] == "power"


@settings(max_examples=15, deadline=None)
@given(p=st.floats(0.3, 4.0), seed=st.integers(0, 10**6))
def test_claim2_any_power_law_is_supported(p, seed):
    assert claims.claim2(thresholds(lambda N: N**-p, rng_seed=seed))["verdict"] == S


@settings(max_examples=15, deadline=None)
@given(q=st.floats(0.3, 0.9), seed=st.integers(0, 10**6))
def test_claim2_any_exponential_below_0_9_per_layer_is_not_supported(q, seed):
    assert claims.claim2(thresholds(lambda N: q**N, rng_seed=seed))["verdict"] == NS


def test_claim2_fails_when_the_adaptive_step_decays_exponentially_in_an_unbalanced_family():
    """Every family is judged: balanced ones following a power law do not save the claim
    when the certified step of an unbalanced family shrinks by a factor per layer."""
    near = thresholds(lambda N: 0.02 * 0.6**N, family="near-balanced xi=0.1", delta0=0.3)
    both = pd.concat([thresholds(lambda N: N**-1.0), near], ignore_index=True)
    assert claims.claim2(both)["verdict"] == NS
    fits = claims.claim2_fits(both)
    need = ["family", "balanced", "column", "n_depths", "depths", "p", "p_lo", "p_hi", "q",
            "q_lo", "q_hi", "log_rss_ratio", "log_rss_ratio_lo", "log_rss_ratio_hi",
            "decision"]  # fmt: skip
    assert set(need) <= set(fits.columns) and len(fits) == 10
    assert list(fits["balanced"]) == [True] * 5 + [False] * 5
    row = fits[(fits["family"] == "near-balanced xi=0.1") & (fits["column"] == "eta_adaptive_free")]
    assert row["decision"].item() == "exponential" and row["q"].item() == pytest.approx(
        0.6, rel=0.05
    )
    assert claims.claim2(near)["verdict"] == NS  # judged without a balanced family too
    ok = thresholds(lambda N: N**-1.5, family="near-balanced xi=0.1", delta0=0.3)
    assert claims.claim2(pd.concat([thresholds(lambda N: N**-1.0), ok]))["verdict"] == S


def test_claim2_passes_a_family_whose_step_grows_with_the_depth():
    """Small starts sit where the curvature is tiny: a step growing with ``N`` (up to its
    cap) is no exponential decay."""
    grows = thresholds(lambda N: 1e-3 * 1.2**N, family="gaussian s=0.1", delta0=0.3)
    fits = claims.claim2_fits(grows).set_index("column")
    assert fits.loc["eta_adaptive_free", "decision"] == "exponential"
    assert fits.loc["eta_adaptive_free", "q"] > 1
    assert claims.claim2(grows)["verdict"] == S


def test_claim2_is_inconclusive_on_missing_or_undecided_evidence():
    t = thresholds(lambda N: N**-1.0)
    assert claims.claim2(t.iloc[:0])["verdict"] == INC
    assert claims.claim2(t.assign(eta_adaptive_free=np.nan))["verdict"] == INC
    assert claims.claim2(t[t["depth"] <= 3])["verdict"] == INC
    assert claims.claim2(t[t["seed"] == 0])["verdict"] == INC  # one start per depth
    flat = thresholds(lambda N: 1.0 + 0 * N)
    assert claims.claim2(flat)["verdict"] == INC


def test_claim2_fits_are_deterministic():
    t = thresholds(lambda N: N**-1.0, noise=0.3)
    pd.testing.assert_frame_equal(claims.claim2_fits(t), claims.claim2_fits(t))


# --- claims 3 and 4 ------------------------------------------------------------------------


def test_claim3_supported_with_global_minima_and_log_escape():
    assert claims.claim3(pd.concat([runs(30), escape_runs(log_law, 2)]))["verdict"] == S


def test_claim3_not_supported_by_escape_times_following_a_power_of_xi():
    t = pd.concat([runs(30), escape_runs(lambda x: 0.3 * x**-1.0, 2)])
    assert claims.claim3(t)["verdict"] == NS


def test_claim3_and_claim4_are_inconclusive_without_escape_data():
    assert claims.claim3(runs(30))["verdict"] == INC
    assert claims.claim4(runs(30, depth=3, widths="4-4-4-3"))["verdict"] == INC
    thin = escape_runs(log_law, 2, levels=4)  # fewer than 5 levels
    assert claims.claim3(pd.concat([runs(30), thin]))["verdict"] == INC


def test_claim3_part_a_tells_wrong_limits_from_unfinished_runs():
    escape = escape_runs(log_law, 2)
    wrong = runs(30)
    wrong.loc[:1, "global_optimal"] = False  # converged, but not to the global minimum
    assert claims.claim3(pd.concat([wrong, escape]))["verdict"] == NS
    unfinished = wrong.assign(status=["budget_exhausted"] * 2 + ["converged"] * 28)
    assert claims.claim3(pd.concat([unfinished, escape]))["verdict"] == INC
    exact = runs(5, init="balanced", init_rank=1, global_optimal=False, final_rank=1)
    assert claims.claim3(pd.concat([runs(30), exact, escape]))["verdict"] == S
    assert claims.claim3(pd.concat([runs(5), escape.iloc[:10]]))["verdict"] == INC


def n3(n: int = 30, **columns) -> pd.DataFrame:
    return runs(n, depth=3, widths="4-4-4-3", **columns)


def escape3(times_of_xi) -> pd.DataFrame:
    return escape_runs(times_of_xi, 3).assign(widths="4-4-4-3")


def test_claim4_supported_with_rank_optima_and_the_predicted_escape_power():
    assert claims.claim4(pd.concat([n3(), escape3(lambda x: 0.3 / x)]))["verdict"] == S


@pytest.mark.parametrize(
    "escape",
    [lambda x: 0.3 * x**-2.0, log_law],
    ids=["power-2-at-N3", "log-law-at-N3"],
)
def test_claim4_not_supported_by_the_wrong_escape_law(escape):
    assert claims.claim4(pd.concat([n3(), escape3(escape)]))["verdict"] == NS


def test_claim4_not_supported_when_limits_are_not_rank_optimal():
    escape = escape3(lambda x: 0.3 / x)
    stalled = n3()
    stalled.loc[:1, ["rank_optimal", "final_rank"]] = [False, 0]  # two stalls at P = 0
    row = claims.claim4(pd.concat([stalled, escape]))
    assert row["verdict"] == NS and "[0, 3]" in row["measured"]
    unconverged = n3(status="budget_exhausted", rank_optimal=False)  # not judged by A
    assert claims.claim4(pd.concat([n3(), unconverged, escape]))["verdict"] == S
    assert claims.claim4(pd.concat([n3(5), escape.iloc[:10]]))["verdict"] == INC


# --- claim 5 -------------------------------------------------------------------------------

MULTIPLES = [0.5, 1, 2, 4, 8, 16]


def grid(fails_from: float, eos_multiple: float, seeds: int = 10, **columns) -> pd.DataFrame:
    """Paired starts on the multiple grid; runs at multiples >= ``fails_from`` diverge."""
    t = pd.concat(
        [runs(seeds, step_multiple=m, eos_eta=eos_multiple, **columns) for m in MULTIPLES],
        ignore_index=True,
    )
    t.loc[t["step_multiple"] >= fails_from, "status"] = "diverged"
    t.loc[t["status"] != "converged", "global_optimal"] = False
    return t


def search(critical_multiple: float, eos_multiple: float, n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": [f"t{i}" for i in range(n)], "family": "balanced s=1 / whitened",
            "dataset": "white", "depth": 2, "widths": "4-4-3", "seed": range(n),
            "eta_cert": 1.0, "critical_multiple": critical_multiple,
            "critical_eta": critical_multiple, "eos_eta": eos_multiple,
            "eos_eta_max": eos_multiple, "delta0": 0.0,
            "sharpness_reached": 2.0 / eos_multiple, "eta_adaptive_start": 0.5,
            "eta_adaptive_free": 0.5,
            "eta_adaptive_end": 1.0,
        }
    )  # fmt: skip


def test_claim5_supported_when_failure_sets_in_between_the_bound_and_the_edge():
    row = claims.claim5(grid(fails_from=8, eos_multiple=5), search(4.5, 5))
    assert row["verdict"] == S
    onset = claims.failure_onset(grid(fails_from=8, eos_multiple=5), search(4.5, 5))
    g = onset[onset["source"] == "grid"].iloc[0]
    assert (g["onset_lo"], g["onset_hi"], g["eos_multiple"]) == (4, 8, 5)
    assert g["n_converged_within"] == 10 and g["fail_within"] == 0 and g["fail_above"] == 0.5
    s = onset[onset["source"] == "search"].iloc[0]
    assert s["onset_lo"] == 4.5 and s["max_converged_over_eos"] == pytest.approx(0.9)
    assert onset["in_window"].all() and not onset["above_eos"].any()


def test_claim5_not_supported_when_runs_above_the_bound_fail_no_more_often():
    never = grid(fails_from=np.inf, eos_multiple=1e4)
    assert claims.claim5(never, search(np.nan, 1e4))["verdict"] == NS
    budget = grid(fails_from=np.inf, eos_multiple=1e4)
    budget.loc[budget["seed"] == 0, "status"] = "budget_exhausted"  # same rate both sides
    assert claims.claim5(budget, search(np.nan, 1e4))["verdict"] == NS


def test_claim5_not_supported_when_onset_lies_above_the_edge_of_stability():
    above = grid(fails_from=8, eos_multiple=2)  # converged to a global minimum at 4 > 2
    assert claims.claim5(above, search(1.9, 2))["verdict"] == NS
    onset = claims.failure_onset(above, search(1.9, 2)).set_index("source")
    assert onset.loc["grid", "max_converged_over_eos"] == 2.0
    assert list(onset["in_window"]) == [False, True]
    assert claims.claim5(grid(8, 5), search(6.0, 5))["verdict"] == NS  # search above 5.25
    assert claims.claim5(grid(8, 5), search(5.2, 5))["verdict"] == S  # within tolerance


def test_claim5_not_supported_when_onset_lies_below_the_bound():
    below = grid(fails_from=8, eos_multiple=5)
    below.loc[(below["seed"] == 3) & (below["step_multiple"] == 0.5), "status"] = "diverged"
    assert claims.claim5(below, search(4.5, 5))["verdict"] == NS


def test_claim5_ignores_convergence_above_the_edge_to_a_non_global_point():
    t = grid(fails_from=8, eos_multiple=2)
    t.loc[(t["step_multiple"] == 4), "global_optimal"] = False
    assert claims.claim5(t, search(1.9, 2))["verdict"] == S


def test_claim5_is_inconclusive_without_paired_starts():
    alone = runs(10)  # only at the bound
    assert claims.claim5(alone, search(np.nan, 5))["verdict"] == INC
    assert claims.claim5(alone, search(4.5, 5))["verdict"] == INC  # search only: no failure seen
    assert claims.claim5(alone.iloc[:0], search(4.5, 5).iloc[:0])["verdict"] == INC


# --- the table ----------------------------------------------------------------------------


def test_missing_evidence_everywhere_gives_inconclusive_never_supported():
    table = claims.verdicts({"runs": runs(0), "thresholds": search(1.0, 1.0).iloc[:0]})
    assert list(table["claim"]) == [c.number for c in claims.CLAIMS] == [1, 2, 3, 4, 5, 6]
    assert (table["verdict"] == INC).all()
    assert table.iloc[5]["evidence"] == "no tanh tables in this config"  # claim 6: absent


def test_a_required_table_that_is_absent_is_named():
    with pytest.raises(InputError, match=re.escape("claim 2 needs the table(s) thresholds")):
        claims.verdicts({"runs": runs(30)})
    with pytest.raises(InputError, match="tanh_schedule"):  # some of claim 6's, not all
        from tests.test_tanh import critical_table, power, sweep_table

        claims.verdicts(
            {"runs": runs(30), "thresholds": search(4.5, 5), "tanh_sweep": sweep_table(),
             "tanh_critical": critical_table(power)}
        )  # fmt: skip


def test_the_registry_drives_the_table_the_inputs_and_the_figures():
    numbers = [c.number for c in claims.CLAIMS]
    assert numbers == sorted(set(numbers))
    assert claims.planned_inputs({}) == ("runs", "thresholds")
    assert claims.planned_inputs({"tanh": {}}) == (
        "runs", "thresholds", "tanh_sweep", "tanh_critical", "tanh_schedule",
    )  # fmt: skip
    from deeplinear import figures, tables

    assert figures.claim_problems() == []
    for claim in claims.CLAIMS:
        assert set(claim.inputs) <= set(tables.FILES), claim.number
    lonely = figures.Figure("fig_x", claims=(7,))
    problems = figures.claim_problems((lonely,))
    assert "figure fig_x tests claim 7, which is not in deeplinear.claims.CLAIMS" in problems
    assert "claim 1 of deeplinear.claims.CLAIMS is tested by no figure" in problems


def test_a_missing_column_is_named():
    with pytest.raises(InputError, match="drift_failures"):
        claims.claim1(runs(3).drop(columns="drift_failures"))
    with pytest.raises(InputError, match="family"):
        claims.claim2(thresholds(lambda N: 1.0 / N).drop(columns="family"))
    with pytest.raises(InputError, match="eta_adaptive_free"):
        claims.claim2(thresholds(lambda N: 1.0 / N).drop(columns="eta_adaptive_free"))


def test_a_full_table_and_its_markdown_carry_every_rule():
    t = pd.concat([runs(30), escape_runs(log_law, 2), n3(), escape3(lambda x: 0.3 / x),
                   grid(8, 5)], ignore_index=True)  # fmt: skip
    from tests.test_tanh import critical_table, power, schedule_table, sweep_table

    inputs = {
        "runs": t,
        "thresholds": pd.concat([thresholds(lambda N: N**-1.0), search(4.5, 5)]),
        "tanh_sweep": sweep_table(),
        "tanh_critical": critical_table(power),
        "tanh_schedule": schedule_table(),
    }
    table = claims.verdicts(inputs)
    assert list(table["verdict"]) == [S] * 6, table[["claim", "measured"]].to_string()
    assert list(table.columns) == list(tables.CLAIMS.names)
    tables.check_frame(table, tables.CLAIMS, "claims.csv")
    text = claims.to_markdown(table)
    lines = text.splitlines()
    for claim in claims.CLAIMS:
        assert f"- Rule: {claim.rule}." in text
        assert f"## Claim {claim.number}" in lines  # the anchor #claim-N of its headline
        row = table.set_index("claim").loc[claim.number]
        head = f"| [{claim.number}](#claim-{claim.number}) | **{row['verdict']}** |"
        (line,) = [x for x in lines if x.startswith(head)]
        assert row["headline"] in line and len(line) <= 300
    assert (
        "| [1](#claim-1) | **supported** | 80/80 eligible runs within the bound converged" in text
    )


def test_theory_md_states_the_rules_with_the_code_s_thresholds():
    text = (Path(__file__).resolve().parents[1] / "docs/theory.md").read_text()
    section = " ".join(text.split("## 13. Claim rules", 1)[1].split())
    for value in (
        f"{claims.CONVERGED_FRACTION:.0%}",
        f"{claims.OPTIMAL_FRACTION:.0%}",
        f"{claims.MIN_RUNS} eligible runs",
        f"delta0 <= {claims.BALANCED_DELTA0:g}",
        f"(2 - N)(1 +- {claims.EXPONENT_RTOL:g})",
        f"the edge times (1 + {claims.EOS_TOL:g})",
        f"{stats.N_BOOT} resamples with generator seed {stats.BOOT_SEED}",
        f"at least {stats.MIN_PER_DEPTH} finite positive values",
        f"({stats.MIN_DEPTHS} such depths needed",
        f"({stats.MIN_LEVELS} such levels needed",
        f"at least {stats.MIN_PER_LEVEL} runs are fitted",
    ):
        assert value in section, value


def test_claim5_checks_the_onset_against_eos_eta_max_where_given():
    t = grid(fails_from=8, eos_multiple=3.5)  # converged to a global minimum at 4 > 3.5 (1.05)
    assert claims.claim5(t, search(3.0, 3.5))["verdict"] == NS
    wider = t.assign(eos_eta_max=5.0)  # a flatter minimizer exists: the edge is at most 5
    assert claims.claim5(wider, search(3.0, 3.5))["verdict"] == S


def test_the_readme_reads_in_five_minutes_with_one_headline_line_per_claim():
    from deeplinear.publish import readme

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    block = text.split(readme.START, 1)[1].split(readme.END, 1)[0].strip("\n").splitlines()
    assert block[:2] == claims.HEADLINE_HEADER.splitlines()
    assert len(block) == 2 + len(claims.CLAIMS)
    for claim, line in zip(claims.CLAIMS, block[2:], strict=True):
        link = f"| [{claim.number}](docs/claims.md#{claims.anchor(claim.number)}) |"
        assert line.startswith(link), line
        verdict = line.split(" | ")[1].strip("*")
        assert verdict in tables.VERDICTS, line
        assert len(line) <= 300, (claim.number, len(line))
    # the anchors exist: the committed copy of the default run's claims.md has the section
    # "## Claim N" each link points at (GitHub's anchor: claim-N)
    copy = (Path(__file__).resolve().parents[1] / "docs/claims.md").read_text().splitlines()
    assert copy[0] == readme.COPY_NOTE
    for claim in claims.CLAIMS:
        assert f"## Claim {claim.number}" in copy
    # and claims.md as the rule writes it has them
    table = pd.DataFrame(
        [{"claim": c.number, "statement": c.statement, "evidence": "e", "n_runs": 0,
          "measured": "m", "verdict": INC, "headline": "h", "rule": c.rule}
         for c in claims.CLAIMS]
    )  # fmt: skip
    md = claims.to_markdown(table).splitlines()
    for claim in claims.CLAIMS:
        assert f"## Claim {claim.number}" in md  # GitHub's anchor: claim-N
