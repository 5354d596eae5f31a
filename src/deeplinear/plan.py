"""The plan of the study: the validated config as typed, frozen objects (pipeline.md, "Plan").

:func:`load` validates a config against ``workflow/schemas/config.schema.yaml`` and fills the
schema's defaults (the only place defaults live); :class:`Plan` turns it into experiments
and the threshold search, each a tuple of :class:`Run` grouped in shards. The workflow, the
scripts and the library read experiment settings from these objects and nowhere else.

A *run* is one GD trajectory: dataset x depth x hidden width x init x step rule x step
multiple x seed. Seeds derive from the run's own description (``numpy.random.SeedSequence``
fed with a hash of it), so a rerun is bitwise identical and a cell never depends on which
other cells exist. The step size is not part of the init's seed: runs that differ only in
their step share the same start, which makes step-size comparisons paired.

A *shard* (one Snakemake job, one engine batch) holds the runs of one depth, hidden width
and step multiple and one block of ``shard_seeds`` consecutive seeds, so adding a seed or a
step multiple adds shards and leaves every existing shard as it was.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplinear.errors import InputError

#: Keys of a run that fix its initial weights (and hence its seed).
INIT_KEYS = (
    "dataset", "depth", "hidden", "init", "init_scale", "init_rank", "init_xi", "init_spread",
    "seed",
)  # fmt: skip

#: Run fields of options a start or step rule does not have (a gaussian start has no
#: spread, a constant step no tau): fixed values, so that run ids never change.
UNUSED = {"init_xi": 0.0, "init_spread": 0.1, "tau": 100.0, "alpha": 0.0}


def digest(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (hex)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _number(x: float) -> str:
    """Shortest exact decimal text of a float, for shard names (``0.5``, ``1024``)."""
    return np.format_float_positional(float(x), trim="-")


@dataclass(frozen=True)
class Run:
    """One GD trajectory of the plan; ``run_id`` is the experiment and a hash of the rest.

    ``alpha`` is the decay exponent of a decreasing schedule and 0 for a constant step
    (theory.md 11); ``init_rank`` is ``None`` for a start of full (bottleneck) rank.
    """

    experiment: str
    dataset: str
    depth: int
    hidden: int
    init: str
    init_scale: float
    init_rank: int | None
    init_xi: float
    init_spread: float
    seed: int
    step_rule: str
    tau: float
    alpha: float
    step_multiple: float
    step_unit: str
    run_id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.run_id:
            object.__setattr__(self, "run_id", f"{self.experiment}-{digest(self.key())[:12]}")

    def key(self) -> dict[str, Any]:
        """The run's description without its id (what ``run_id`` hashes)."""
        d = asdict(self)
        del d["run_id"]
        return d

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __getitem__(self, name: str) -> Any:  # runs read like the rows they become
        return getattr(self, name)

    def init_seed(self, base_seed: int) -> np.random.SeedSequence:
        """The seed of the run's initial weights: a function of :data:`INIT_KEYS` only."""
        key = {k: getattr(self, k) for k in INIT_KEYS}
        return np.random.SeedSequence([base_seed, int(digest(key)[:16], 16)])


@dataclass(frozen=True)
class Settings:
    """Budget and tolerances shared by the runs of an experiment (theory.md 12).

    A run with step ``eta`` gets ``min(ceil(time / eta), max_iter)`` iterations.
    """

    time: float
    max_iter: int
    gtol: float
    log_points: int
    base_seed: int

    def budget(self, eta: float) -> int:
        """Iterations for gradient-flow time ``T``: ``min(ceil(T / eta), max_iter)``."""
        return int(min(math.ceil(self.time / eta), self.max_iter))

    def capped(self, eta: float) -> bool:
        """Whether ``max_iter`` cuts the run short of gradient-flow time ``T``."""
        return math.ceil(self.time / eta) > self.max_iter


def _init_fields(ini: Mapping[str, Any], depth: int) -> dict[str, Any]:
    """Run fields of a validated ``inits`` entry (kind-specific defaults come from the schema);
    ``product_norm: p`` gives the per-layer scale ``p^(1/N)`` at depth ``N``."""
    scale = ini["scale"] if "scale" in ini else ini["product_norm"] ** (1.0 / depth)
    return {
        "init": ini["kind"],
        "init_scale": float(scale),
        "init_rank": ini.get("rank"),
        "init_xi": float(ini.get("xi", UNUSED["init_xi"])),
        "init_spread": float(ini.get("spread", UNUSED["init_spread"])),
    }


def _step_fields(rule: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "step_rule": rule["schedule"],
        "tau": float(rule.get("tau", UNUSED["tau"])),
        "alpha": float(rule.get("alpha", UNUSED["alpha"])),
    }


def _shards(runs: list[Run], shard_seeds: int) -> dict[str, tuple[Run, ...]]:
    """Runs grouped by depth, width, step multiple and seed block, in plan order."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = (run.depth, run.hidden, run.step_multiple, run.seed // shard_seeds)
        groups.setdefault(key, []).append(run)
    out = {}
    for (depth, hidden, multiple, block), members in sorted(groups.items()):
        name = f"N{depth}-h{hidden}-m{_number(multiple)}-s{block * shard_seeds:02d}"
        out[name] = tuple(members)
    return out


@dataclass(frozen=True)
class Experiment:
    """A grid of runs (config key ``experiments.<name>``) and its shards."""

    name: str
    dataset: str
    settings: Settings
    runs: tuple[Run, ...]
    shards: Mapping[str, tuple[Run, ...]]

    @classmethod
    def from_config(cls, name: str, exp: Mapping[str, Any], base_seed: int) -> Experiment:
        cells = itertools.product(
            exp["depths"],
            exp["hidden_widths"],
            exp["inits"],
            exp["step_rules"],
            exp["step_multiples"],
            range(exp["seeds"]),
        )
        runs = [
            Run(
                experiment=name,
                dataset=exp["dataset"],
                depth=int(depth),
                hidden=int(hidden),
                **_init_fields(ini, depth),
                seed=seed,
                **_step_fields(rule),
                step_multiple=float(multiple),
                step_unit=exp["step_unit"],
            )
            for depth, hidden, ini, rule, multiple, seed in cells
        ]
        settings = Settings(exp["time"], exp["max_iter"], exp["gtol"], exp["log_points"], base_seed)
        return cls(name, exp["dataset"], settings, tuple(runs), _shards(runs, exp["shard_seeds"]))

    def runtime_minutes(self, shard: str, flops_per_second: float = 2e9) -> int:
        """A generous estimate of a shard's wall time for a cluster scheduler: every run for
        ``max_iter`` iterations at ``2 d^3 (3N - 1)`` flops each (``d`` the hidden width)."""
        flops = self._flops_per_iteration(shard)
        return 10 + math.ceil(self.settings.max_iter * flops / flops_per_second / 60)

    def expected_seconds(self, shard: str) -> float:
        """A rough single-core estimate of a shard's run time, used only to start the longest
        shards first (the rule's ``priority``): ``max_iter / max(1, multiple)`` iterations
        for steps in units of the certified bound (the budget is ``T / eta``, and a larger
        multiple leaves sooner), ``max_iter`` for absolute steps, at ``10 us N`` of array
        operations plus the batch's flops at 30 GFLOP/s per iteration. Results never depend
        on it."""
        first = self.shards[shard][0]
        scale = max(1.0, first.step_multiple) if first.step_unit == "certified" else 1.0
        flops = self._flops_per_iteration(shard)
        return self.settings.max_iter / scale * (1e-5 * first.depth + flops / 3e10)

    def _flops_per_iteration(self, shard: str) -> float:
        """``2 d^3 (3N - 1)`` per run of the shard (``d`` the hidden width), summed."""
        return sum(2.0 * r.hidden**3 * (3 * r.depth - 1) for r in self.shards[shard])

    def shard_digest(self, shard: str) -> str:
        """Short hash of a shard's runs and settings: what its job's rerun depends on."""
        return digest([[r.run_id for r in self.shards[shard]], asdict(self.settings)])[:16]


@dataclass(frozen=True)
class Family:
    """A kind of start on one dataset whose critical step the threshold search measures."""

    label: str
    dataset: str
    hidden: int
    init: Mapping[str, Any]


@dataclass(frozen=True)
class ThresholdSearch:
    """Bisection for the largest converging constant step, per family and depth.

    Between multiples ``lo`` and ``hi`` of each start's certified step, to relative precision
    ``rtol``; a probe succeeds when the run converges (``settings.gtol``) within its budget.
    """

    families: tuple[Family, ...]
    settings: Settings
    lo: float
    hi: float
    rtol: float
    runs: tuple[Run, ...]
    shards: Mapping[str, tuple[Run, ...]]

    @classmethod
    def from_config(cls, ts: Mapping[str, Any], base_seed: int) -> ThresholdSearch:
        families, runs, shards = [], [], {}
        for i, fam in enumerate(ts["families"]):
            family = Family(fam["name"], fam["dataset"], fam["hidden_width"], fam["init"])
            families.append(family)
            for depth in ts["depths"]:
                members = tuple(
                    Run(
                        experiment="threshold",
                        dataset=family.dataset,
                        depth=int(depth),
                        hidden=int(family.hidden),
                        **_init_fields(family.init, depth),
                        seed=seed,
                        **_step_fields({"schedule": "constant"}),
                        step_multiple=1.0,
                        step_unit="certified",
                    )
                    for seed in range(ts["seeds"])
                )
                runs.extend(members)
                shards[f"F{i:02d}-N{depth}"] = members
        settings = Settings(ts["time"], ts["max_iter"], ts["gtol"], 2, base_seed)
        return cls(tuple(families), settings, ts["lo"], ts["hi"], ts["rtol"], tuple(runs), shards)

    def family_of(self, shard: str) -> Family:
        return self.families[int(shard.split("-")[0][1:])]

    def shard_digest(self, shard: str) -> str:
        search = [self.lo, self.hi, self.rtol, asdict(self.settings)]
        return digest([[r.run_id for r in self.shards[shard]], search])[:16]


@dataclass(frozen=True)
class Plan:
    """Everything the config defines, checked across fields."""

    seed: int
    datasets: Mapping[str, Mapping[str, Any]]
    experiments: Mapping[str, Experiment]
    threshold: ThresholdSearch
    figures: Mapping[str, Any]
    results_dir: str
    figures_dir: str

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any], dims: Mapping[str, tuple[int, int]] | None = None
    ) -> Plan:
        """The plan of a validated config (defaults filled); cross-field errors name the key.

        ``dims`` maps dataset names to ``(d_x, d_y)`` where known (they bound the rank of a
        start together with the hidden widths).
        """
        check(cfg, dims or {})
        seed = cfg["seed"]
        experiments = {
            name: Experiment.from_config(name, exp, seed)
            for name, exp in cfg["experiments"].items()
        }
        return cls(
            seed=seed,
            datasets=cfg["datasets"],
            experiments=experiments,
            threshold=ThresholdSearch.from_config(cfg["threshold_search"], seed),
            figures=cfg["figures"],
            results_dir=cfg["results_dir"],
            figures_dir=cfg["figures_dir"],
        )

    def run_ids(self, experiment: str) -> list[str]:
        return [r.run_id for r in self.experiments[experiment].runs]


def check(cfg: Mapping[str, Any], dims: Mapping[str, tuple[int, int]]) -> None:
    """Checks across fields that the schema cannot express; each error names the config key.

    Every dataset an experiment or threshold family names exists; the product rank of a
    balanced start is at most its bottleneck width; the threshold search has ``lo < hi``.
    """
    from deeplinear.figures import needed_experiments

    missing = sorted(needed_experiments() - set(cfg["experiments"]))
    if missing:
        raise InputError(f"config key experiments: the figures need experiments {missing}")
    datasets = cfg["datasets"]
    where = [
        (f"experiments.{name}", exp["dataset"], exp["inits"], exp["hidden_widths"])
        for name, exp in cfg["experiments"].items()
    ]
    where += [
        (f"threshold_search.families[{i}]", f["dataset"], [f["init"]], [f["hidden_width"]])
        for i, f in enumerate(cfg["threshold_search"]["families"])
    ]
    for key, dataset, inits, hidden_widths in where:
        if dataset not in datasets:
            raise InputError(
                f"config key {key}.dataset: unknown dataset {dataset!r}; "
                f"defined datasets: {sorted(datasets)}"
            )
        bottleneck = min([*hidden_widths, *dims.get(dataset, ())])
        for i, ini in enumerate(inits):
            rank = ini.get("rank")
            if rank is not None and rank > bottleneck:
                raise InputError(
                    f"config key {key}.inits[{i}].rank: product rank {rank} exceeds the "
                    f"bottleneck width {bottleneck} (hidden widths and dataset {dataset!r})"
                )
    check_representable(cfg)
    ts = cfg["threshold_search"]
    if not ts["lo"] < ts["hi"]:
        raise InputError(
            f"config key threshold_search.lo: the search needs lo < hi, got lo = {ts['lo']} "
            f"and hi = {ts['hi']}"
        )


def check_representable(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` naming the config key of an init ``scale`` whose start
    cannot be represented in float64 at one of its depths: the product of ``N`` layers of
    about that scale has norm about ``scale^N`` (theory.md 12), which underflows to 0 below
    the smallest normal float64 (``N = 100000`` at scale 0.4) or overflows above the
    largest. Such runs could not move; ``product_norm`` fixes the product's norm instead."""
    import sys

    log_tiny, log_max = math.log(sys.float_info.min), math.log(sys.float_info.max)
    where = [
        (f"experiments.{name}.inits", exp["depths"], exp["inits"])
        for name, exp in cfg["experiments"].items()
    ]
    ts = cfg["threshold_search"]
    where += [
        (f"threshold_search.families[{i}].init", ts["depths"], [f["init"]])
        for i, f in enumerate(ts["families"])
    ]
    for key, depths, inits in where:
        for i, ini in enumerate(inits):
            scale = ini.get("scale")
            if scale is None or not scale > 0:
                continue
            for depth in depths:
                log_norm = depth * math.log(scale)
                if not log_tiny < log_norm < log_max:
                    at = f"{key}[{i}]" if key.endswith("inits") else key
                    raise InputError(
                        f"config key {at}.scale: at depth N = {depth} a start of scale {scale} "
                        f"has a product of norm about scale^N = 1e{log_norm / math.log(10):.0f}, "
                        "which float64 cannot represent (no run could move); use fewer layers "
                        "or give product_norm instead of scale"
                    )


def read_yaml(path: str | Path) -> Any:
    """A YAML file; a syntax error names the file, line and column."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(f"config file {path}: {err.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise InputError(f"config file {path}{where}: {problem}") from None


def load(path: str | Path, schema: str | Path) -> dict[str, Any]:
    """Read a YAML config, validate it against ``schema`` and fill the schema's defaults."""
    cfg = read_yaml(path)
    validate(cfg, schema)
    return cfg


def main(argv: list[str] | None = None) -> int:
    """``python -m deeplinear.plan check FILE``: the config's errors, or its size, before
    Snakemake runs (Snakemake itself reports a YAML syntax error without file or line);
    ``get KEY FILE``: a top-level value of the validated config (``results_dir``)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    arity = {"check": 2, "get": 3}
    if not args or arity.get(args[0]) != len(args):
        print(
            "usage: python -m deeplinear.plan check CONFIG.yaml\n"
            "       python -m deeplinear.plan get KEY CONFIG.yaml   (a top-level value)",
            file=sys.stderr,
        )
        return 2
    schema = Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml"
    try:
        cfg = load(args[-1], schema)
        plan = Plan.from_config(cfg)
    except InputError as err:
        print(f"Error in the config ({args[-1]}): {err}", file=sys.stderr)
        return 1
    if args[0] == "get":
        print(cfg[args[1]])
        return 0
    runs = sum(len(e.runs) for e in plan.experiments.values())
    shards = sum(len(e.shards) for e in plan.experiments.values())
    print(
        f"{args[1]}: {len(plan.experiments)} experiments, {runs} runs in {shards} shards; "
        f"threshold search: {len(plan.threshold.runs)} starts in {len(plan.threshold.shards)} "
        "shards"
    )
    return 0


def validate(cfg: Any, schema: str | Path) -> None:
    """Validate ``cfg`` in place against the JSON schema (YAML) and fill its defaults.

    Raises :class:`InputError` naming the config key of the first problem.
    """
    import jsonschema
    import yaml

    spec = yaml.safe_load(Path(schema).read_text())
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sch):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, sub["default"])
        yield from validate_properties(validator, properties, instance, sch)

    Validator = jsonschema.validators.extend(base, {"properties": set_defaults})
    error = jsonschema.exceptions.best_match(Validator(spec).iter_errors(cfg))
    if error is not None:
        message = error.message
        if error.validator == "not" and "description" in error.schema:
            message = f"{error.schema['description']} (got {error.instance})"
        raise InputError(f"config key {key_path(error.absolute_path)}: {message}")


def key_path(path) -> str:
    """``experiments.depth.depths[0]`` from a jsonschema error path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


if __name__ == "__main__":
    raise SystemExit(main())
