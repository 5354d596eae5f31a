"""Shared figure style and deterministic saving for the figure notebooks."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import seaborn as sns

from deeplinear.io import atomic_path

#: Readable names of the run statuses (theory.md 12), in plotting order.
STATUS_LABELS = {
    "converged": "converged",
    "budget_exhausted": "not converged within budget",
    "diverged": "diverged",
}
STATUS_COLORS = {"converged": "#1b9e77", "budget_exhausted": "#7570b3", "diverged": "#d95f02"}


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
