"""Checks the workflow makes before any job: the tools its rules call, and other runs.

The rules run ``python`` from ``PATH`` (papermill, the scripts); a Snakemake started from a
virtual environment that is not on ``PATH`` would fail only inside the figure jobs. A second
Snakemake in the same folder stops with Snakemake's ``LockException``, whose text suggests
``--unlock``; unlocking while the first run is alive makes that run fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Modules the rules' ``python`` must import.
RULE_MODULES = ("deeplinear", "papermill", "matplotlib", "pandas")


def missing_tools(path: str | None = None) -> str | None:
    """None when ``python`` on ``path`` (default ``$PATH``) imports :data:`RULE_MODULES`;
    else what is wrong and how to run the workflow."""
    python = shutil.which("python", path=path)
    how = (
        "run the workflow through `make reproduce` (or `make smoke`), or put the project's "
        "environment first on PATH: `source .venv/bin/activate` (or "
        "`PATH=$PWD/.venv/bin:$PATH snakemake ...`); conda users: `--sdm conda`"
    )
    if python is None:
        return f"the rules run `python`, and there is none on PATH; {how}"
    code = "import " + ", ".join(RULE_MODULES)
    env = {**os.environ, "PATH": path} if path is not None else None
    proc = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"the rules run `python` from PATH ({python}), which fails `{code}` ({last}); {how}"
    return None


def other_runs(workdir: str | os.PathLike, me: int | None = None) -> list[int]:
    """Pids of the other live Snakemake processes working in ``workdir`` (not ``me`` or its
    ancestors), from ``/proc``; empty where ``/proc`` is not readable."""
    me = os.getpid() if me is None else me
    mine = set(_ancestors(me))
    target = Path(workdir).resolve()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        words = [Path(a.decode(errors="replace")).name for a in argv if a]
        is_snakemake = "snakemake" in words[:3] or ("-m" in words[:3] and "snakemake" in words[1:4])
        if is_snakemake and cwd == target and "--unlock" not in words:
            found.append(pid)
    return sorted(found)


def _ancestors(pid: int) -> list[int]:
    out = [pid]
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        out.append(pid)
    return out


def unlock_warning(pids: list[int]) -> str:
    """What to say when another run is alive: do not unlock, and how to check."""
    listed = ", ".join(map(str, pids))
    return (
        f"another Snakemake run (pid {listed}) is working in this folder. Its lock is not "
        "stale: do not use --unlock while it is alive (that makes it fail with a "
        f"MissingOutputException); check with `ps -p {pids[0]}`, and wait for it or stop it "
        f"(`kill {pids[0]}`) first"
    )
