"""Where a run of the workflow spends its time: Snakemake's ``benchmark:`` files, summed.

Every rule writes ``{results}/benchmarks/{rule}/.../{job}.tsv`` (one row: wall seconds
``s``, CPU seconds, memory). :func:`table` sums them per rule and experiment.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

#: Columns of ``runtimes.csv``.
COLUMNS = ("rule", "experiment", "jobs", "wall_s", "cpu_s", "max_rss_mb")


def table(paths: Iterable[str | Path], root: str | Path) -> pd.DataFrame:
    """Per rule and experiment: job count, summed wall and CPU seconds, peak memory.

    ``root`` is the benchmarks folder; a file ``root/train_shard/depth/N2-h10-m1-s00.tsv``
    counts for rule ``train_shard`` and experiment ``depth`` (``-`` where the path has no
    experiment level, such as the threshold search or the figures).
    """
    rows = []
    for path in map(Path, paths):
        parts = path.relative_to(root).parts
        bench = pd.read_csv(path, sep="\t")
        rule = parts[0].removesuffix(".tsv")
        if len(parts) == 3:
            experiment = parts[1]
        else:
            experiment = path.stem if rule == "aggregate_experiment" else "-"
        rows.append(
            {
                "rule": rule,
                "experiment": experiment,
                "wall_s": float(bench["s"].sum()),
                "cpu_s": float(bench["cpu_time"].sum()),
                "max_rss_mb": float(bench["max_rss"].max()),
            }
        )
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.DataFrame(rows)
    out = (
        frame.groupby(["rule", "experiment"], sort=True)
        .agg(
            jobs=("wall_s", "size"),
            wall_s=("wall_s", "sum"),
            cpu_s=("cpu_s", "sum"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .reset_index()
    )
    return out[list(COLUMNS)].round({"wall_s": 1, "cpu_s": 1, "max_rss_mb": 0})
