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

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deeplinear.errors import InputError
from deeplinear.io import json_digest

#: Keys of a run that fix its initial weights (and hence its seed).
INIT_KEYS = (
    "dataset", "depth", "hidden", "init", "init_scale", "init_rank", "init_xi", "init_spread",
    "seed",
)  # fmt: skip

#: Run fields of options a start or step rule does not have (a gaussian start has no
#: spread, a constant step no tau): fixed values, so that run ids never change.
UNUSED = {"init_xi": 0.0, "init_spread": 0.1, "tau": 100.0, "alpha": 0.0}


def digest(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (hex): :func:`deeplinear.io.json_digest`."""
    return json_digest(obj)


def _number(x: float) -> str:
    """Shortest exact decimal text of a float, for shard names (``0.5``, ``1024``)."""
    return np.format_float_positional(float(x), trim="-")


@dataclass(frozen=True)
class Run:
    """One GD trajectory of the plan; ``run_id`` is the experiment and a hash of the rest.

    ``alpha`` is the decay exponent of a decreasing schedule and 0 for a constant step
    (theory.md 11); ``init_rank`` is ``None`` for a start of full (bottleneck) rank;
    ``init_xi`` is the perturbation of a ``near_balanced`` start and the end layers' scale
    of an ``ends`` start.
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
    ``product_norm: p`` gives the per-layer scale ``p^(1/N)`` at depth ``N``; the
    ``end_scale`` of an ``ends`` start is carried in ``init_xi`` (which only
    ``near_balanced`` starts use otherwise), so no other run's id changes."""
    scale = ini["scale"] if "scale" in ini else ini["product_norm"] ** (1.0 / depth)
    return {
        "init": ini["kind"],
        "init_scale": float(scale),
        "init_rank": ini.get("rank"),
        "init_xi": float(ini.get("xi", ini.get("end_scale", UNUSED["init_xi"]))),
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
class StepSearch:
    """Settings of a bisection for a step-size limit (:mod:`deeplinear.search`): the budget
    and tolerances of every probe (``settings``), the bracket's ends as multiples ``lo`` and
    ``hi`` of a reference step, and the relative precision ``rtol``."""

    settings: Settings
    lo: float
    hi: float
    rtol: float


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

    @property
    def step_search(self) -> StepSearch:
        """The bisection settings of the search, for any set of starts."""
        return StepSearch(self.settings, self.lo, self.hi, self.rtol)

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
    #: :func:`size_of` the config, where :func:`build` counted it (else None).
    size: Mapping[str, Any] | None = field(default=None, compare=False)

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


#: Above these sizes a config is refused unless it sets ``allow_large: true`` (or the plan
#: check gets ``--allow-large``): a grid this large is more often a typo than a plan.
LIMITS = {"runs": 10**6, "shards": 50_000, "shard_bytes": 4 * 2**30, "dataset_bytes": 4 * 2**30}
#: Arrays of a run's layer sizes the engine holds at once (weights, gradients, prefix and
#: suffix products, stacks and a few buffers): an upper estimate for the memory check.
ENGINE_COPIES = 10
#: Folders of the project's own sources: no result or figure may be written into them.
SOURCE_FOLDERS = (
    "notebooks", "src", "workflow", "config", "scripts", "tests", "docs", "benchmarks",
    "profiles", "data", ".git",
)  # fmt: skip
#: What the default run writes below ``results/`` (a non-default config must not write there).
DEFAULT_RESULTS = (
    "tables", "runs", "data", "logs", "notebooks", "benchmarks", "thresholds", "config",
    "provenance", "report", "requirements",
)  # fmt: skip
#: The default config, relative to the project root.
DEFAULT_CONFIG = "config/config.yaml"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def _dataset_dims(spec: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(d_x, d_y, m)`` a dataset entry asks for, without building it (digits: its size)."""
    if spec["kind"] == "digits":
        return int(spec.get("components", 64)) + 1, 10, int(spec.get("m", 1797))
    return int(spec.get("d_x", 1)), int(spec.get("d_y", 1)), int(spec.get("m", 1))


def size_of(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Runs, shards, the largest shard's arrays and the largest dataset a validated config
    defines, counted from the grid's lengths without building it (pipeline.md, "Plan")."""
    dims = {name: _dataset_dims(spec) for name, spec in cfg["datasets"].items()}

    def shard_bytes(dataset: str, depth: int, hidden: int, runs: int) -> float:
        d_x, d_y, _ = dims.get(dataset, (1, 1, 1))
        widths = [d_x, *([hidden] * (depth - 1)), d_y]
        params = sum(a * b for a, b in zip(widths[1:], widths[:-1], strict=True))
        return 8.0 * ENGINE_COPIES * runs * params

    runs = shards = 0
    largest = (0.0, "")
    for name, exp in cfg["experiments"].items():
        per_cell = len(exp["inits"]) * len(exp["step_rules"])
        cells = len(exp["depths"]) * len(exp["hidden_widths"]) * len(exp["step_multiples"])
        runs += cells * per_cell * exp["seeds"]
        shards += cells * math.ceil(exp["seeds"] / exp["shard_seeds"])
        in_shard = per_cell * min(exp["seeds"], exp["shard_seeds"])
        for depth in exp["depths"]:
            for hidden in exp["hidden_widths"]:
                b = shard_bytes(exp["dataset"], depth, hidden, in_shard)
                largest = max(largest, (b, f"experiments.{name} (depth {depth}, width {hidden})"))
    ts = cfg["threshold_search"]
    runs += len(ts["families"]) * len(ts["depths"]) * ts["seeds"]
    shards += len(ts["families"]) * len(ts["depths"])
    for i, fam in enumerate(ts["families"]):
        for depth in ts["depths"]:
            b = shard_bytes(fam["dataset"], depth, fam["hidden_width"], ts["seeds"])
            largest = max(largest, (b, f"threshold_search.families[{i}] (depth {depth})"))
    data = max(
        ((8.0 * 4 * (d_x + d_y) * m, f"datasets.{name}") for name, (d_x, d_y, m) in dims.items()),
        default=(0.0, ""),
    )
    return {"runs": runs, "shards": shards, "shard_bytes": largest, "dataset_bytes": data}


def check_size(cfg: Mapping[str, Any], allow_large: bool = False) -> dict[str, Any]:
    """Refuse a config above :data:`LIMITS` (unless ``allow_large``), saying how large it is;
    return :func:`size_of`."""
    size = size_of(cfg)
    if allow_large or cfg.get("allow_large"):
        return size
    problems = [
        f"{size[k]:,} {k} (limit {LIMITS[k]:,})" for k in ("runs", "shards") if size[k] > LIMITS[k]
    ]
    for key, what in (("shard_bytes", "shard's arrays"), ("dataset_bytes", "dataset")):
        nbytes, where = size[key]
        if nbytes > LIMITS[key]:
            problems.append(
                f"a {what} of about {_size(nbytes)} at config key {where} "
                f"(limit {_size(LIMITS[key])})"
            )
    if problems:
        raise InputError(
            "config key experiments: the plan is too large: " + "; ".join(problems) + ". "
            "If you mean it, set allow_large: true (or pass --allow-large to the plan check)"
        )
    return size


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_locations(
    cfg: Mapping[str, Any], root: Path, default: bool, cwd: Path | None = None
) -> None:
    """``results_dir`` and ``figures_dir`` (relative to ``cwd``) never overlap the project's
    sources (:data:`SOURCE_FOLDERS`, the project folder itself); only the default config may
    write the committed ``figures/`` and the default ``results/`` (:data:`DEFAULT_RESULTS`)."""
    cwd = Path.cwd() if cwd is None else cwd
    root = Path(root).resolve()
    for key in ("results_dir", "figures_dir"):
        where = (cwd / cfg[key]).resolve()
        said = f"config key {key}: {cfg[key]!r} ({where})"
        if where == root or where in root.parents:
            raise InputError(f"{said} would hold the project folder {root}; name a subfolder")
        for name in SOURCE_FOLDERS:
            if _overlaps(where, root / name):
                raise InputError(f"{said} overlaps the project's source folder {name}/")
        if default:
            continue
        if _overlaps(where, root / "figures"):
            raise InputError(
                f"{said} overlaps the committed figures/, which only the default config "
                f"({DEFAULT_CONFIG}) renders; set figures_dir to a folder of its own"
            )
        results = root / "results"
        if where == results or where in results.parents:
            raise InputError(
                f"{said} would overwrite the default run's results/; set results_dir (and "
                "figures_dir) to a folder of its own, for example results/<name>"
            )
        if results in where.parents:
            first = where.relative_to(results).parts[0]
            if first.split(".")[0] in DEFAULT_RESULTS:
                raise InputError(f"{said} lies in the default run's results/{first}")


def is_default(configfiles: Sequence[str | Path], root: Path) -> bool:
    """Whether the config files are just the default :data:`DEFAULT_CONFIG` of ``root``."""
    root, files = Path(root), [Path(f).resolve() for f in configfiles]
    return files in ([], [(root / DEFAULT_CONFIG).resolve()])


def dataset_dims(cfg: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Build and check every dataset of a validated config (cheap) so bad data fails before
    any job; ``{name: (d_x, d_y)}``. The same checks for the plan check and Snakemake."""
    from deeplinear import data

    dims = {}
    for name, spec in cfg["datasets"].items():
        params = {k: v for k, v in spec.items() if k != "kind"}
        try:
            ds = data.validate(data.make(spec["kind"], **params), name=f"dataset {name!r}")
        except InputError as err:
            raise InputError(f"config key datasets.{name}: {err}") from None
        dims[name] = ds.X.shape[0], ds.Y.shape[0]
    return dims


def build(
    cfg: dict[str, Any],
    schema: str | Path,
    configfiles: Sequence[str | Path],
    root: Path,
    allow_large: bool = False,
) -> Plan:
    """The front door, shared by ``plan check`` and the Snakefile: every config file read
    strictly (:func:`read_yaml`: duplicate keys, encoding), ``cfg`` validated and filled
    (:func:`validate`), output locations (:func:`check_locations`) and sizes
    (:func:`check_size`) checked, every dataset built (:func:`dataset_dims`), the plan
    built (:meth:`Plan.from_config`) with its size (``Plan.size``). Raises
    :class:`InputError` naming the key or file."""
    for path in configfiles:
        read_yaml(path)
    validate(cfg, schema)
    check_locations(cfg, root, is_default(configfiles, root))
    size = check_size(cfg, allow_large)
    return replace(Plan.from_config(cfg, dataset_dims(cfg)), size=size)


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
    names: dict[str, int] = {}
    for i, family in enumerate(ts["families"]):
        if family["name"] in names:
            raise InputError(
                f"config key threshold_search.families[{i}].name: {family['name']!r} is "
                f"already the name of families[{names[family['name']]}]; names label the rows"
            )
        names[family["name"]] = i
    if not ts["lo"] < ts["hi"]:
        raise InputError(
            f"config key threshold_search.lo: the search needs lo < hi, got lo = {ts['lo']} "
            f"and hi = {ts['hi']}"
        )


def _strict_loader():
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML lets the last
    one win silently; a config must mean what it says)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    first = seen[key].start_mark.line + 1
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (first on line {first})",
                        key_node.start_mark,
                    )  # fmt: skip
                seen[key] = key_node
            return super().construct_mapping(node, deep)

    return StrictLoader


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
    """A YAML file; a syntax error, a key given twice or text that is not UTF-8 names the
    file (and the line and column where known)."""
    import yaml

    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"config file {path}: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(
            f"config file {path}, line {line}: not UTF-8 text (byte {raw[err.start]:#04x} at "
            f"offset {err.start}); a config is a YAML text file"
        ) from None
    if "\x00" in text:
        raise InputError(f"config file {path}: holds NUL bytes; a config is a YAML text file")
    try:
        return yaml.load(text, Loader=_strict_loader())  # a SafeLoader subclass
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

    args = list(sys.argv[1:] if argv is None else argv)
    allow_large = "--allow-large" in args
    args = [a for a in args if a != "--allow-large"]
    arity = {"check": 2, "get": 3, "figure": 3}
    if not args or arity.get(args[0]) != len(args):
        print(
            "usage: python -m deeplinear.plan check CONFIG.yaml [--allow-large]\n"
            "       python -m deeplinear.plan get KEY CONFIG.yaml      (a top-level value)\n"
            "       python -m deeplinear.plan figure NAME CONFIG.yaml  (the figure's files)",
            file=sys.stderr,
        )
        return 2
    # The project is the folder the check runs in (make's), else the one of this package.
    package_root = Path(__file__).resolve().parents[2]
    root = Path.cwd() if (Path.cwd() / "Snakefile").is_file() else package_root
    schema = package_root / "workflow/schemas/config.schema.yaml"
    try:
        cfg = read_yaml(args[-1])
        if args[0] != "check":  # a value or paths: the schema, not the whole plan
            validate(cfg, schema)
            print(_lookup(args[0], args[1], cfg))
            return 0
        plan = build(cfg, schema, [args[-1]], root, allow_large)
    except InputError as err:
        print(f"Error in the config ({args[-1]}): {err}", file=sys.stderr)
        return 1
    size = plan.size
    print(
        f"{args[1]}: {len(plan.experiments)} experiments and the threshold search: "
        f"{size['runs']} runs in {size['shards']} shards (threshold search: "
        f"{len(plan.threshold.runs)} starts in {len(plan.threshold.shards)} shards); largest "
        f"shard about {_size(size['shard_bytes'][0])} of arrays"
    )
    return 0


def _lookup(what: str, name: str, cfg: Mapping[str, Any]) -> str:
    """``get KEY``: a top-level value; ``figure NAME``: the figure's files under figures_dir."""
    if what == "get":
        if name not in cfg:
            raise InputError(f"no top-level key {name!r}; the config has {sorted(cfg)}")
        return str(cfg[name])
    from deeplinear.figures import by_name

    if name not in by_name():
        raise InputError(f"no figure {name!r}; the figures are {sorted(by_name())}")
    return " ".join(f"{cfg['figures_dir']}/{name}.{ext}" for ext in ("pdf", "png"))


def check_finite(obj: Any, path: tuple = ()) -> None:
    """Raise :class:`InputError` naming the key of the first NaN or infinity in ``obj``
    (YAML's ``.nan``/``.inf`` are numbers to JSON schema; no config value may be one)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise InputError(f"config key {key_path(path)}: {obj} is not a finite number")
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            check_finite(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            check_finite(value, (*path, i))


def validate(cfg: Any, schema: str | Path) -> None:
    """Validate ``cfg`` in place against the JSON schema (YAML) and fill its defaults.

    Raises :class:`InputError` naming the config key of the first problem; NaN and
    infinities are refused first (:func:`check_finite`).
    """
    import jsonschema
    import yaml

    if not isinstance(cfg, dict):
        raise InputError(f"the config must be a mapping of keys, got {type(cfg).__name__}")
    check_finite(cfg)

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
