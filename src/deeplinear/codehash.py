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


def imported_modules(source: str, package_dir: Path) -> set[str]:
    """Names of the modules of the package (files ``<name>.py`` in ``package_dir``) that
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
            if (package_dir / f"{parts[1]}.py").is_file():
                found.add(parts[1])
    return found


def dependencies(entries: Iterable[str | Path], package_dir: str | Path) -> list[Path]:
    """Source files of the package that ``entries`` reach by imports (sorted), with the
    package's ``__init__.py`` (run by any import of the package)."""
    package_dir = Path(package_dir)
    todo = [Path(e) for e in entries]
    seen: set[str] = set()
    while todo:
        for name in imported_modules(_source(todo.pop()), package_dir) - seen:
            seen.add(name)
            todo.append(package_dir / f"{name}.py")
    files = [package_dir / f"{name}.py" for name in seen]
    init = package_dir / "__init__.py"
    return sorted({*files, *([init] if init.is_file() else [])})


def code_digest(entries: Iterable[str | Path], package_dir: str | Path) -> str:
    """16-hex SHA-256 over the names and bytes of the package files ``entries`` depend on
    (:func:`dependencies`); the entries themselves are not included (Snakemake tracks a
    rule's script and its notebook input on its own)."""
    h = hashlib.sha256()
    for path in dependencies(entries, package_dir):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
