"""Deterministic archive of a finished study, its verification, provenance and lock.

    python scripts/archive.py build --out dist --name deeplinear --version 0.1.0 \\
        --config-file config/config.yaml MEMBER [MEMBER ...]
    python scripts/archive.py verify dist/deeplinear-0.1.0-<hash>.tar.gz
    python scripts/archive.py provenance --out results/provenance.json --config-file FILE
    python scripts/archive.py lock --out results/requirements.lock

The tarball is byte-identical for identical inputs: members sorted, fixed mtime, uid/gid 0,
no user names, normalized modes, gzip without timestamp or file name. ``SHA256SUMS`` lists
every other member; ``verify`` recomputes them and names the first mismatch.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", 315532800))  # 1980-01-01
SKIP = {"__pycache__", ".ipynb_checkpoints", ".snakemake"}
PACKAGES = [
    "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "seaborn", "snakemake",
    "papermill", "scikit-learn", "threadpoolctl",
]  # fmt: skip


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_hash(config_file: Path) -> str:
    """First 8 hex digits of the SHA-256 of the config file's bytes."""
    return sha256(config_file.read_bytes())[:8]


def collect(members: list[str]) -> dict[str, bytes]:
    """Relative path -> bytes of every file under the given files and folders, sorted."""
    files: dict[str, bytes] = {}
    for member in members:
        path = Path(member)
        if path.is_dir():
            for sub in sorted(path.rglob("*")):
                if sub.is_file() and not SKIP & set(sub.parts):
                    files[sub.as_posix()] = sub.read_bytes()
        elif path.is_file():
            files[path.as_posix()] = path.read_bytes()
        else:
            raise FileNotFoundError(f"archive member not found: {member}")
    return dict(sorted(files.items()))


def manifest(files: dict[str, bytes]) -> bytes:
    return "".join(f"{sha256(data)}  {name}\n" for name, data in files.items()).encode()


def _tarinfo(name: str, size: int, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid = size, MTIME, 0, 0
    info.uname = info.gname = ""
    info.mode = 0o755 if executable else 0o644
    return info


def build(out: Path, name: str, version: str, config_file: Path, members: list[str]) -> Path:
    """Write the deterministic tarball and return its path."""
    files = collect(members)
    files["SHA256SUMS"] = manifest(files)
    top = f"{name}-{version}-{config_hash(config_file)}"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            data = files[rel]
            executable = os.access(rel, os.X_OK) if Path(rel).exists() else False
            tar.addfile(_tarinfo(f"{top}/{rel}", len(data), executable), io.BytesIO(data))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{top}.tar.gz"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".archive.")
    with (
        os.fdopen(fd, "wb") as fh,
        gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(raw.getvalue())
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


def verify(archive: Path) -> int:
    """Check every member against SHA256SUMS; print one line each; 0 if all match."""
    with tarfile.open(archive, "r:gz") as tar:
        members = {}
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if m.name.startswith("/") or ".." in parts or not m.isfile():
                print(f"MISMATCH {m.name}: unsafe or non-file member", file=sys.stderr)
                return 1
            members["/".join(parts[1:])] = tar.extractfile(m).read()
    if "SHA256SUMS" not in members:
        print("MISMATCH SHA256SUMS: manifest missing", file=sys.stderr)
        return 1
    listed = {}
    for line in members.pop("SHA256SUMS").decode().splitlines():
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
    for rel in sorted(set(listed) | set(members)):
        if rel not in members:
            print(f"MISMATCH {rel}: listed in SHA256SUMS but missing", file=sys.stderr)
            return 1
        if rel not in listed:
            print(f"MISMATCH {rel}: not listed in SHA256SUMS", file=sys.stderr)
            return 1
        if sha256(members[rel]) != listed[rel]:
            print(f"MISMATCH {rel}: SHA-256 differs", file=sys.stderr)
            return 1
        print(f"OK {rel}")
    print(f"verified {len(listed)} members of {archive.name}")
    return 0


def git_commit() -> str:
    """The commit, with ``-dirty`` when the work tree has changes; ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def provenance(config_file: Path, command: str) -> dict:
    """What made the results: config, code version, packages, platform (no timestamp)."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "git_commit": git_commit(),
        "command": command,
        "config_file": config_file.as_posix(),
        "config_sha256": sha256(config_file.read_bytes()),
        "config": config_file.read_text(),
        "packages": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def lock() -> str:
    """``name==version`` of every installed distribution, sorted (``pip freeze`` style)."""
    dists = {(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}
    return "".join(f"{n}=={v}\n" for n, v in sorted(dists.items()) if n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the deterministic tarball")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--name", required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--config-file", type=Path, required=True)
    b.add_argument("members", nargs="+")
    v = sub.add_parser("verify", help="check every member against SHA256SUMS")
    v.add_argument("archive", type=Path)
    p = sub.add_parser("provenance", help="write provenance JSON")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config-file", type=Path, required=True)
    p.add_argument("--command", default="snakemake")
    lk = sub.add_parser("lock", help="write the exact installed versions")
    lk.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        print(build(args.out, args.name, args.version, args.config_file, args.members))
    elif args.cmd == "verify":
        return verify(args.archive)
    elif args.cmd == "provenance":
        text = json.dumps(provenance(args.config_file, args.command), indent=2, sort_keys=True)
        _write(args.out, text + "\n")
    else:
        _write(args.out, lock())
    return 0


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
