# Every figure is one papermill notebook: notebooks/{fig}.ipynb -> figures/{fig}.{pdf,png},
# executed copy in results/notebooks/{fig}.ipynb (what made each figure, cell by cell).

FIGURE_TABLES = {
    "fig1_stepsize": ["runs", "trajectories"],
    "fig2_depth": ["runs", "trajectories"],
    "fig3_bounded": ["runs", "trajectories"],
    "fig4_rank": ["runs", "rank_stats", "escape_scaling"],
    "fig5_phase": ["convergence_stats", "step_thresholds"],
    "fig6_threshold": ["step_thresholds"],
    "fig7_digits": ["runs", "trajectories", "rank_stats"],
}
TABLE_PATHS = {
    "runs": "results/tables/runs.csv",
    "trajectories": "results/tables/trajectories.parquet",
    "convergence_stats": "results/tables/convergence_stats.csv",
    "rank_stats": "results/tables/rank_stats.csv",
    "escape_scaling": "results/tables/escape_scaling.csv",
    "step_thresholds": "results/tables/step_thresholds.csv",
}
STYLE = {"dpi": 150, "context": "paper", "palette": "viridis"} | config.get("figures", {})


def papermill_params(fig):
    """`-p name value` pairs: table paths, the experiments shown, the style."""
    pairs = {t: TABLE_PATHS[t] for t in FIGURE_TABLES[fig]} | STYLE
    pairs |= FIGURE_EXPERIMENTS.get(fig, {"experiment": "threshold"})
    return " ".join(f"-p {k} {v}" for k, v in pairs.items())


for fig in FIGURES:

    rule:
        name:
            f"figure_{fig}"
        input:
            notebook=f"notebooks/{fig}.ipynb",
            tables=[TABLE_PATHS[t] for t in FIGURE_TABLES[fig]],
        output:
            pdf=f"figures/{fig}.pdf",
            png=report(f"figures/{fig}.png", caption=f"../report/{fig}.rst", category="Figures"),
            notebook=f"results/notebooks/{fig}.ipynb",
        params:
            args=papermill_params(fig),
            python=PYTHON,
        conda:
            ENV
        log:
            f"results/logs/figures/{fig}.log",
        shell:
            "{params.python} -m papermill {input.notebook} {output.notebook} {params.args} "
            "-p out_pdf {output.pdf} -p out_png {output.png} "
            "--no-progress-bar --log-output > {log} 2>&1"
