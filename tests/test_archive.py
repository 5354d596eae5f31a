"""The deterministic archive, its verification, provenance and citation metadata."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, snakemake

ARCHIVE = [sys.executable, str(ROOT / "scripts/archive.py")]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*ARCHIVE, *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "results/tables").mkdir(parents=True)
    (tmp_path / "results/tables/runs.csv").write_text("run_id,loss\na,1.0\n")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures/f.png").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    return tmp_path


def build(tree: Path, out: str) -> Path:
    proc = run(
        "build", "--out", out, "--name", "x", "--version", "1", "--config-file", "config.yaml",
        "results", "figures", "config.yaml", cwd=tree,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return tree / proc.stdout.strip()


def test_two_builds_are_byte_identical_and_verify(tree):
    a, b = build(tree, "d1"), build(tree, "d2")
    assert a.name == b.name and a.read_bytes() == b.read_bytes()
    proc = run("verify", str(a), cwd=tree)
    assert proc.returncode == 0
    assert "OK results/tables/runs.csv" in proc.stdout and "verified 3 members" in proc.stdout


def rewrite(archive: Path, change) -> None:
    """Rewrite the tarball with `change(name, data) -> data | None` (None drops it)."""
    with tarfile.open(archive, "r:gz") as tar:
        items = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for m, data in items:
            new = change(m.name, data)
            if new is not None:
                m.size = len(new)
                tar.addfile(m, io.BytesIO(new))
    archive.write_bytes(gzip.compress(raw.getvalue()))


@pytest.mark.parametrize("member", ["results/tables/runs.csv", "figures/f.png", "config.yaml"])
def test_one_changed_byte_fails_verify_naming_the_member(tree, member):
    archive = build(tree, "dist")

    def flip(name, data):
        if name.endswith(member):
            return bytes([data[0] ^ 1]) + data[1:]
        return data

    rewrite(archive, flip)
    proc = run("verify", str(archive), cwd=tree)
    assert proc.returncode == 1 and f"MISMATCH {member}" in proc.stderr


def test_unlisted_and_missing_members_fail(tree):
    archive = build(tree, "dist")
    rewrite(archive, lambda n, d: None if n.endswith("figures/f.png") else d)
    proc = run("verify", str(archive), cwd=tree)
    assert proc.returncode == 1 and "figures/f.png" in proc.stderr and "missing" in proc.stderr


def test_path_traversal_is_rejected(tree):
    archive = tree / "evil.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("top/../../etc/passwd")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive.write_bytes(gzip.compress(raw.getvalue()))
    proc = run("verify", str(archive), cwd=tree)
    assert proc.returncode == 1 and "unsafe" in proc.stderr


def test_provenance_is_deterministic_and_lock_lists_numpy(tree):
    for out in ("p1.json", "p2.json"):
        assert (
            run("provenance", "--out", out, "--config-file", "config.yaml", cwd=tree).returncode
            == 0
        )
    p1, p2 = (tree / "p1.json").read_bytes(), (tree / "p2.json").read_bytes()
    assert p1 == p2
    prov = json.loads(p1)
    assert {"git_commit", "packages", "platform", "config_sha256", "command"} <= set(prov)
    assert prov["packages"]["numpy"][0].isdigit()
    assert run("lock", "--out", "req.lock", cwd=tree).returncode == 0
    assert any(line.startswith("numpy==") for line in (tree / "req.lock").read_text().split())


def test_citation_cff_validates_with_cffconvert(tmp_path):
    cff = shutil.which("cffconvert", path=str(ROOT / ".venv-cff/bin"))
    if cff is None:
        pytest.skip("cffconvert not installed: `make test` installs it into .venv-cff")
    ok = subprocess.run([cff, "--validate", "-i", str(ROOT / "CITATION.cff")], capture_output=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "CITATION.cff"
    broken.write_text((ROOT / "CITATION.cff").read_text().replace("cff-version: 1.2.0", "cff: 1"))
    bad = subprocess.run([cff, "--validate", "-i", str(broken)], capture_output=True)
    assert bad.returncode != 0


ZENODO_REQUIRED = {"upload_type", "title", "creators", "description", "access_right", "license"}
RELATIONS = {"isSupplementTo", "isSupplementedBy", "references", "isReferencedBy", "cites"}


def zenodo_problems(meta: dict) -> list[str]:
    """What Zenodo's deposit API would reject in a software upload's metadata."""
    problems = [f"missing {k}" for k in sorted(ZENODO_REQUIRED - set(meta))]
    if meta.get("upload_type") != "software":
        problems.append("upload_type must be software")
    if not all(isinstance(c, dict) and c.get("name") for c in meta.get("creators", [])):
        problems.append("every creator needs a name")
    for rel in meta.get("related_identifiers", []):
        if rel.get("relation") not in RELATIONS or not rel.get("identifier"):
            problems.append(f"bad related identifier {rel}")
    return problems


def test_zenodo_metadata_has_what_the_deposit_api_requires():
    meta = json.loads((ROOT / ".zenodo.json").read_text())
    assert zenodo_problems(meta) == []
    assert {"identifier": "10.1186/s13662-023-03797-x", "relation": "isSupplementTo"}.items() <= (
        meta["related_identifiers"][0].items()
    )
    assert zenodo_problems({k: v for k, v in meta.items() if k != "creators"}) == [
        "missing creators"
    ]


@pytest.mark.pipeline
def test_snakemake_archive_is_reproducible_and_verifies(smoke):
    first = snakemake(smoke, "archive", "--configfile", "config/smoke.yaml")
    assert first.returncode == 0
    (archive,) = (smoke / "dist").glob("deeplinear-0.1.0-*.tar.gz")
    content = archive.read_bytes()
    archive.unlink()
    snakemake(smoke, "archive", "--configfile", "config/smoke.yaml")
    assert archive.read_bytes() == content
    proc = run("verify", str(archive), cwd=smoke)
    assert proc.returncode == 0, proc.stderr
    names = proc.stdout
    for member in (
        "results/tables/runs.csv",
        "figures/fig1_stepsize.pdf",
        "results/report.html",
        "results/provenance.json",
        "results/requirements.lock",
        "src/deeplinear/gd.py",
    ):
        assert f"OK {member}" in names, member  # fmt: skip
