"""The runtime table sums Snakemake's benchmark files per rule and experiment."""

from __future__ import annotations

from deeplinear import runtimes

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path, seconds: float, cpu: float, rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t0\t{cpu}\n")


def test_benchmarks_are_summed_per_rule_and_experiment(tmp_path):
    files = {
        "train_shard/depth/N2-h10-m1-s00.tsv": (2.0, 1.5, 100),
        "train_shard/depth/N3-h10-m1-s00.tsv": (3.0, 2.5, 120),
        "train_shard/rank/N2-h3-m1-s00.tsv": (1.0, 0.5, 90),
        "aggregate_experiment/rank.tsv": (0.5, 0.25, 80),
        "figures/fig1_stepsize.tsv": (4.0, 3.0, 300),
        "claims.tsv": (0.2, 0.1, 70),
    }
    for rel, values in files.items():
        bench(tmp_path / rel, *values)
    table = runtimes.table([tmp_path / rel for rel in files], tmp_path)
    rows = {(r.rule, r.experiment): r for r in table.itertuples()}
    assert rows["train_shard", "depth"].jobs == 2
    assert rows["train_shard", "depth"].wall_s == 5.0 and rows["train_shard", "depth"].cpu_s == 4.0
    assert rows["train_shard", "depth"].max_rss_mb == 120
    assert rows["aggregate_experiment", "rank"].jobs == 1
    assert rows["figures", "-"].wall_s == 4.0 and rows["claims", "-"].jobs == 1
    assert list(table.columns) == list(runtimes.COLUMNS)
