"""The file helpers of publishing: one way to hash a file (``deeplinear.io.file_digest``,
also behind the tables' digest records), one way to write a text file.

Standard library only (``deeplinear.io`` imports numpy and pandas only inside the writers
that use them), so that ``verify`` and ``deposit`` run with nothing but Python.
"""

from __future__ import annotations

from pathlib import Path

from deeplinear.io import atomic_path, file_digest

__all__ = ["PublishError", "file_digest", "write_text_atomic"]


class PublishError(Exception):
    """A problem with the inputs of a publishing command; the message names the file."""


def write_text_atomic(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically (``deeplinear.io.atomic_path``: the umask's mode)."""
    with atomic_path(path, suffix=".tmp") as tmp:
        tmp.write_text(text, encoding="utf-8")
