# The authors' tanh experiment (figure 9, claim 6; deeplinear.tanh, theory.md 16): the scored
# search over readings of their setting, the chosen reading run with several seeds, and the
# step-size sweep against the linear certified step. Planned only when the config has `tanh`.
TANH = config.get("tanh")

if TANH is not None:
    try:
        tanh_lib.check_config(TANH, PLAN.datasets)
    except InputError as err:
        sys.exit(f"Error in the config: {err}")

    rule tanh_readings:
        """Every reading of the tanh setting at seed 0, scored against the published points."""
        input:
            published=os.path.relpath(f"{workflow.basedir}/{TANH['published']}"),
            data=[dataset_file(r["dataset"]) for r in TANH["readings"]],
        output:
            **sealed(
                table=study_table("authors_tanh_readings"),
                points=study_table("authors_tanh_points"),
            ),
        params:
            code=code_digest("scripts/tanh_readings.py"),
            digest=plan.digest([TANH[k] for k in ("eta", "epochs", "step_scale", "depths",
                                "hidden_width", "log_points", "readings")])[:16],
        conda:
            ENV
        log:
            f"{RESULTS}/logs/tanh/readings.log",
        benchmark:
            f"{BENCH}/tanh_readings.tsv"
        threads: 1
        script:
            "../../scripts/tanh_readings.py"

    rule authors_tanh:
        """The best-scoring reading, every seed: loss and product norm (figure 9)."""
        input:
            readings=study_table("authors_tanh_readings"),
            data=[dataset_file(r["dataset"]) for r in TANH["readings"]],
            digests=seals([study_table("authors_tanh_readings")]),
        output:
            **sealed(
                runs=study_table("authors_tanh_runs"),
                trajectories=study_table("authors_tanh_trajectories"),
            ),
        params:
            code=code_digest("scripts/authors_tanh.py"),
            digest=plan.digest([TANH[k] for k in ("eta", "epochs", "step_scale", "depths",
                                "hidden_width", "log_points", "seeds")])[:16],
        conda:
            ENV
        log:
            f"{RESULTS}/logs/tanh/authors_tanh.log",
        benchmark:
            f"{BENCH}/authors_tanh.tsv"
        threads: 1
        script:
            "../../scripts/authors_tanh.py"

    rule tanh_sweep:
        """Constant steps at multiples of the linear certified step on tanh networks of the
        chosen reading's activation and on the linear network, critical steps, and the linear
        certified schedule applied to the tanh weights."""
        input:
            readings=study_table("authors_tanh_readings"),
            data=dataset_file(TANH["sweep"]["dataset"]),
            digests=seals([study_table("authors_tanh_readings")]),
        output:
            **sealed(
                sweep=study_table("tanh_sweep"),
                outcomes=study_table("tanh_outcomes"),
                critical=study_table("tanh_critical"),
                schedule=study_table("tanh_schedule"),
            ),
        params:
            code=code_digest("scripts/tanh_sweep.py"),
            digest=plan.digest([TANH["sweep"]])[:16],
        conda:
            ENV
        log:
            f"{RESULTS}/logs/tanh/sweep.log",
        benchmark:
            f"{BENCH}/tanh_sweep.tsv"
        threads: 1
        script:
            "../../scripts/tanh_sweep.py"
