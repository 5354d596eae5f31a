"""What made the results: the provenance record, the lock of installed versions, the resolved
config (standard library only).

    python -m deeplinear.publish provenance --out results/provenance.json --config-file FILE \\
        [--command STR] [--project-dir DIR]
    python -m deeplinear.publish lock --out results/requirements.lock
    python -m deeplinear.publish config --out results/config.json --json '{...}'

The provenance record holds the command, the config (path, SHA-256, content), the git commit
(``-dirty`` if tracked files changed), the versions of :data:`PACKAGES` and the platform,
and no timestamp, so the same inputs give the same bytes. Git and the installed
distributions are read only when these functions run, never while the workflow is parsed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from deeplinear.publish.files import PublishError, file_digest

PACKAGES = (
    "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "seaborn", "snakemake",
    "papermill", "scikit-learn", "threadpoolctl",
)  # fmt: skip


def git(*args: str, cwd: Path) -> str:
    """Output of a git command (stripped); raises if git fails or is absent."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def git_commit(cwd: Path) -> str:
    """HEAD's commit, plus ``-dirty`` if tracked files changed; ``unknown`` outside git."""
    try:
        commit = git("rev-parse", "--verify", "HEAD", cwd=cwd)
        dirty = git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each package, or ``not installed``."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def platform_info() -> dict[str, str]:
    """Operating system, interpreter and machine (no host name)."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
    }


def provenance(config_file: Path, command: str, cwd: Path) -> dict[str, Any]:
    """What made the results: command, config, code version, packages, platform.

    Holds no timestamp, so the same inputs give the same bytes. ``cwd`` is where git looks
    for the commit (the project's folder).
    """
    return {
        "command": command,
        "config": {
            "path": config_file.as_posix(),
            "sha256": file_digest(config_file),
            "content": config_file.read_text(encoding="utf-8"),
        },
        "git_commit": git_commit(cwd),
        "packages": package_versions(),
        "platform": platform_info(),
    }


def snakemake_command(configfiles: Iterable[str | os.PathLike[str]], cwd: Path) -> str:
    """``snakemake --configfile ...`` with the given config files, relative to ``cwd``."""
    args = ["snakemake"]
    for path in configfiles:
        rel = os.path.relpath(path, cwd)
        args += ["--configfile", str(path) if rel.startswith("..") else rel]
    return shlex.join(args)


def canonical_name(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_editable(dist: metadata.Distribution) -> bool:
    """Whether the distribution was installed with ``pip install -e`` (PEP 660/610)."""
    text = dist.read_text("direct_url.json")
    try:
        return bool(text and json.loads(text).get("dir_info", {}).get("editable"))
    except (ValueError, AttributeError):
        return False


def installed() -> list[tuple[str, str, bool]]:
    """(name, version, editable) of every importable distribution, sorted by name.

    When a name is installed twice, the first on ``sys.path`` wins, as for imports; it counts
    as editable if any copy is (the ``*.egg-info`` that ``pip install -e`` leaves in the
    source tree shadows the editable record when the source folder is on ``sys.path``).
    """
    found: dict[str, tuple[str, str, bool]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = canonical_name(name)
        first = found.get(key, (name, dist.version, False))
        found[key] = (first[0], first[1], first[2] or is_editable(dist))
    return [found[key] for key in sorted(found)]


def lock_text() -> str:
    """``pip freeze``-style ``name==version`` lines; editable installs become comments."""
    info = platform_info()
    lines = [f"# Python {info['python']} ({info['implementation']}) on {info['platform']}"]
    for name, version, editable in installed():
        if editable:
            lines.append(f"# {name}=={version} (editable install of the archived source)")
        else:
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def resolved_config(text: str) -> str:
    """Check that ``text`` is a JSON object and return it unchanged (bytes define the hash)."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise PublishError(f"--json is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise PublishError("--json must be a JSON object (the resolved config)")
    return text if text.endswith("\n") else text + "\n"
