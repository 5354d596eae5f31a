"""Deterministic archive of a finished study: build it, verify it, and the command line.

    python -m deeplinear.publish build --out dist --name deeplinear --version 0.1.0 \\
        --config-file results/config.json --member results/tables ... \\
        [--code-root DIR --code src workflow ...] [--lock FILE] [--provenance FILE]
    python -m deeplinear.publish verify ARCHIVE [--sha256 HEX|FILE] [--doi DOI | --record URL]
    python -m deeplinear.publish provenance --out results/provenance.json --config-file FILE \\
        [--command STR]
    python -m deeplinear.publish lock --out results/requirements.lock
    python -m deeplinear.publish config --out results/config.json --json '{...}'
    python -m deeplinear.publish deposit [ARCHIVE] [--publish] [--sandbox] [--record-id N]

``provenance``, ``lock`` and ``config`` are :mod:`deeplinear.publish.provenance`,
``deposit`` is :mod:`deeplinear.publish.zenodo`.

``build`` writes ``DIR/<name>-<version>-<hash>.tar.gz``, where ``<hash>`` is the first 8 hex
digits of the SHA-256 of the config file, and beside it ``<tarball>.sha256`` (the format of
``sha256sum``). Every member lies under the folder ``<name>-<version>-<hash>/``, and the
tarball is byte-identical for identical results: members sorted by path, fixed mtime
(``SOURCE_DATE_EPOCH`` or 1980-01-01), uid/gid 0, no user names, modes 0644/0755, PAX format,
gzip without timestamp or file name, and two kinds of members canonicalized (their archived
bytes differ from the files on disk; ``SHA256SUMS`` lists the archived bytes):

- executed notebooks (``*.ipynb``): papermill's and Jupyter's timing metadata
  (``start_time``, ``end_time``, ``duration``, the cell ``execution`` timestamps) removed;
- Snakemake's HTML report: the job runtimes and the job timeline emptied, as they describe
  one execution of the workflow, not its results.

``SHA256SUMS`` lists every other member; ``verify`` recomputes it and names the first
mismatch. That check only shows that an archive agrees with itself: ``--sha256`` (the hash
published with the archive) and ``--doi``/``--record`` (the Zenodo record it was deposited
in) check it against a published value.

Only the standard library is needed: ``verify`` runs from an unpacked archive as
``PYTHONPATH=<dir>/src python3 -m deeplinear.publish verify ...``. ``--member`` paths are
relative to the working directory, ``--code`` paths to ``--code-root`` (default: the working
directory).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from deeplinear.io import atomic_path
from deeplinear.publish import provenance, zenodo
from deeplinear.publish.files import PublishError, file_digest, write_text_atomic

DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest date zip can store as well
MANIFEST = "SHA256SUMS"
SKIP_DIRS = frozenset(
    {"__pycache__", ".ipynb_checkpoints", ".snakemake", ".pytest_cache", ".ruff_cache"}
)
SKIP_SUFFIXES = (".pyc", ".egg-info")
MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")

#: Notebook metadata that records when and how long a cell or notebook ran.
TIMING_KEYS = frozenset({"start_time", "end_time", "duration"})
#: Tag (and archived cell id) of the parameters cell papermill adds, which has a random id.
INJECTED = "injected-parameters"
#: The Snakemake report's data that describes one execution of the workflow.
REPORT_EXECUTION_SPECS = ("runtimes_spec", "timeline_spec")
#: The report's data whose order follows Python's set and hash order.
REPORT_UNORDERED = ("results", "categories", "rules")
#: The rule graph: its links are job-to-job edges drawn between rules, so how often an
#: edge repeats follows the jobs Snakemake looked at, not the results.
REPORT_GRAPH = "rulegraph_spec"
REPORT_MARKER = b'<script id="runtimes">'


class ArchiveError(PublishError):
    """A problem with the inputs of a subcommand; the message names the file."""


def config_hash(config_file: Path) -> str:
    """First 8 hex digits of the SHA-256 of the (symlink-resolved) config file's bytes."""
    return file_digest(config_file.resolve())[:8]


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


# --- canonical members ---------------------------------------------------------------------


def canonical_notebook(data: bytes) -> bytes:
    """An executed notebook without its timing metadata; other bytes are returned unchanged.

    Drops ``start_time``, ``end_time`` and ``duration`` from the notebook's and every cell's
    ``metadata`` and ``metadata.papermill``, and every cell's ``metadata.execution`` (Jupyter's
    message timestamps); the cell papermill injects (tag ``injected-parameters``), whose id is
    random, gets the id ``injected-parameters``. A notebook that holds none of these keeps
    its bytes; one that does is written the way nbformat writes notebooks (sorted keys,
    indent 1, trailing newline).
    """
    try:
        nb = json.loads(data)
    except ValueError:
        return data
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return data
    holders = [nb, *(cell for cell in nb["cells"] if isinstance(cell, dict))]
    changed = False
    for holder in holders:
        meta = holder.get("metadata")
        if not isinstance(meta, dict):
            continue
        if holder is not nb and "execution" in meta:
            del meta["execution"]
            changed = True
        if holder is not nb and INJECTED in meta.get("tags", ()) and "id" in holder:
            changed |= holder["id"] != INJECTED
            holder["id"] = INJECTED
        for mapping in (meta, meta.get("papermill")):
            if isinstance(mapping, dict):
                for key in TIMING_KEYS & mapping.keys():
                    del mapping[key]
                    changed = True
    if not changed:
        return data
    text = json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False, separators=(",", ": "))
    return (text + "\n").encode("utf-8")


def canonical_report(data: bytes) -> bytes:
    """A Snakemake HTML report without what differs between two renderings of equal results.

    The report keeps its data as JSON in ``<script id=...> var <name> = {...}; </script>``
    blocks. The job runtimes and the job timeline (``runtimes_spec``, ``timeline_spec``) get
    empty ``data.values`` (the charts stay, empty); ``results``, ``categories`` and ``rules``,
    whose order follows Python's set and hash order, are written with sorted keys (and sorted
    lists of results per category); the rule graph's links (job edges drawn between rules,
    repeated once per job pair Snakemake looked at) are kept once each, sorted. Other HTML
    is returned unchanged.
    """
    if REPORT_MARKER not in data:
        return data
    text = data.decode("utf-8")
    for name in (*REPORT_EXECUTION_SPECS, *REPORT_UNORDERED, REPORT_GRAPH):
        pattern = re.compile(rf'(<script id="[\w-]+">\s*var {name} = )(.*?)(;\s*</script>)', re.S)
        match = pattern.search(text)
        if match is None:
            raise ArchiveError(
                f"the Snakemake report has no 'var {name} = ...;' block: its format changed, "
                "so it cannot be archived reproducibly"
            )
        value = json.loads(match.group(2))
        if name in REPORT_EXECUTION_SPECS and isinstance(value.get("data"), dict):
            value["data"]["values"] = []
        if name == REPORT_GRAPH:
            for data in value.get("data", []):
                if str(data.get("name", "")).startswith("link-data"):
                    unique = {json.dumps(link, sort_keys=True) for link in data["values"]}
                    data["values"] = [json.loads(link) for link in sorted(unique)]
        if name == "categories":
            value = {
                cat: {sub: sorted(paths) for sub, paths in subcats.items()}
                for cat, subcats in value.items()
            }
        block = match.group(1) + json.dumps(value, sort_keys=True) + match.group(3)
        text = text[: match.start()] + block + text[match.end() :]
    return text.encode("utf-8")


def canonical_bytes(name: str, path: Path) -> bytes | None:
    """The archived bytes of a member that is canonicalized, or None to archive it as is."""
    if name.endswith(".ipynb"):
        return canonical_notebook(path.read_bytes())
    if name.endswith(".html"):
        return canonical_report(path.read_bytes())
    return None


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


def collect(groups: Iterable[tuple[Iterable[Path], Path]]) -> dict[str, Path]:
    """Archive name -> source file for every file under the members, sorted by path.

    ``groups`` pairs members with the root their archive names are relative to.
    """
    files: dict[str, Path] = {}
    for members, root in groups:
        for member in members:
            for file in walk_files(member):
                name = arcname(file, root)
                if name in files and os.path.abspath(files[name]) != os.path.abspath(file):
                    raise ArchiveError(f"two files would be archived as {name}")
                files[name] = file
    if MANIFEST in files:
        raise ArchiveError(f"a member may not be called {MANIFEST}: it is written by build")
    return dict(sorted(files.items(), key=lambda item: path_key(item[0])))


def path_key(name: str) -> list[str]:
    """Sort key that keeps a folder's content together: by path components."""
    return name.split("/")


@dataclass(frozen=True)
class Member:
    """One archived file: its source, and its bytes if they differ from the source's."""

    path: Path
    digest: str
    content: bytes | None = None


def prepare(files: dict[str, Path]) -> dict[str, Member]:
    """Hash every member (canonicalized members as archived), in the given order."""
    members = {}
    for name, path in files.items():
        content = canonical_bytes(name, path)
        if content is None:
            members[name] = Member(path, file_digest(path))
        else:
            members[name] = Member(path, hashlib.sha256(content).hexdigest(), content)
    return members


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


def write_tar(fileobj: IO[bytes], top: str, members: dict[str, Member], mtime: int) -> None:
    """Stream the top folder, its subfolders, the files and SHA256SUMS, sorted by path."""
    sums = manifest({name: member.digest for name, member in members.items()})
    entries = sorted([*parent_dirs(members), *members, MANIFEST], key=path_key)
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarinfo(top, mtime, directory=True))
        for name in entries:
            if name == MANIFEST:
                tar.addfile(tarinfo(f"{top}/{name}", mtime, len(sums)), io.BytesIO(sums))
            elif name not in members:
                tar.addfile(tarinfo(f"{top}/{name}", mtime, directory=True))
            else:
                _add_file(tar, f"{top}/{name}", members[name], mtime)


def _add_file(tar: tarfile.TarFile, name: str, member: Member, mtime: int) -> None:
    """Add one file, checking it still has the content that SHA256SUMS lists."""
    exe = is_executable(member.path)
    if member.content is not None:
        tar.addfile(tarinfo(name, mtime, len(member.content), exe=exe), io.BytesIO(member.content))
        return
    info = tarinfo(name, mtime, member.path.stat().st_size, exe=exe)
    with member.path.open("rb") as fh:
        reader = HashingReader(fh)
        tar.addfile(info, reader)
    if reader.hexdigest() != member.digest:
        raise ArchiveError(f"{member.path} changed while it was being archived")


def checksum_line(path: Path, digest: str) -> str:
    """One ``sha256sum`` line naming the file relative to its folder."""
    return f"{digest}  {path.name}\n"


def build(
    out: Path,
    name: str,
    version: str,
    config_file: Path,
    members: list[Path],
    root: Path,
    code: Iterable[Path] = (),
    code_root: Path | None = None,
) -> Path:
    """Write ``out/<name>-<version>-<hash>.tar.gz`` and its ``.sha256`` atomically.

    The config file is always a member. ``members`` are relative to (and inside) ``root``,
    ``code`` inside ``code_root`` (default ``root``). Returns the tarball's path.
    """
    top = f"{name}-{version}-{config_hash(config_file)}"
    files = collect([([config_file, *members], root), (code, code_root or root)])
    prepared = prepare(files)
    mtime = source_date_epoch()
    target = out / f"{top}.tar.gz"
    with atomic_path(target, suffix=".tmp") as tmp:
        with tmp.open("wb") as fh:
            with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
                write_tar(gz, top, prepared, mtime)
            fh.flush()
            os.fsync(fh.fileno())
    write_text_atomic(sha256_path(target), checksum_line(target, file_digest(target)))
    return target


def sha256_path(archive: Path) -> Path:
    """Where ``build`` writes the tarball's hash: ``<tarball>.sha256``."""
    return archive.with_name(archive.name + ".sha256")


def code_files(members: Iterable[str], root: str | os.PathLike[str] = ".") -> list[str]:
    """Every file that ``build`` takes from the members (relative to ``root``), as paths
    relative to the working directory; a missing member stays as it is.

    For the workflow, which lists these files as inputs so that the archive is rebuilt when
    one changes (and a missing one is named by Snakemake).
    """
    files: list[str] = []
    for member in members:
        path = Path(root, member)
        found = walk_files(path) if path.exists() else [path]
        files.extend(os.path.relpath(file) for file in found)
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
        actual = file_digest(files[rel])
        if actual != listed[rel]:
            return f"MISMATCH {rel}: SHA-256 is {actual}, {MANIFEST} lists {listed[rel]}"
        print(f"OK {rel}", file=out)
    return None


def published_sha256(value: str, archive: Path) -> str:
    """The hash given to ``--sha256``: 64 hex digits, or a ``sha256sum`` file naming the
    archive (or holding a single line)."""
    if HEX64.match(value.strip()):
        return value.strip().lower()
    path = Path(value)
    if not path.is_file():
        raise ArchiveError(f"--sha256 {value!r} is neither 64 hex digits nor a readable file")
    lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line]
    pairs = [(parts[0], parts[-1].lstrip("*")) for parts in lines if len(parts) >= 2]
    named = [digest for digest, name in pairs if Path(name).name == archive.name]
    candidates = named or ([pairs[0][0]] if len(pairs) == 1 else [])
    if len(candidates) != 1 or not HEX64.match(candidates[0]):
        raise ArchiveError(f"--sha256 file {path} holds no SHA-256 line for {archive.name}")
    return candidates[0].lower()


def check_published(archive: Path, expected: str, source: str, out: IO[str]) -> str | None:
    """Compare the tarball's SHA-256 with a published one; return the problem, or None."""
    try:
        actual = file_digest(archive)
    except OSError as err:
        return f"MISMATCH {archive}: cannot read the archive ({err})"
    if actual != expected:
        return (
            f"MISMATCH {archive.name}: SHA-256 is {actual}, but {source} is {expected}; "
            "this is not the published archive"
        )
    print(f"OK {archive.name}: SHA-256 {actual} matches {source}", file=out)
    return None


def check_record(archive: Path, ref: str, out: IO[str]) -> str | None:
    """Compare the tarball with the Zenodo record of a DOI or record URL: the file's md5
    checksum and, if the record publishes one, its SHA-256. Return the problem, or None."""
    record = zenodo.fetch_record(ref)
    entry = zenodo.record_file(record, archive.name)
    where = f"record {record.get('id', '?')} ({ref})"
    if entry is None:
        names = ", ".join(zenodo.record_file_names(record)) or "none"
        return f"MISMATCH {archive.name}: {where} has no file of that name (files: {names})"
    md5 = file_digest(archive, "md5")
    listed = zenodo.md5_of(entry)
    if md5 != listed:
        return f"MISMATCH {archive.name}: md5 is {md5}, {where} lists {listed}"
    print(f"OK {archive.name}: md5 {md5} matches {where}", file=out)
    sha = zenodo.published_sha256_in(record, archive.name)
    if sha is None:
        print(f"note: {where} publishes no SHA-256 for {archive.name}; md5 checked", file=out)
        return None
    return check_published(archive, sha, f"the SHA-256 published in {where}", out)


def verify(
    archive: Path,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    *,
    sha256: str | None = None,
    record: str | None = None,
) -> int:
    """Check the archive; 0 if all checks pass, else 1 (the first problem on ``err``).

    With ``sha256`` (hex, or a sha256sum file) or ``record`` (a Zenodo DOI or record URL) the
    tarball is first compared with the published value; then it is unpacked to a temporary
    folder and every member is checked against SHA256SUMS.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    problem = None
    try:
        if sha256 is not None:
            expected = published_sha256(sha256, archive)
            problem = check_published(archive, expected, "the published SHA-256", out)
        if problem is None and record is not None:
            problem = check_record(archive, record, out)
        if problem is None:
            with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
                top = unpack(archive, Path(tmp))
                listed = read_manifest(top / MANIFEST)
                problem = first_mismatch(listed, unpacked_files(top), out)
    except ArchiveError as error:
        problem = str(error)
    except zenodo.ZenodoError as error:  # the record could not be read
        problem = f"error: {error}"
    if problem is not None:
        print(problem, file=err)
        return 1
    print(f"verified {len(listed)} members of {archive.name} against {MANIFEST}", file=out)
    if sha256 is None and record is None:
        print(
            "note: this shows only that the archive agrees with itself; add --sha256 HASH "
            "or --doi DOI to check it against the published archive",
            file=out,
        )
    return 0


# --- command line --------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The command-line interface: build, verify, provenance, lock, config, deposit."""
    p = argparse.ArgumentParser(
        prog="python -m deeplinear.publish",
        description="Publish a finished study: build and verify its deterministic archive, "
        "write its provenance, lock and resolved config, deposit it on Zenodo.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the deterministic tarball and its .sha256")
    b.add_argument("--out", type=Path, required=True, help="folder for the tarball")
    b.add_argument("--name", required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--config-file", type=Path, required=True, help="names the archive")
    b.add_argument("--member", type=Path, nargs="+", action="extend", default=[])
    b.add_argument("members", type=Path, nargs="*", help="more members (same as --member)")
    b.add_argument("--code", type=Path, nargs="+", action="extend", default=[])
    b.add_argument("--code-root", type=Path, help="folder --code paths are relative to")
    b.add_argument("--lock", type=Path, help="requirements lock to include")
    b.add_argument("--provenance", type=Path, help="provenance JSON to include")
    v = sub.add_parser("verify", help="check every member, and the published hash if given")
    v.add_argument("archive", type=Path)
    v.add_argument("--sha256", help="published SHA-256 (64 hex digits, or a sha256sum file)")
    source = v.add_mutually_exclusive_group()
    source.add_argument("--doi", help="DOI of the Zenodo record the archive was deposited in")
    source.add_argument("--record", help="URL of that Zenodo record")
    pr = sub.add_parser("provenance", help="write provenance JSON (no timestamp)")
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--config-file", type=Path, required=True)
    pr.add_argument("--command", help="the command that made the results")
    pr.add_argument("--project-dir", type=Path, help="folder git looks in (default: .)")
    lk = sub.add_parser("lock", help="write name==version of every installed distribution")
    lk.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("config", help="write the resolved config (a JSON object) verbatim")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--json", required=True)
    zenodo.add_deposit_parser(sub)
    return p


def run(args: argparse.Namespace) -> int:
    """Dispatch one parsed subcommand."""
    if args.cmd == "verify":
        return verify(args.archive, sha256=args.sha256, record=args.doi or args.record)
    if args.cmd == "deposit":
        return zenodo.run_deposit(args)
    if args.cmd == "build":
        extra = [p for p in (args.lock, args.provenance) if p is not None]
        members = [*args.member, *args.members, *extra]
        root = Path.cwd()
        code = [(args.code_root or root) / path for path in args.code]
        out = build(
            args.out, args.name, args.version, args.config_file, members, root, code,
            args.code_root,
        )  # fmt: skip
        print(out)
        print(f"SHA-256 {file_digest(out)}  {out.name}")
    elif args.cmd == "provenance":
        command = args.command or shlex.join(["python", *sys.argv])
        cwd = args.project_dir or Path.cwd()
        record = provenance.provenance(args.config_file, command, cwd)
        write_text_atomic(args.out, json.dumps(record, indent=2, sort_keys=True) + "\n")
    elif args.cmd == "lock":
        write_text_atomic(args.out, provenance.lock_text())
    else:
        write_text_atomic(args.out, provenance.resolved_config(args.json))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; input problems print ``error: ...`` and exit 2."""
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (PublishError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
