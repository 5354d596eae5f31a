"""The file helpers of publishing: one way to hash a file, one way to write a text file.

Standard library only (``deeplinear.io`` imports numpy and pandas only inside the writers
that use them), so that ``verify`` and ``deposit`` run with nothing but Python.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from deeplinear.io import atomic_path

#: Bytes read at a time while hashing.
CHUNK = 1 << 20


class PublishError(Exception):
    """A problem with the inputs of a publishing command; the message names the file."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (any ``hashlib`` algorithm, e.g. ``sha256``, ``md5``), read in
    chunks."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically (``deeplinear.io.atomic_path``: the umask's mode)."""
    with atomic_path(path, suffix=".tmp") as tmp:
        tmp.write_text(text, encoding="utf-8")
