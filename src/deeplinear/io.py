"""Atomic writers: write to a temporary file in the target folder, then rename.

A reader (or a rerun after an interruption) never sees a half-written file. Files get the
mode the umask gives a new file (0644 with umask 022), as if written by ``open``.

numpy and pandas are imported only by the writers that need them, so that
:func:`atomic_path` (used by ``deeplinear.publish``) needs only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Mode requested for new files; the kernel removes the umask's bits, as for ``open``.
NEW_FILE_MODE = 0o666


def _create_temporary(path: Path, suffix: str) -> Path:
    """Create an empty, unique file beside ``path`` with the umask's mode; return its path.

    ``tempfile.mkstemp`` would create it with mode 0600 whatever the umask; ``os.open``
    with ``O_CREAT | O_EXCL`` is as safe against collisions and lets the umask apply.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(tmp, flags, NEW_FILE_MODE))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no unused temporary name beside {path}")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary file exists (empty) when yielded and has the mode ``open`` would give
    a new file under the current umask; the renamed file keeps that mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path, suffix or path.suffix)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """CSV with full float precision (``repr`` round-trip) and no index."""
    _write(path, lambda p: df.to_csv(p, index=False, float_format="%.17g", lineterminator="\n"))


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Parquet (pyarrow, zstd); deterministic for equal frames."""
    _write(path, lambda p: df.to_parquet(p, index=False, engine="pyarrow", compression="zstd"))


def write_json(obj, path: str | os.PathLike) -> None:
    """Pretty JSON with sorted keys (deterministic)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    _write(path, lambda p: p.write_text(text))


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Uncompressed ``.npz`` of named arrays, bitwise reproducible (fixed zip timestamps).

    ``numpy.savez`` stamps each member with the current time; this writer does not.
    """

    import numpy as np

    def writer(p: Path) -> None:
        with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_STORED) as zf:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(arrays[name]), allow_pickle=False)

    _write(path, writer)


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialize {type(obj).__name__} to JSON")


@contextmanager
def script_log(path: str | os.PathLike, name: str):
    """Log of one workflow job: yields ``say(msg)``, which writes a line to the log and to
    stderr (Snakemake shows it as progress). An :class:`~deeplinear.errors.InputError`
    (bad input: a damaged table, a dataset that is not the config's) ends the job with its
    message and exit status 1, without a traceback; any other exception is written to the
    log with its traceback, then raised.
    """
    import sys
    import traceback

    from deeplinear.errors import InputError

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log:

        def say(msg: str) -> None:
            line = f"[{name}] {msg}"
            print(line, file=log, flush=True)
            print(line, file=sys.stderr, flush=True)

        try:
            yield say
        except InputError as err:  # bad input: the message names it, no traceback
            say(f"failed: {err}")
            raise SystemExit(1) from None
        except Exception as err:
            traceback.print_exc(file=log)
            say(f"failed: {err}")
            raise


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` written by :func:`save_npz`."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


#: Bytes read at a time while hashing a file.
CHUNK = 1 << 20


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (any ``hashlib`` algorithm, e.g. ``sha256``, ``md5``), read in
    chunks: the one file hash of the project (tables' digest records, the archive)."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def json_digest(obj) -> str:
    """SHA-256 (hex) of the canonical JSON (sorted keys) of ``obj``: run ids, shard digests
    (``plan.digest``) and dataset spec digests (:func:`spec_digest`)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def spec_digest(spec: Mapping) -> str:
    """SHA-256 (hex) of a dataset's config entry as canonical JSON (sorted keys): what a
    dataset file records and what loading it checks (:func:`load_dataset`)."""
    return json_digest(dict(spec))


def save_dataset(path: str | os.PathLike, ds, name: str, spec: Mapping) -> None:
    """Save a :class:`~deeplinear.data.Dataset` with its name and the digest of its config
    entry ``spec`` (:func:`spec_digest`), which :func:`load_dataset` checks."""
    save_npz(
        path, X=ds.X, Y=ds.Y, meta=json.dumps(ds.meta), name=name, spec_digest=spec_digest(spec)
    )


def load_dataset(path: str | os.PathLike, name: str | None = None, spec: Mapping | None = None):
    """The :class:`~deeplinear.data.Dataset` saved by the workflow's ``dataset`` rule; an
    unreadable file raises :class:`~deeplinear.errors.InputError` naming it and the fix.

    With ``name`` and ``spec`` (the config entry ``datasets.<name>``), the file must be
    that dataset: its recorded spec digest must equal :func:`spec_digest` of ``spec``
    (another valid dataset copied over it, or a file of an older config, is an error).
    """
    from deeplinear.data import Dataset
    from deeplinear.errors import InputError, rebuild_command

    rebuild = f"rebuild it with: {rebuild_command(path)}"
    try:
        arrays = load_npz(path)
        ds = Dataset(arrays["X"], arrays["Y"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(
            f"dataset file {path} is unreadable ({type(err).__name__}: {err}); {rebuild}"
        ) from None
    if spec is not None:
        want = spec_digest(spec)
        if "spec_digest" not in arrays:
            raise InputError(
                f"dataset file {path} records no spec digest (written by another version "
                f"of the code), so it cannot be checked against config key datasets.{name}; "
                f"{rebuild}"
            )
        held, got = str(arrays.get("name", "?")), str(arrays["spec_digest"])
        if got != want:
            raise InputError(
                f"dataset file {path} holds dataset {held!r} (spec digest {got[:16]}...), not "
                f"dataset {name!r} of the config (config key datasets.{name}, spec digest "
                f"{want[:16]}...); {rebuild}"
            )
    return ds


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV or Parquet result table; an unreadable file raises
    :class:`~deeplinear.errors.InputError` naming it and the command that rebuilds it."""
    import pandas as pd

    from deeplinear.errors import InputError, rebuild_command

    path = Path(path)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as err:  # pyarrow, pandas and OS errors alike: name the file
        raise InputError(
            f"table {path} is unreadable ({type(err).__name__}: {err}); "
            f"rebuild it with: {rebuild_command(path)}"
        ) from None
