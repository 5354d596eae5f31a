"""The deterministic archive (deeplinear.publish): build, verify, provenance, lock, modes."""

from __future__ import annotations

import gzip
import hashlib
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

from deeplinear.publish import archive as tool
from deeplinear.publish import files
from deeplinear.publish import provenance as provenance_tool
from tests.conftest import ROOT, SMOKE, copy_project, snakemake

SRC = ROOT / "src"
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


def env_with_src(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This interpreter's environment with the checkout's ``src`` first on PYTHONPATH."""
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m deeplinear.publish`` with this interpreter."""
    cmd = [sys.executable, "-m", "deeplinear.publish", *args]
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env=env_with_src(env), timeout=120
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
    return tree / proc.stdout.splitlines()[0]


def verify(archive: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return run("verify", str(archive), *extra, cwd=cwd)


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


def umask() -> int:
    """The process umask (set and restored)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_name_is_name_version_and_config_hash(tree):
    archive = build(tree)
    digest = hashlib.sha256(b"seed: 1\n").hexdigest()[:8]
    assert archive == tree / "dist" / f"x-1-{digest}.tar.gz"
    names = sorted(p.name for p in archive.parent.iterdir())
    assert names == [archive.name, f"{archive.name}.sha256"], "temporary file left behind"
    assert archive.stat().st_mode & 0o777 == 0o666 & ~umask()


def test_build_prints_and_writes_the_tarballs_sha256(tree):
    args = [*BUILD, *(arg for member in MEMBERS for arg in ("--member", member))]
    proc = run(*args, cwd=tree)
    assert proc.returncode == 0, proc.stderr
    archive = tree / proc.stdout.splitlines()[0]
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"SHA-256 {digest}  {archive.name}" in proc.stdout
    sums = archive.with_name(archive.name + ".sha256")
    assert sums.read_text() == f"{digest}  {archive.name}\n"
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "-c", sums.name], cwd=archive.parent)
        assert check.returncode == 0


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
    assert (tree / proc.stdout.splitlines()[0]).read_bytes() == first.read_bytes()


def test_code_from_another_root_is_archived_relative_to_it(tree, tmp_path):
    code = tmp_path / "checkout"
    (code / "src/pkg").mkdir(parents=True)
    (code / "src/pkg/mod.py").write_text("X = 1\n")
    (code / "Snakefile").write_text("rule all:\n")
    proc = run(
        *BUILD, "--member", "results", "--code-root", str(code), "--code", "src", "Snakefile",
        cwd=tree,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listing = verify(tree / proc.stdout.splitlines()[0], tree).stdout
    assert "OK src/pkg/mod.py" in listing and "OK Snakefile" in listing
    assert "OK results/tables/runs.csv" in listing


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
    lines = proc.stdout.splitlines()
    assert lines[:5] == [f"OK {rel}" for rel in FILES if rel != "SHA256SUMS"]
    assert "verified 5 members" in lines[5]
    assert "only that the archive agrees with itself" in lines[6]


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


def forge(archive: Path, member: str, data: bytes) -> None:
    """Replace a member and its SHA256SUMS line consistently: the archive agrees with itself."""
    digest = hashlib.sha256(data).hexdigest()

    def change(rel: str, old: bytes) -> bytes:
        if rel == member:
            return data
        if rel == "SHA256SUMS":
            lines = old.decode().splitlines(keepends=True)
            return "".join(
                f"{digest}  {member}\n" if line.endswith(f"  {member}\n") else line
                for line in lines
            ).encode()
        return old

    rewrite(archive, change)


def test_a_forged_archive_passes_self_check_but_fails_the_published_hash(tree):
    archive = build(tree)
    published = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert verify(archive, tree, "--sha256", published).returncode == 0
    forge(archive, "results/tables/runs.csv", b"run_id,loss\na,0.0\nb,0.0\n")
    alone = verify(archive, tree)
    assert alone.returncode == 0, alone.stderr  # the manifest was edited to match
    checked = verify(archive, tree, "--sha256", published)
    assert checked.returncode == 1
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert checked.stderr.strip() == (
        f"MISMATCH {archive.name}: SHA-256 is {actual}, but the published SHA-256 is "
        f"{published}; this is not the published archive"
    )
    assert "Traceback" not in checked.stderr


def test_the_sha256_file_beside_the_archive_is_accepted_as_the_published_hash(tree):
    archive = build(tree)
    sums = archive.with_name(archive.name + ".sha256")
    assert verify(archive, tree, "--sha256", str(sums)).returncode == 0
    sums.write_text(f"{'0' * 64}  {archive.name}\n")
    proc = verify(archive, tree, "--sha256", str(sums))
    assert proc.returncode == 1 and "this is not the published archive" in proc.stderr


def test_a_malformed_published_hash_is_an_error_naming_it(tree):
    archive = build(tree)
    proc = verify(archive, tree, "--sha256", "abc123")
    assert proc.returncode == 1
    assert "--sha256 'abc123' is neither 64 hex digits nor a readable file" in proc.stderr


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
    listing = verify(tree / proc.stdout.splitlines()[0], tree).stdout
    assert "OK meta/req.lock" in listing and "OK meta/prov.json" in listing


# --- canonical notebooks and report ---------------------------------------------------------


def executed_notebook(stamp: str, seconds: float, cell_id: str) -> str:
    """An executed notebook as papermill writes it, with the given times and injected id."""
    timing = {"start_time": stamp, "end_time": stamp, "duration": seconds}
    cell_meta = {"papermill": {**timing, "exception": False, "status": "completed"}}
    nb = {
        "cells": [
            {
                "cell_type": "code", "execution_count": 1, "id": cell_id,
                "metadata": {"tags": ["injected-parameters"], **cell_meta},
                "outputs": [], "source": ["dpi = 100\n"],
            },
            {
                "cell_type": "code", "execution_count": 2, "id": "plot",
                "metadata": {
                    "execution": {"iopub.execute_input": stamp, "shell.execute_reply": stamp},
                    **cell_meta,
                },
                "outputs": [{"name": "stdout", "output_type": "stream", "text": ["ok\n"]}],
                "source": ["print('ok')\n"],
            },
        ],
        "metadata": {"papermill": {**timing, "parameters": {"dpi": 100}, "version": "2.7.0"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    return json.dumps(nb, indent=1, sort_keys=True) + "\n"


#: Edges of a rule graph as Snakemake's report draws them (one per pair of jobs).
LINK_A_B = {"source": 0, "target": 1, "sourcerule": "a", "targetrule": "b", "value": 1}
LINK_B_C = {"source": 1, "target": 2, "sourcerule": "b", "targetrule": "c", "value": 1}


def report_html(values: list[dict], results: dict, rules: dict, links=(LINK_A_B,)) -> str:
    """A page with the data blocks of Snakemake's HTML report."""
    spec = {"description": "Runtimes of jobs.", "data": {"values": values}, "mark": "point"}
    graph = {"data": [{"name": "node-data", "values": [{"rule": "a"}, {"rule": "b"}]}]}
    graph["data"].append({"name": "link-data", "values": list(links)})
    blocks = {
        "results": results,
        "categories": {"Figures": {"Other": list(results)}},
        "runtimes_spec": spec,
        "timeline_spec": {**spec, "description": "Timeline of jobs."},
        "rules": rules,
        "rulegraph_spec": graph,
    }
    body = "".join(
        f'    <script id="{key.removesuffix("_spec")}">\n    var {key} = {json.dumps(value)};\n'
        "    </script>\n"
        for key, value in blocks.items()
    )
    return f"<html><body>\n{body}</body></html>\n"


def test_executed_notebooks_and_the_report_are_archived_without_timings(tree):
    (tree / "results/notebooks").mkdir()
    notebook = tree / "results/notebooks/fig.ipynb"
    report = tree / "results/report.html"
    template = tree / "results/notebooks/template.ipynb"
    template.write_text('{"cells": [], "metadata": {}, "nbformat": 4}')  # nothing to drop
    notebook.write_text(executed_notebook("2026-01-01T00:00:00", 1.5, "aaaa1111"))
    results = {"figures/a.png": {"size": "1 KB"}, "results/provenance.json": {"size": "2 KB"}}
    rules = {"a": {"n_jobs": 1}, "b": {"n_jobs": 2}}
    links = [LINK_A_B, LINK_B_C, LINK_A_B]  # the same edge once per pair of jobs
    report.write_text(report_html([{"rule": "a", "runtime": 1.0}], results, rules, links))
    first = build(tree, "d1")
    notebook.write_text(executed_notebook("2026-02-02T11:11:11", 9.25, "bbbb2222"))
    results, rules = dict(reversed(results.items())), dict(reversed(rules.items()))
    links = [LINK_B_C, LINK_A_B]
    report.write_text(report_html([{"rule": "a", "runtime": 7.0}], results, rules, links))
    second = build(tree, "d2")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first, "r:gz") as tar:
        top = tar.getmembers()[0].name
        archived_nb = json.loads(tar.extractfile(f"{top}/results/notebooks/fig.ipynb").read())
        archived_template = tar.extractfile(f"{top}/results/notebooks/template.ipynb").read()
        html = tar.extractfile(f"{top}/results/report.html").read().decode()
    assert archived_template == template.read_bytes()
    text = json.dumps(archived_nb)
    assert not any(key in text for key in ("start_time", "end_time", "duration", "iopub"))
    assert archived_nb["cells"][0]["id"] == "injected-parameters"
    assert archived_nb["cells"][1]["outputs"][0]["text"] == ["ok\n"]
    assert archived_nb["metadata"]["papermill"]["parameters"] == {"dpi": 100}
    assert '"values": []' in html and "runtime" not in html.split("var rules")[0].split("data")[1]
    assert verify(first, tree).returncode == 0


def test_a_report_whose_format_changed_is_refused(tree):
    (tree / "results/report.html").write_text('<script id="runtimes">\nvar other = 1;\n</script>')
    proc = run(*BUILD, "--member", "results", cwd=tree)
    assert proc.returncode == 2
    assert "no 'var runtimes_spec = ...;' block: its format changed" in proc.stderr


# --- standard library only, from the unpacked archive ---------------------------------------


PUBLISH_MODULES = ("archive", "files", "provenance", "readme", "zenodo", "__main__")


def test_the_publish_package_imports_no_numpy_pandas_or_yaml():
    modules = ", ".join(f"deeplinear.publish.{name}" for name in PUBLISH_MODULES)
    code = (
        f"import sys, deeplinear.io, {modules}; "
        "print(sorted(m for m in ('numpy', 'pandas', 'yaml', 'scipy', 'matplotlib') "
        "if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env_with_src()
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_verify_runs_from_the_unpacked_archive_with_only_the_standard_library(tree, tmp_path):
    (tree / "src/deeplinear/publish").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "io.py"):
        shutil.copy2(SRC / "deeplinear" / name, tree / "src/deeplinear" / name)
    for module in SRC.glob("deeplinear/publish/*.py"):
        shutil.copy2(module, tree / "src/deeplinear/publish" / module.name)
    proc = run(*BUILD, "--member", "results", "src", cwd=tree)
    assert proc.returncode == 0, proc.stderr
    archive = tree / proc.stdout.splitlines()[0]
    published = hashlib.sha256(archive.read_bytes()).hexdigest()
    reader = tmp_path / "reader"
    reader.mkdir()
    shutil.copy2(archive, reader)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(reader, filter="data")
    src = reader / archive.name.removesuffix(".tar.gz") / "src"
    # Only the unpacked src on the path: -S no site-packages (no numpy, no installed
    # deeplinear), -s no user site, -P no working directory; nothing else in the environment.
    python = [sys.executable, "-S", "-s", "-P"]
    environ = {"PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [*python, "-m", "deeplinear.publish", "verify", archive.name, "--sha256", published]
    proc = subprocess.run(cmd, cwd=reader, env=environ, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"OK {archive.name}: SHA-256 {published} matches" in proc.stdout
    assert "OK src/deeplinear/publish/archive.py" in proc.stdout
    where = "import deeplinear.publish.archive as a; print(a.__file__)"
    found = subprocess.run([*python, "-c", where], cwd=reader, env=environ, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert Path(found.stdout.strip()) == src / "deeplinear/publish/archive.py", found.stderr


def test_one_file_hashing_helper_for_every_algorithm(tmp_path):
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 5000  # more than one chunk
    path.write_bytes(data)
    assert files.file_digest(path) == hashlib.sha256(data).hexdigest()
    assert files.file_digest(path, "md5") == hashlib.md5(data).hexdigest()


# --- workflow helpers, provenance and lock --------------------------------------------------


def test_code_files_skips_caches_and_keeps_missing_members(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert tool.code_files(["results", "bin/run.sh", "nowhere"]) == [
        "results/nested/deeper/notes.txt",
        "results/tables/runs.csv",
        "bin/run.sh",
        "nowhere",
    ]


def test_code_files_are_relative_to_the_working_directory(tree, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    files = tool.code_files(["bin/run.sh", "config.yaml"], tree)
    assert files == ["../project/bin/run.sh", "../project/config.yaml"]
    assert all((elsewhere / f).is_file() for f in files)


def test_snakemake_command_names_config_files_relative_to_the_workdir(tree):
    command = provenance_tool.snakemake_command([tree / "config.yaml", "/elsewhere/c.yaml"], tree)
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


# --- file modes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_result_files_get_the_umasks_mode(tmp_path, mask, mode):
    import pandas as pd

    from deeplinear import io as dio

    old = os.umask(mask)
    try:
        dio.write_csv(pd.DataFrame({"a": [1.0]}), tmp_path / "t.csv")
        dio.write_json({"a": 1}, tmp_path / "t.json")
        dio.save_npz(tmp_path / "t.npz", a=[1.0])
        with dio.atomic_path(tmp_path / "plain.txt") as tmp:
            tmp.write_text("x")
        files.write_text_atomic(tmp_path / "provenance.json", "{}\n")
    finally:
        os.umask(old)
    for name in ("t.csv", "t.json", "t.npz", "plain.txt", "provenance.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_the_archive_command_writes_with_the_umasks_mode(tree, mask, mode):
    old = os.umask(mask)
    try:  # the child inherits the umask
        archive = build(tree)
        proc = run("lock", "--out", "results/requirements.lock", cwd=tree)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    for path in (archive, archive.with_name(archive.name + ".sha256")):
        assert path.stat().st_mode & 0o777 == mode, path
    assert (tree / "results/requirements.lock").stat().st_mode & 0o777 == mode


# --- the workflow ---------------------------------------------------------------------------


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose PATH starts with fake ``git`` and ``pip`` that log every call."""
    bin_dir, calls = tmp_path / "fakebin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("git", "pip", "pip3"):
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 1\n')
        exe.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    return env_with_src({"PATH": path}), calls


def test_dry_runs_call_no_git_or_pip_and_work_from_another_directory(tmp_path, recorder):
    env, calls = recorder
    project = tmp_path / "project"
    project.mkdir()
    copy_project(project)
    (project / SMOKE).mkdir(parents=True)
    (project / SMOKE / "report.html").write_text("<html></html>\n")
    smk = [sys.executable, "-m", "snakemake", "--cores", "1", "-n"]
    here = subprocess.run(
        [*smk, "archive", "--configfile", "config/smoke.yaml"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert here.returncode == 0, here.stdout + here.stderr
    assert "rule archive:" in here.stdout + here.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    away = subprocess.run(
        [*smk, "provenance", "lock", "-s", str(project / "Snakefile"), "--configfile",
         str(project / "config/smoke.yaml")],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert away.returncode == 0, away.stdout + away.stderr
    assert "rule provenance:" in away.stdout + away.stderr
    assert not calls.exists(), calls.read_text()


def test_the_archive_rule_names_the_missing_report(tmp_path, recorder):
    env, _ = recorder
    project = tmp_path / "project"
    project.mkdir()
    copy_project(project)
    cmd = [sys.executable, "-m", "snakemake", "-n", "archive", "--configfile", "config/smoke.yaml"]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"{SMOKE}/report.html is missing: `make archive` makes it first" in proc.stdout + (
        proc.stderr
    )


@pytest.mark.pipeline
def test_make_archive_is_stable_across_rerenders_and_verifies(smoke, monkeypatch, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    monkeypatch.setenv("PYTHONPATH", env_with_src()["PYTHONPATH"])
    stamp = tmp_path / "installed"  # stands for the venv stamp: the venv is this one
    stamp.touch()
    make = [
        "make", "--no-print-directory", f"BIN={Path(sys.executable).parent}", f"STAMP={stamp}",
        "CONFIG=config/smoke.yaml", "CORES=2",
    ]  # fmt: skip

    def make_archive() -> Path:
        proc = subprocess.run(
            [*make, "archive"], cwd=smoke, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (archive,) = (smoke / "dist").glob("deeplinear-0.1.0-*.tar.gz")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        assert proc.stdout.splitlines()[-1] == f"{digest}  {archive.name}"
        return archive

    archive = make_archive()
    config_hash = hashlib.sha256((smoke / SMOKE / "config.json").read_bytes()).hexdigest()[:8]
    assert archive.name == f"deeplinear-0.1.0-{config_hash}.tar.gz"
    content = archive.read_bytes()
    notebook = (smoke / SMOKE / "notebooks/fig1_stepsize.ipynb").read_bytes()
    report = (smoke / SMOKE / "report.html").read_bytes()
    # Re-render a figure (new papermill timings) and, by make, the report (new job times).
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    config = ("--configfile", "config/smoke.yaml")
    fig1 = f"{SMOKE}/figures/fig1_stepsize.png"
    snakemake(smoke, fig1, "--forcerun", "figure_fig1_stepsize", *config)
    assert (smoke / SMOKE / "notebooks/fig1_stepsize.ipynb").read_bytes() != notebook
    again = make_archive().read_bytes()
    if again != content:  # name the members that differ (a byte diff of a tarball is useless)
        first, second = member_hashes(content), member_hashes(again)
        changed = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
        where = {k: first_difference(content, again, k) for k in changed if k.endswith(".html")}
        raise AssertionError(f"archive changed across a re-render; members: {changed}; {where}")
    assert (smoke / SMOKE / "report.html").read_bytes() != report
    published = hashlib.sha256(content).hexdigest()
    proc = verify(archive, smoke, "--sha256", published)
    assert proc.returncode == 0, proc.stderr
    for member in (
        f"{SMOKE}/tables/runs.csv",
        f"{SMOKE}/tables/claims.md",  # the claims' evidence (issue 21, class 5)
        f"{SMOKE}/tables/claim2_fits.csv",
        f"{SMOKE}/tables/claim5_onset.csv",
        f"{SMOKE}/figures/fig1_stepsize.pdf",
        f"{SMOKE}/notebooks/fig1_stepsize.ipynb",
        f"{SMOKE}/report.html",
        f"{SMOKE}/config.json",
        f"{SMOKE}/provenance.json",
        f"{SMOKE}/requirements.lock",
        "src/deeplinear/gd.py",
        "src/deeplinear/publish/archive.py",
        "CITATION.cff",
        "Makefile",
    ):
        assert f"OK {member}" in proc.stdout, member


def first_difference(first: bytes, second: bytes, member: str, context: int = 300) -> str:
    """The text around the first difference of one member of two .tar.gz given as bytes."""
    texts = []
    for tarball in (first, second):
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            texts.append(tar.extractfile(member).read().decode("utf-8", "replace"))
    a, b = texts
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"at {i}: {a[max(0, i - context) : i + 80]!r} != {b[max(0, i - context) : i + 80]!r}"


def member_hashes(tarball: bytes) -> dict[str, str]:
    """SHA-256 of every regular member of a .tar.gz given as bytes."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        return {
            m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest()
            for m in tar.getmembers()
            if m.isfile()
        }
