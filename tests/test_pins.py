"""Package pins are written in pyproject.toml and repeated, identically, for conda users."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import ROOT

#: PyPI name -> conda-forge name, where they differ.
CONDA_NAME = {
    "matplotlib": "matplotlib-base",
    "seaborn": "seaborn-base",
    "snakemake": "snakemake-minimal",
}
#: Pip-only extras that conda users install separately (documented in the README).
NOT_IN_CONDA = {"snakemake-executor-plugin-slurm"}


def pip_pins(requirements: list[str]) -> dict[str, str]:
    """``name -> version`` of ``name~=X.Y[.0]`` requirements, in conda's spelling ``X.Y``."""
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)~=([0-9.]+)(\s*#.*)?", req.strip())
        assert m, f"pyproject.toml: {req!r} is not pinned with ~="
        name, version = m.group(1).lower(), m.group(2)
        out[CONDA_NAME.get(name, name)] = version.removesuffix(".0")
    return out


def conda_pins(path: str) -> dict[str, str]:
    deps = yaml.safe_load((ROOT / path).read_text())["dependencies"]
    pins = {}
    for dep in deps:
        if isinstance(dep, str) and "=" in dep and not dep.startswith("python"):
            name, version = dep.split("=", 1)
            pins[name] = version
    return pins


def test_conda_environments_repeat_the_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = pip_pins(project["dependencies"])
    test = {
        k: v
        for k, v in pip_pins(project["optional-dependencies"]["test"]).items()
        if k not in NOT_IN_CONDA
    }
    assert conda_pins("workflow/envs/deeplinear.yaml") == runtime
    assert conda_pins("environment.yml") == runtime | test
