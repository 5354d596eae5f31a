"""The deterministic archive (scripts/archive.py): build, verify, provenance and lock."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, snakemake

SCRIPT = [sys.executable, str(ROOT / "scripts/archive.py")]
MEMBERS = ["results", "figures", "bin/run.sh"]
FILES = [
    "SHA256SUMS",
    "bin/run.sh",
    "config.yaml",
    "figures/f.png",
    "results/nested/deeper/notes.txt",
    "results/tables/runs.csv",
]
BUILD = ["build", "--out", "dist", "--name", "x", "--version", "1", "--config-file", "config.yaml"]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run scripts/archive.py with this interpreter."""
    full_env = None if env is None else {**os.environ, **env}
    return subprocess.run(
        [*SCRIPT, *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small fake results tree: nested folders, a csv, a binary, an executable, caches."""
    root = tmp_path / "project"
    (root / "results/tables").mkdir(parents=True)
    (root / "results/tables/runs.csv").write_text("run_id,loss\na,1.0\nb,0.5\n")
    (root / "results/nested/deeper").mkdir(parents=True)
    (root / "results/nested/deeper/notes.txt").write_text("nested\n")
    (root / "results/__pycache__").mkdir()
    (root / "results/__pycache__/x.cpython-311.pyc").write_bytes(b"\0cache")
    (root / "figures").mkdir()
    (root / "figures/f.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (root / "figures/.ipynb_checkpoints").mkdir()
    (root / "figures/.ipynb_checkpoints/f-checkpoint.png").write_bytes(b"old")
    (root / "bin").mkdir()
    (root / "bin/run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "bin/run.sh").chmod(0o755)
    (root / "config.yaml").write_text("seed: 1\n")
    return root


def build(tree: Path, out: str = "dist", env: dict[str, str] | None = None) -> Path:
    """Build the archive of the fake tree and return its path."""
    args = [*BUILD[:2], out, *BUILD[3:]]
    members = [arg for member in MEMBERS for arg in ("--member", member)]
    proc = run(*args, *members, cwd=tree, env=env)
    assert proc.returncode == 0, proc.stderr
    return tree / proc.stdout.strip()


def verify(archive: Path, cwd: Path) -> subprocess.CompletedProcess:
    return run("verify", str(archive), cwd=cwd)


def rewrite(archive: Path, change: Callable[[str, bytes], bytes | None], extra=()) -> None:
    """Rewrite the tarball: ``change(relpath, data)`` returns new bytes, or None to drop."""
    with tarfile.open(archive, "r:gz") as tar:
        items = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in items:
            rel = info.name.split("/", 1)[1] if "/" in info.name else ""
            new = change(rel, data) if info.isfile() else data
            if new is not None:
                info.size = len(new)
                tar.addfile(info, io.BytesIO(new))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(gzip.compress(raw.getvalue()))


def test_name_is_name_version_and_config_hash(tree):
    archive = build(tree)
    digest = hashlib.sha256(b"seed: 1\n").hexdigest()[:8]
    assert archive == tree / "dist" / f"x-1-{digest}.tar.gz"
    assert [p.name for p in archive.parent.iterdir()] == [archive.name], "temp file left behind"
    assert archive.stat().st_mode & 0o777 == 0o644


def test_two_builds_are_byte_identical_despite_mtimes_and_out_dir(tree):
    first = build(tree, "d1")
    for path in tree.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = build(tree, "d2")
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()


def test_positional_members_give_the_same_archive(tree):
    first = build(tree, "d1")
    proc = run(*BUILD[:2], "d2", *BUILD[3:], *MEMBERS, cwd=tree)
    assert proc.returncode == 0, proc.stderr
    assert (tree / proc.stdout.strip()).read_bytes() == first.read_bytes()


def test_members_are_sorted_normalized_and_under_one_folder(tree):
    archive = build(tree)
    top = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive, "r:gz") as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert all(n == top or n.startswith(f"{top}/") for n in names)
    assert sorted(i.name.removeprefix(f"{top}/") for i in infos if i.isfile()) == FILES
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (315532800, 0, 0, "", "")
        executable = info.isdir() or info.name.endswith("run.sh")
        assert info.mode == (0o755 if executable else 0o644), info.name
    header = archive.read_bytes()[:10]
    assert header[4:8] == b"\0\0\0\0", "gzip header must carry no timestamp"
    assert not header[3] & 0x08, "gzip header must carry no file name"


def test_source_date_epoch_sets_the_member_mtime(tree):
    archive = build(tree, env={"SOURCE_DATE_EPOCH": "1000000000"})
    with tarfile.open(archive, "r:gz") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1_000_000_000}


def test_manifest_covers_every_other_member(tree):
    archive = build(tree)
    with tarfile.open(archive, "r:gz") as tar:
        top = tar.getmembers()[0].name
        sums = tar.extractfile(f"{top}/SHA256SUMS").read().decode()
        data = {m.name[len(top) + 1 :]: tar.extractfile(m).read() for m in tar if m.isfile()}
    expected = "".join(
        f"{hashlib.sha256(data[rel]).hexdigest()}  {rel}\n" for rel in FILES if rel != "SHA256SUMS"
    )
    assert sums == expected


def test_verify_passes_and_lists_every_member(tree):
    archive = build(tree)
    proc = verify(archive, tree)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:-1] == [f"OK {rel}" for rel in FILES if rel != "SHA256SUMS"]
    assert "verified 5 members" in proc.stdout.splitlines()[-1]


@pytest.mark.parametrize("member", [rel for rel in FILES if rel != "SHA256SUMS"])
def test_one_changed_byte_fails_verify_naming_the_member(tree, member):
    archive = build(tree)

    def flip_last_byte(rel: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if rel == member else data

    rewrite(archive, flip_last_byte)
    proc = verify(archive, tree)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"MISMATCH {member}:"), proc.stderr


def test_a_changed_manifest_entry_fails_verify(tree):
    archive = build(tree)

    def edit(rel: str, data: bytes) -> bytes:
        if rel != "SHA256SUMS":
            return data
        lines = data.decode().splitlines(keepends=True)
        lines[1] = ("0" if lines[1][0] != "0" else "1") + lines[1][1:]
        return "".join(lines).encode()

    rewrite(archive, edit)
    proc = verify(archive, tree)
    assert proc.returncode == 1 and proc.stderr.startswith("MISMATCH config.yaml:"), proc.stderr


def test_a_member_missing_from_the_manifest_is_reported(tree):
    archive = build(tree)
    with tarfile.open(archive, "r:gz") as tar:
        top = tar.getmembers()[0].name
    extra = tarfile.TarInfo(f"{top}/results/smuggled.csv")
    extra.size = 4
    rewrite(archive, lambda rel, data: data, extra=[(extra, b"a,b\n")])
    proc = verify(archive, tree)
    assert proc.returncode == 1
    assert "MISMATCH results/smuggled.csv" in proc.stderr and "not listed" in proc.stderr


def test_a_listed_member_missing_from_the_archive_is_reported(tree):
    archive = build(tree)
    rewrite(archive, lambda rel, data: None if rel == "figures/f.png" else data)
    proc = verify(archive, tree)
    assert proc.returncode == 1
    assert "MISMATCH figures/f.png" in proc.stderr and "missing" in proc.stderr


def evil_archive(path: Path, info: tarfile.TarInfo, data: bytes = b"x") -> Path:
    """A tarball with one good member and one crafted member."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("top/SHA256SUMS"), io.BytesIO(b""))
        info.size = len(data) if info.isfile() else 0
        tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("top/../../escaped.txt", tarfile.REGTYPE),
        ("/tmp/absolute.txt", tarfile.REGTYPE),
        ("top/link", tarfile.SYMTYPE),
        ("other/file.txt", tarfile.REGTYPE),
    ],
)
def test_unsafe_members_are_rejected_before_unpacking(tree, name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    archive = evil_archive(tree / "evil.tar.gz", info)
    proc = verify(archive, tree)
    assert proc.returncode == 1 and proc.stderr.startswith("UNSAFE"), proc.stderr
    assert not (tree.parent / "escaped.txt").exists()


def test_corrupt_archive_fails_cleanly(tree):
    archive = build(tree)
    archive.write_bytes(archive.read_bytes()[:100])
    proc = verify(archive, tree)
    assert proc.returncode == 1 and "MISMATCH" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_member_fails_build_without_leaving_a_file(tree):
    proc = run(*BUILD, "--member", "nowhere", cwd=tree)
    assert proc.returncode == 2 and "archive member not found: nowhere" in proc.stderr
    assert not (tree / "dist").exists() or not any((tree / "dist").iterdir())


def test_member_outside_the_working_directory_is_refused(tree):
    outside = tree.parent / "outside.txt"
    outside.write_text("no\n")
    proc = run(*BUILD, "--member", str(outside), cwd=tree)
    assert proc.returncode == 2 and "outside" in proc.stderr


def test_lock_and_provenance_options_become_members(tree):
    (tree / "meta").mkdir()
    (tree / "meta/req.lock").write_text("numpy==2\n")
    (tree / "meta/prov.json").write_text("{}\n")
    proc = run(*BUILD, "--lock", "meta/req.lock", "--provenance", "meta/prov.json", cwd=tree)
    assert proc.returncode == 0, proc.stderr
    listing = verify(tree / proc.stdout.strip(), tree).stdout
    assert "OK meta/req.lock" in listing and "OK meta/prov.json" in listing


def load_tool():
    """scripts/archive.py as a module, as workflow/rules/archive.smk loads it."""
    spec = importlib.util.spec_from_file_location("archive_tool", ROOT / "scripts/archive.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_code_files_skips_caches_and_keeps_missing_members(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert load_tool().code_files(["results", "bin/run.sh", "nowhere"]) == [
        "results/nested/deeper/notes.txt",
        "results/tables/runs.csv",
        "bin/run.sh",
        "nowhere",
    ]


def test_snakemake_command_names_config_files_relative_to_the_workdir(tree):
    command = load_tool().snakemake_command([tree / "config.yaml", "/elsewhere/c.yaml"], tree)
    assert command == "snakemake --configfile config.yaml --configfile /elsewhere/c.yaml"


def provenance(tree: Path) -> bytes:
    """Write provenance.json in the tree and return its bytes."""
    proc = run(
        "provenance", "--out", "results/provenance.json", "--config-file", "config.yaml",
        "--command", "snakemake --configfile config.yaml", cwd=tree,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return (tree / "results/provenance.json").read_bytes()


def test_provenance_is_deterministic_and_complete(tree):
    first, second = provenance(tree), provenance(tree)
    assert first == second
    record = json.loads(first)
    assert set(record) == {"command", "config", "git_commit", "packages", "platform"}
    assert record["git_commit"] == "unknown"  # tmp_path is outside any git repository
    assert record["command"] == "snakemake --configfile config.yaml"
    assert record["config"] == {
        "path": "config.yaml",
        "sha256": hashlib.sha256(b"seed: 1\n").hexdigest(),
        "content": "seed: 1\n",
    }
    assert {"platform", "python", "machine"} <= set(record["platform"])
    assert record["packages"]["numpy"][0].isdigit()
    assert set(record["packages"]) >= {"scipy", "pandas", "snakemake", "threadpoolctl"}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_provenance_names_the_commit_and_dirty_work_trees(tree):
    def git(*args: str) -> str:
        identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
        cmd = ["git", *identity, *args]
        return subprocess.run(cmd, cwd=tree, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("add", "config.yaml")
    git("commit", "-q", "-m", "config")
    head = git("rev-parse", "HEAD").strip()
    assert json.loads(provenance(tree))["git_commit"] == head
    (tree / "config.yaml").write_text("seed: 2\n")
    assert json.loads(provenance(tree))["git_commit"] == f"{head}-dirty"


def test_lock_lists_numpy_sorted_and_marks_the_editable_project(tree):
    proc = run("lock", "--out", "requirements.lock", cwd=tree)
    assert proc.returncode == 0, proc.stderr
    lines = (tree / "requirements.lock").read_text().splitlines()
    pins = [line for line in lines if not line.startswith("#")]
    assert any(line.startswith("numpy==") for line in pins)
    assert all("==" in line for line in pins)
    assert pins == sorted(pins, key=lambda line: line.split("==")[0].lower().replace("_", "-"))
    assert not any(line.lower().startswith("deeplinear==") for line in pins)
    assert any(line.startswith("# deeplinear==") for line in lines)


@pytest.mark.pipeline
def test_snakemake_archive_is_reproducible_and_verifies(smoke):
    snakemake(smoke, "archive", "--configfile", "config/smoke.yaml")
    (archive,) = (smoke / "dist").glob("deeplinear-0.1.0-*.tar.gz")
    config_hash = hashlib.sha256((smoke / "results/config.json").read_bytes()).hexdigest()[:8]
    assert archive.name == f"deeplinear-0.1.0-{config_hash}.tar.gz"
    content = archive.read_bytes()
    archive.unlink()
    snakemake(smoke, "archive", "--configfile", "config/smoke.yaml")
    assert archive.read_bytes() == content
    proc = verify(archive, smoke)
    assert proc.returncode == 0, proc.stderr
    for member in (
        "results/tables/runs.csv",
        "figures/fig1_stepsize.pdf",
        "results/notebooks/fig1_stepsize.ipynb",
        "results/report.html",
        "results/config.json",
        "results/provenance.json",
        "results/requirements.lock",
        "src/deeplinear/gd.py",
        "CITATION.cff",
    ):
        assert f"OK {member}" in proc.stdout, member
