"""Experiment grids: from a config entry to a plan of runs grouped in shards.

A *run* is one GD trajectory: dataset x depth x hidden width x init x step rule x step
multiple x seed. Runs that share the depth and widths form a batch for the engine; a
*shard* is a chunk of at most ``shard_size`` such runs, one Snakemake job.

Seeds derive from the run's own description (``numpy.random.SeedSequence`` fed with a
hash of it), so a rerun is bitwise identical and a cell never depends on which other
cells exist. The step size is not part of the init's seed: runs that differ only in their
step share the same start, which makes step-size comparisons paired.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import numpy as np

from deeplinear.errors import InputError

#: Keys of a run that fix its initial weights (and hence its seed).
INIT_KEYS = (
    "dataset", "depth", "hidden", "init", "init_scale", "init_rank", "init_xi", "init_spread",
    "seed",
)  # fmt: skip


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def init_seed(run: dict, base_seed: int) -> np.random.SeedSequence:
    """The seed of a run's initial weights: a function of :data:`INIT_KEYS` only."""
    key = {k: run[k] for k in INIT_KEYS}
    return np.random.SeedSequence([base_seed, int(_digest(key)[:16], 16)])


def run_id(run: dict) -> str:
    """Stable identifier: experiment name and a hash of the run's description."""
    return f"{run['experiment']}-{_digest(run)[:12]}"


def expand(name: str, exp: dict) -> list[dict]:
    """All runs of experiment ``name`` (a validated config entry), in a fixed order."""
    runs = []
    cells = itertools.product(
        exp["depths"],
        exp["hidden_widths"],
        exp["inits"],
        exp["step_rules"],
        exp["step_multiples"],
        range(exp["seeds"]),
    )
    for depth, hidden, ini, rule, multiple, seed in cells:
        run = {
            "experiment": name,
            "dataset": exp["dataset"],
            "depth": int(depth),
            "hidden": int(hidden),
            "init": ini["kind"],
            "init_scale": float(ini["scale"]),
            "init_rank": ini.get("rank"),
            "init_xi": float(ini.get("xi", 0.0)),
            "init_spread": float(ini.get("spread", 0.1)),
            "seed": seed,
            "step_rule": rule["schedule"],
            "tau": float(rule.get("tau", 100.0)),
            "alpha": float(rule.get("alpha", 0.5)) if rule["schedule"] == "decreasing" else 0.0,
            "step_multiple": float(multiple),
            "step_unit": exp.get("step_unit", "certified"),
        }
        if run["init"] != "near_balanced" and run["init_xi"]:
            raise InputError(f"experiments.{name}.inits: xi applies only to near_balanced")
        run["run_id"] = run_id(run)
        runs.append(run)
    return runs


def shards(name: str, exp: dict) -> dict[str, list[dict]]:
    """Runs of an experiment grouped by depth and width, chunked by ``shard_size``.

    Keys are shard names ``N{depth}-h{hidden}-{chunk:02d}``; values keep the plan order.
    """
    size = int(exp.get("shard_size", 64))
    groups: dict[tuple[int, int], list[dict]] = {}
    for run in expand(name, exp):
        groups.setdefault((run["depth"], run["hidden"]), []).append(run)
    out = {}
    for (depth, hidden), runs in sorted(groups.items()):
        for chunk, start in enumerate(range(0, len(runs), size)):
            out[f"N{depth}-h{hidden}-{chunk:02d}"] = runs[start : start + size]
    return out
