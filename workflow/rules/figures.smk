# Every figure of the registry deeplinear.figures.FIGURES is one papermill notebook:
# notebooks/{fig}.ipynb -> {figures_dir}/{fig}.{pdf,png}, executed copy in
# {results_dir}/notebooks/{fig}.ipynb (what made each figure, cell by cell). A figure reads
# only the tables of its own experiments, so it needs only their shards. Before the notebook
# runs, `python -m deeplinear.tables check` checks each table it reads against its schema, its
# digest record and the plan (the runs it must hold, or count).


def figure_expectations(fig):
    """JSON `{path: expectation}` of the tables `fig` reads (deeplinear.tables.expectation):
    the runs of its experiment, of the authors' experiments for authors.csv, of the
    threshold search for the threshold tables, of the whole study for other study tables."""
    out = {}
    for table, exp, path in fig.table_specs(TABLES).values():
        if table == "authors":
            ids = tables.planned_ids(PLAN, "runs", AUTHORS_EXPERIMENTS)
        else:
            ids = tables.planned_ids(PLAN, table, None if exp is None else [exp])
        out[path] = tables.expectation(table, ids)
    return json.dumps(out, sort_keys=True)


for fig in PLANNED_FIGURES:

    rule:
        name:
            f"figure_{fig.name}"
        input:
            notebook=os.path.relpath(f"{workflow.basedir}/notebooks/{fig.name}.ipynb"),
            tables=list(fig.table_paths(TABLES).values()),
            digests=seals(fig.table_paths(TABLES).values()),
        output:
            pdf=figure_paths(fig.name)[0],
            png=report(
                figure_paths(fig.name)[1],
                caption=f"../report/{fig.name}.rst",
                category="Figures",
            ),
            notebook=f"{RESULTS}/notebooks/{fig.name}.ipynb",
        params:
            args=papermill_args(fig),
            expect=figure_expectations(fig),
            code=code_digest(f"notebooks/{fig.name}.ipynb"),
        conda:
            ENV
        log:
            f"{RESULTS}/logs/figures/{fig.name}.log",
        benchmark:
            f"{RESULTS}/benchmarks/figures/{fig.name}.tsv"
        threads: 1
        shell:
            # One BLAS thread: a figure's numbers do not depend on the machine's load. A fixed
            # string hash: no hash order reaches a figure (plotting.save also freezes the
            # layout at rounded positions, which is what keeps the bytes equal).
            "python -m deeplinear.tables check --expect {params.expect:q} > {log} 2>&1 && "
            "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0 "
            "python -m papermill {input.notebook} {output.notebook} {params.args} "
            "-p out_pdf {output.pdf} -p out_png {output.png} "
            "--no-progress-bar --log-output >> {log} 2>&1"
