"""Shared figure style and deterministic saving for the figure notebooks."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from deeplinear.io import atomic_path

#: Readable names of the run statuses (theory.md 12), in plotting order.
STATUS_LABELS = {
    "converged": "converged",
    "budget_exhausted": "not converged within budget",
    "diverged": "diverged",
}
STATUS_COLORS = {"converged": "#1b9e77", "budget_exhausted": "#7570b3", "diverged": "#d95f02"}
#: Where a run ended, in plotting order (figures 4 and 7, theory.md 8), with colours.
OUTCOME_COLORS = {
    "global minimum": "#1b9e77",
    "rank-r optimum (r < target)": "#e6ab02",
    "not converged / not rank-optimal": "#7570b3",
    "diverged": "#d95f02",
}


def outcomes(runs: pd.DataFrame) -> pd.Series:
    """One key of :data:`OUTCOME_COLORS` per row of runs.csv."""
    choice = np.select(
        [runs["status"] == "diverged", runs["global_optimal"], runs["rank_optimal"]],
        ["diverged", "global minimum", "rank-r optimum (r < target)"],
        default="not converged / not rank-optimal",
    )
    return pd.Series(choice, index=runs.index, name="outcome")


def start_labels(runs: pd.DataFrame) -> pd.Series:
    """``"<init> s=<scale> r0=<rank>"``, plus ``" xi=<xi>"`` for perturbed starts."""
    xi = np.where(runs["init_xi"] > 0, " xi=" + runs["init_xi"].astype(str), "")
    label = runs["init"] + " s=" + runs["init_scale"].astype(str)
    return (label + " r0=" + runs["init_rank"].astype(str) + xi).rename("start")


def setup(context: str = "paper", dpi: int = 150) -> None:
    """Seaborn theme and matplotlib defaults shared by every figure."""
    sns.set_theme(context=context, style="whitegrid")
    plt.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "savefig.bbox": "tight"})


def save(fig: plt.Figure, pdf: str | os.PathLike, png: str | os.PathLike) -> None:
    """Write PDF and PNG atomically and without timestamps, so reruns are byte-identical."""
    for path, meta in ((pdf, {"CreationDate": None, "Producer": None}), (png, {"Software": None})):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], metadata=meta)
