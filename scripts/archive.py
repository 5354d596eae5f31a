"""Deterministic archive of a finished study, its verification, provenance and lock.

    python scripts/archive.py build --out dist --name deeplinear --version 0.1.0 \\
        --config-file results/config.json --member src workflow ... \\
        [--lock results/requirements.lock] [--provenance results/provenance.json]
    python scripts/archive.py verify dist/deeplinear-0.1.0-<hash>.tar.gz
    python scripts/archive.py provenance --out results/provenance.json --config-file FILE \\
        [--command STR]
    python scripts/archive.py lock --out results/requirements.lock
    python scripts/archive.py config --out results/config.json --json '{...}'

``build`` writes ``DIR/<name>-<version>-<hash>.tar.gz``, where ``<hash>`` is the first 8 hex
digits of the SHA-256 of the config file. Every member lies under the folder
``<name>-<version>-<hash>/``, and the tarball is byte-identical for identical inputs: members
sorted by path, fixed mtime (``SOURCE_DATE_EPOCH`` or 1980-01-01), uid/gid 0, no user names,
modes 0644/0755, PAX format, gzip without timestamp or file name. ``SHA256SUMS`` (the format
of ``sha256sum``) lists every other file; ``verify`` recomputes it and names the first
mismatch. Member paths are relative to the working directory, which must contain them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO, Any

DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest date zip can store as well
MANIFEST = "SHA256SUMS"
SKIP_DIRS = frozenset(
    {"__pycache__", ".ipynb_checkpoints", ".snakemake", ".pytest_cache", ".ruff_cache"}
)
SKIP_SUFFIXES = (".pyc", ".egg-info")
PACKAGES = (
    "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "seaborn", "snakemake",
    "papermill", "scikit-learn", "threadpoolctl",
)  # fmt: skip
CHUNK = 1 << 20
MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")


class ArchiveError(Exception):
    """A problem with the inputs of a subcommand; the message names the file."""


# --- hashing -------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(config_file: Path) -> str:
    """First 8 hex digits of the SHA-256 of the (symlink-resolved) config file's bytes."""
    return sha256_file(config_file.resolve())[:8]


class HashingReader:
    """File wrapper that hashes what is read, to catch a file changed while archiving."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._digest.update(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


# --- build ---------------------------------------------------------------------------------


def source_date_epoch() -> int:
    """The fixed member mtime: ``SOURCE_DATE_EPOCH`` if set, else 1980-01-01."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return DEFAULT_EPOCH
    if not value.isdigit():
        raise ArchiveError(f"SOURCE_DATE_EPOCH must be a non-negative integer, got {value!r}")
    return int(value)


def arcname(path: Path, root: Path) -> str:
    """Path of a member relative to ``root`` (POSIX separators); rejects paths outside it."""
    absolute = Path(os.path.abspath(path))
    try:
        rel = absolute.relative_to(os.path.abspath(root))
    except ValueError:
        raise ArchiveError(f"archive member {path} lies outside {root}") from None
    name = rel.as_posix()
    if name in ("", ".") or "\n" in name or "\\" in name:
        raise ArchiveError(f"archive member {path!s} has no usable name inside {root}")
    return name


def skipped(name: str) -> bool:
    """Caches and build leftovers that never belong in an archive."""
    return name in SKIP_DIRS or name.endswith(SKIP_SUFFIXES)


def walk_files(path: Path) -> Iterator[Path]:
    """The file itself, or every file below a folder (caches skipped), in sorted order."""
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        raise ArchiveError(f"archive member not found: {path}")
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not skipped(d))
        for name in sorted(files):
            file = Path(folder, name)
            if skipped(name):
                continue
            if not file.is_file():
                raise ArchiveError(f"archive member {file} is not a regular file")
            yield file


def collect(members: Iterable[Path], root: Path) -> dict[str, Path]:
    """Archive name -> source file for every file under the members, sorted by path."""
    files: dict[str, Path] = {}
    for member in members:
        for file in walk_files(member):
            files[arcname(file, root)] = file
    if MANIFEST in files:
        raise ArchiveError(f"a member may not be called {MANIFEST}: it is written by build")
    return dict(sorted(files.items(), key=lambda item: path_key(item[0])))


def path_key(name: str) -> list[str]:
    """Sort key that keeps a folder's content together: by path components."""
    return name.split("/")


def digests(files: dict[str, Path]) -> dict[str, str]:
    """Archive name -> hex SHA-256 of its source file."""
    return {name: sha256_file(path) for name, path in files.items()}


def manifest(sums: dict[str, str]) -> bytes:
    """``sha256sum``-format lines, ``<hex>  <path>``, in the given (sorted) order."""
    return "".join(f"{digest}  {name}\n" for name, digest in sums.items()).encode()


def parent_dirs(names: Iterable[str]) -> set[str]:
    """Every proper ancestor folder of the given relative paths."""
    return {str(parent) for name in names for parent in PurePosixPath(name).parents} - {"."}


def tarinfo(
    name: str, mtime: int, size: int = 0, *, directory: bool = False, exe: bool = False
) -> tarfile.TarInfo:
    """A header with normalized metadata: owner root, no user names, fixed mtime and mode."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = 0 if directory else size
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
    info.mode = 0o755 if directory or exe else 0o644
    return info


def is_executable(path: Path) -> bool:
    """Whether any execute bit is set on the file."""
    return bool(path.stat().st_mode & 0o111)


def write_tar(fileobj: IO[bytes], top: str, files: dict[str, Path], mtime: int) -> None:
    """Stream the top folder, its subfolders, the files and SHA256SUMS, sorted by path."""
    expected = digests(files)
    sums = manifest(expected)
    entries = sorted([*parent_dirs(files), *files, MANIFEST], key=path_key)
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarinfo(top, mtime, directory=True))
        for name in entries:
            if name == MANIFEST:
                info = tarinfo(f"{top}/{name}", mtime, len(sums))
                tar.addfile(info, io.BytesIO(sums))
            elif name not in files:
                tar.addfile(tarinfo(f"{top}/{name}", mtime, directory=True))
            else:
                _add_file(tar, f"{top}/{name}", files[name], mtime, expected[name])


def _add_file(tar: tarfile.TarFile, name: str, path: Path, mtime: int, digest: str) -> None:
    """Add one file, checking it still has the content that SHA256SUMS lists."""
    info = tarinfo(name, mtime, path.stat().st_size, exe=is_executable(path))
    with path.open("rb") as fh:
        reader = HashingReader(fh)
        tar.addfile(info, reader)
    if reader.hexdigest() != digest:
        raise ArchiveError(f"{path} changed while it was being archived")


def build(
    out: Path, name: str, version: str, config_file: Path, members: list[Path], root: Path
) -> Path:
    """Write ``out/<name>-<version>-<hash>.tar.gz`` atomically and return its path.

    The config file is always a member; members are relative to (and inside) ``root``.
    """
    top = f"{name}-{version}-{config_hash(config_file)}"
    files = collect([config_file, *members], root)
    mtime = source_date_epoch()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{top}.tar.gz"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{top}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
                write_tar(gz, top, files, mtime)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def code_files(members: Iterable[str]) -> list[str]:
    """Every file that ``build`` takes from the members; a missing member stays as it is.

    For the workflow, which lists these files as inputs so that the archive is rebuilt when
    one changes (and a missing one is named by Snakemake).
    """
    files: list[str] = []
    for member in members:
        if Path(member).exists():
            files.extend(str(path) for path in walk_files(Path(member)))
        else:
            files.append(member)
    return files


# --- verify --------------------------------------------------------------------------------


def unsafe_reason(info: tarfile.TarInfo) -> str | None:
    """Why a member may not be unpacked (absolute, ``..``, link or device), or None."""
    name = info.name
    if not name or name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return "absolute or non-POSIX path"
    if ".." in PurePosixPath(name).parts:
        return "path leaves the archive folder (..)"
    if not (info.isfile() or info.isdir()):
        return "not a regular file or folder (link or device)"
    return None


def check_members(infos: list[tarfile.TarInfo]) -> str:
    """Reject unsafe, duplicate or scattered members; return the single top folder."""
    tops, seen = set(), set()
    for info in infos:
        reason = unsafe_reason(info)
        name = info.name.rstrip("/")
        if reason is None and name in seen:
            reason = "duplicate member"
        if reason is not None:
            raise ArchiveError(f"UNSAFE {info.name}: {reason}")
        seen.add(name)
        tops.add(PurePosixPath(name).parts[0])
    if len(tops) != 1:
        raise ArchiveError(f"UNSAFE archive: expected one top folder, found {sorted(tops)}")
    return tops.pop()


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack after checking every member name; return the top folder."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            top = check_members(tar.getmembers())
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.11.4; names were checked above
                tar.extractall(dest)
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as err:
        raise ArchiveError(f"MISMATCH {archive}: not a readable .tar.gz ({err})") from None
    return dest / top


def read_manifest(path: Path) -> dict[str, str]:
    """Relative path -> hex digest from a SHA256SUMS file; malformed lines are errors."""
    if not path.is_file():
        raise ArchiveError(f"MISMATCH {MANIFEST}: the manifest is missing")
    listed: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = MANIFEST_LINE.match(line)
        if match is None or match.group(2) in listed:
            raise ArchiveError(f"MISMATCH {MANIFEST}: malformed or repeated line {number}")
        listed[match.group(2)] = match.group(1)
    return listed


def unpacked_files(top: Path) -> dict[str, Path]:
    """Relative path -> file for every unpacked file except the manifest."""
    files = {p.relative_to(top).as_posix(): p for p in top.rglob("*") if p.is_file()}
    files.pop(MANIFEST, None)
    return files


def first_mismatch(listed: dict[str, str], files: dict[str, Path], out: IO[str]) -> str | None:
    """Compare in path order, printing ``OK <path>``; return the first problem, or None."""
    for rel in sorted(listed.keys() | files.keys(), key=path_key):
        if rel not in files:
            return f"MISMATCH {rel}: listed in {MANIFEST} but missing from the archive"
        if rel not in listed:
            return f"MISMATCH {rel}: in the archive but not listed in {MANIFEST}"
        actual = sha256_file(files[rel])
        if actual != listed[rel]:
            return f"MISMATCH {rel}: SHA-256 is {actual}, {MANIFEST} lists {listed[rel]}"
        print(f"OK {rel}", file=out)
    return None


def verify(archive: Path, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Unpack to a temporary folder and check every member; 0 if all match, else 1."""
    try:
        with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
            top = unpack(archive, Path(tmp))
            listed = read_manifest(top / MANIFEST)
            problem = first_mismatch(listed, unpacked_files(top), out)
    except ArchiveError as error:
        problem = str(error)
    if problem is not None:
        print(problem, file=err)
        return 1
    print(f"verified {len(listed)} members of {archive.name} against {MANIFEST}", file=out)
    return 0


# --- provenance and lock -------------------------------------------------------------------


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

    Holds no timestamp, so the same inputs give the same bytes.
    """
    return {
        "command": command,
        "config": {
            "path": config_file.as_posix(),
            "sha256": sha256_file(config_file),
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

    When a name is installed twice, the first on ``sys.path`` wins, as for imports.
    """
    found: dict[str, tuple[str, str, bool]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical_name(name) not in found:
            found[canonical_name(name)] = (name, dist.version, is_editable(dist))
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


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file beside it, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolved_config(text: str) -> str:
    """Check that ``text`` is a JSON object and return it unchanged (bytes define the hash)."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ArchiveError(f"--json is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ArchiveError("--json must be a JSON object (the resolved config)")
    return text if text.endswith("\n") else text + "\n"


# --- command line --------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The command-line interface: build, verify, provenance, lock, config."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the deterministic tarball")
    b.add_argument("--out", type=Path, required=True, help="folder for the tarball")
    b.add_argument("--name", required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--config-file", type=Path, required=True, help="names the archive")
    b.add_argument("--member", type=Path, nargs="+", action="extend", default=[])
    b.add_argument("members", type=Path, nargs="*", help="more members (same as --member)")
    b.add_argument("--lock", type=Path, help="requirements lock to include")
    b.add_argument("--provenance", type=Path, help="provenance JSON to include")
    v = sub.add_parser("verify", help="check every member against SHA256SUMS")
    v.add_argument("archive", type=Path)
    pr = sub.add_parser("provenance", help="write provenance JSON (no timestamp)")
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--config-file", type=Path, required=True)
    pr.add_argument("--command", help="the command that made the results")
    lk = sub.add_parser("lock", help="write name==version of every installed distribution")
    lk.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("config", help="write the resolved config (a JSON object) verbatim")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--json", required=True)
    return p


def run(args: argparse.Namespace) -> int:
    """Dispatch one parsed subcommand."""
    if args.cmd == "verify":
        return verify(args.archive)
    if args.cmd == "build":
        extra = [p for p in (args.lock, args.provenance) if p is not None]
        members = [*args.member, *args.members, *extra]
        out = build(args.out, args.name, args.version, args.config_file, members, Path.cwd())
        print(out)
    elif args.cmd == "provenance":
        command = args.command or shlex.join(["python", *sys.argv])
        record = provenance(args.config_file, command, Path.cwd())
        write_text(args.out, json.dumps(record, indent=2, sort_keys=True) + "\n")
    elif args.cmd == "lock":
        write_text(args.out, lock_text())
    else:
        write_text(args.out, resolved_config(args.json))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; input problems print ``error: ...`` and exit 2."""
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (ArchiveError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
