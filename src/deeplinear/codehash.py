"""Digest of the library code a workflow step runs (pipeline.md, "Reruns").

Snakemake reruns a job when its params change. Each rule's params carry
:func:`code_digest` of its entry point (a script, a notebook or a module run with
``python -m``): the SHA-256 of the source files of every ``deeplinear`` module the entry
point imports, directly or through other modules (imports inside functions included, read
from the source with :mod:`ast`, nothing is imported), plus the package's ``__init__.py``.
A change to ``theory.py`` therefore reruns exactly the steps whose code reaches it, and
``snakemake -n`` says "params changed". Standard library only.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "deeplinear"


def _source(path: Path) -> str:
    """Python source of ``path``; for a notebook (``.ipynb``) its code cells, with IPython
    magics and shell lines dropped."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return text
    cells = json.loads(text).get("cells", [])
    lines = [
        line
        for cell in cells
        if cell.get("cell_type") == "code"
        for line in "".join(cell.get("source", [])).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return "\n".join(lines)


def _module_file(parts: list[str], package_dir: Path) -> Path | None:
    """The file of module ``deeplinear.<parts>`` (a module or a subpackage's
    ``__init__.py``), or None when it is not a module of the package."""
    for n in range(len(parts), 0, -1):
        base = package_dir.joinpath(*parts[:n])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
    return None


def imported_modules(source: str, package_dir: Path) -> set[Path]:
    """Files of the package's modules (``deeplinear.x``, ``deeplinear.sub.y``) that
    ``source`` imports: ``import deeplinear.x``, ``from deeplinear import x`` and
    ``from deeplinear.x import y``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != PACKAGE or len(parts) < 2:
                continue
            path = _module_file(parts[1:], package_dir)
            if path is not None:
                found.add(path)
    return found


def dependencies(entries: Iterable[str | Path], package_dir: str | Path) -> list[Path]:
    """Source files of the package that ``entries`` reach by imports (sorted), with the
    package's ``__init__.py`` (run by any import of the package) and the entries that are
    modules of the package themselves (run with ``python -m``, which Snakemake does not
    track as it tracks a rule's script or notebook)."""
    package_dir = Path(package_dir).resolve()
    todo = [Path(e).resolve() for e in entries]
    seen: set[Path] = {e for e in todo if package_dir in e.parents}
    while todo:
        for path in imported_modules(_source(todo.pop()), package_dir) - seen:
            seen.add(path)
            todo.append(path)
    init = package_dir / "__init__.py"
    return sorted({*seen, *([init] if init.is_file() else [])})


def code_digest(entries: Iterable[str | Path], package_dir: str | Path) -> str:
    """16-hex SHA-256 over the paths (relative to the package) and bytes of the package
    files ``entries`` depend on (:func:`dependencies`)."""
    package_dir = Path(package_dir).resolve()
    h = hashlib.sha256()
    for path in dependencies(entries, package_dir):
        name = path.relative_to(package_dir).as_posix()
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
