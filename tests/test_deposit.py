"""`make deposit` / `deeplinear.publish deposit` and `verify --doi` against a local Zenodo.

The real service is not reachable from the tests: a small HTTP server on 127.0.0.1 implements
the endpoints of Zenodo's deposit and records API that the command uses, and records and
checks every request (token, JSON bodies, uploaded bytes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deeplinear.publish import archive as tool
from deeplinear.publish import zenodo
from deeplinear.publish.readme import DEPOSIT_MARKERS
from tests.conftest import ROOT
from tests.test_citation import cff_errors

TOKEN = "test-token-0123"
SRC = ROOT / "src"


class FakeZenodo(ThreadingHTTPServer):
    """Depositions, buckets, actions and records, held in memory."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.depositions: dict[int, dict[str, Any]] = {}
        self.blobs: dict[tuple[int, str], bytes] = {}
        self.requests: list[dict[str, Any]] = []
        self.next_id = 101
        self.corrupt_uploads = False
        self.reject_metadata: str | None = None
        self.lock = threading.Lock()

    def links(self, did: int) -> dict[str, str]:
        api = f"{self.base}/api/deposit/depositions/{did}"
        return {
            "self": api,
            "html": f"{self.base}/deposit/{did}",
            "bucket": f"{self.base}/api/files/bucket-{did}",
            "publish": f"{api}/actions/publish",
            "newversion": f"{api}/actions/newversion",
        }

    def new_deposition(self, metadata: dict[str, Any], files: list | None = None) -> dict:
        did = self.next_id
        self.next_id += 1
        dep = {
            "id": did, "metadata": metadata, "files": files or [], "state": "unsubmitted",
            "submitted": False, "links": self.links(did),
        }  # fmt: skip
        self.depositions[did] = dep
        return dep

    def record(self, did: int) -> dict[str, Any]:
        """The published record as ``GET /api/records/<id>`` shows it."""
        dep = self.depositions[did]
        files = [
            {"id": f["id"], "key": f["filename"], "size": f["filesize"],
             "checksum": f"md5:{f['checksum']}",
             "links": {"self": f"{self.base}/api/records/{did}/files/{f['filename']}/content"}}
            for f in dep["files"]
        ]  # fmt: skip
        return {"id": did, "doi": dep["doi"], "conceptdoi": dep["conceptdoi"],
                "metadata": dep["metadata"], "files": files}  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    server: FakeZenodo

    def log_message(self, *args: Any) -> None:  # keep the test output quiet
        pass

    def reply(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        entry = {
            "method": method, "path": self.path, "auth": self.headers.get("Authorization"),
            "content_type": self.headers.get("Content-Type"), "body": raw,
        }  # fmt: skip
        with self.server.lock:
            self.server.requests.append(entry)
            status, body = self.route(method, self.path, raw)
        self.reply(status, body)

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_POST(self) -> None:
        self.handle_any("POST")

    def do_PUT(self) -> None:
        self.handle_any("PUT")

    def do_DELETE(self) -> None:
        self.handle_any("DELETE")

    def route(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        srv = self.server
        record = re.fullmatch(r"/api/records/(\d+)", path)
        if method == "GET" and record:
            did = int(record.group(1))
            dep = srv.depositions.get(did)
            if dep is None or not dep["submitted"]:
                return 404, {"status": 404, "message": "PID does not exist."}
            return 200, srv.record(did)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"status": 401, "message": "Unauthorized"}
        if method == "POST" and path == "/api/deposit/depositions":
            body = json.loads(raw)
            if srv.reject_metadata:
                errors = [{"field": "metadata.creators", "message": srv.reject_metadata}]
                return 400, {"status": 400, "message": "Validation error.", "errors": errors}
            return 201, srv.new_deposition(body["metadata"])
        dep_path = re.fullmatch(r"/api/deposit/depositions/(\d+)(/.*)?", path)
        if dep_path:
            did, rest = int(dep_path.group(1)), dep_path.group(2) or ""
            dep = srv.depositions.get(did)
            if dep is None:
                return 404, {"status": 404, "message": "Deposition not found"}
            if method == "GET" and not rest:
                return 200, dep
            if method == "PUT" and not rest:
                if dep["submitted"]:
                    return 400, {"status": 400, "message": "published depositions are locked"}
                dep["metadata"] = json.loads(raw)["metadata"]
                return 200, dep
            file_path = re.fullmatch(r"/files/(.+)", rest)
            if method == "DELETE" and file_path:
                dep["files"] = [f for f in dep["files"] if f["id"] != file_path.group(1)]
                return 204, None
            if method == "POST" and rest == "/actions/publish":
                if not dep["files"]:
                    return 400, {"status": 400, "message": "Minimum one file must be provided."}
                concept = dep.get("conceptrecid", did - 1000)
                dep.update(
                    state="done", submitted=True, doi=f"10.5281/zenodo.{did}",
                    conceptdoi=f"10.5281/zenodo.{concept}", conceptrecid=concept, record_id=did,
                )  # fmt: skip
                dep["metadata"] = {**dep["metadata"], "publication_date": "2026-11-26"}
                dep["links"] = {
                    **dep["links"], "record_html": f"{srv.base}/records/{did}",
                    "doi": f"https://doi.org/10.5281/zenodo.{did}",
                }  # fmt: skip
                return 202, dep
            if method == "POST" and rest == "/actions/newversion":
                if not dep["submitted"]:
                    return 400, {"status": 400, "message": "deposition is not published"}
                draft = next(
                    (d for d in srv.depositions.values()
                     if d.get("conceptrecid") == dep["conceptrecid"] and not d["submitted"]),
                    None,
                )  # fmt: skip
                if draft is None:  # the new version inherits metadata and files
                    inherited = [dict(f) for f in dep["files"]]
                    draft = srv.new_deposition(dict(dep["metadata"]), inherited)
                    draft["conceptrecid"] = dep["conceptrecid"]
                    for f in inherited:
                        srv.blobs[(draft["id"], f["filename"])] = srv.blobs[(did, f["filename"])]
                links = {**dep["links"], "latest_draft": draft["links"]["self"]}
                return 201, {**dep, "links": links}  # the answer is the old record
        bucket = re.fullmatch(r"/api/files/bucket-(\d+)/(.+)", path)
        if method == "PUT" and bucket:
            did, name = int(bucket.group(1)), bucket.group(2)
            dep = srv.depositions[did]
            if self.headers.get("Content-Type") != "application/octet-stream":
                return 400, {"status": 400, "message": "expected application/octet-stream"}
            md5 = hashlib.md5(raw).hexdigest()
            stored = hashlib.md5(raw + b"x").hexdigest() if srv.corrupt_uploads else md5
            fid = f"file-{did}-{len(srv.blobs)}"
            dep["files"] = [f for f in dep["files"] if f["filename"] != name]
            dep["files"].append(
                {"id": fid, "filename": name, "filesize": len(raw), "checksum": stored}
            )
            srv.blobs[(did, name)] = raw
            return 201, {"key": name, "size": len(raw), "checksum": f"md5:{stored}"}
        return 404, {"status": 404, "message": f"no route {method} {path}"}


def serving(srv: ThreadingHTTPServer):
    """Serve ``srv`` on a thread for the test, then shut it down."""
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


@pytest.fixture
def server():
    yield from serving(FakeZenodo())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder: metadata files, provenance, and a built archive in dist/."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("CITATION.cff", "README.md", ".zenodo.json", "Makefile"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(SRC, root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "results/tables").mkdir(parents=True)
    (root / "results/tables/runs.csv").write_text("run_id,loss\na,1.0\n")
    (root / "results/config.json").write_text('{"seed": 1}\n')
    (root / "results/provenance.json").write_text('{"command": "snakemake", "git_commit": "abc"}\n')
    make_archive(root)
    return root


def make_archive(root: Path) -> Path:
    """Build dist/<name>.tar.gz (and its .sha256) from the project's results."""
    members = [root / "results/tables", root / "results/provenance.json"]
    return tool.build(root / "dist", "x", "1", root / "results/config.json", members, root)


def env(server: FakeZenodo | None, **extra: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k not in ("ZENODO_TOKEN", "ZENODO_URL")}
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    values["PYTHONPATH"] = path
    if server is not None:
        values.update(ZENODO_URL=server.base, ZENODO_TOKEN=TOKEN)
    return {**values, **extra}


def archive_cli(project: Path, *args: str, environ: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deeplinear.publish", *args]
    return subprocess.run(cmd, cwd=project, env=environ, capture_output=True, text=True, timeout=60)


def deposit(project: Path, server: FakeZenodo, *args: str) -> subprocess.CompletedProcess:
    proc = archive_cli(project, "deposit", *args, environ=env(server))
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def routes(server: FakeZenodo) -> list[tuple[str, str]]:
    """(method, path) of every request, the numbers kept."""
    return [(r["method"], r["path"]) for r in server.requests]


def the_archive(project: Path) -> Path:
    (archive,) = (project / "dist").glob("*.tar.gz")
    return archive


def test_missing_token_is_an_error_naming_the_variable(project, server):
    environ = env(None, ZENODO_URL=server.base)
    proc = archive_cli(project, "deposit", "--publish", environ=environ)
    assert proc.returncode == 2
    assert "the environment variable ZENODO_TOKEN is not set" in proc.stderr
    assert server.requests == []


def test_a_draft_gets_the_metadata_and_the_archive_but_is_not_published(project, server):
    archive = the_archive(project)
    citation = (project / "CITATION.cff").read_bytes()
    proc = deposit(project, server)
    assert proc.returncode == 0, proc.stderr
    assert routes(server) == [
        ("POST", "/api/deposit/depositions"),
        ("PUT", f"/api/files/bucket-101/{archive.name}"),
    ]
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in server.requests)
    create, upload = server.requests
    assert create["content_type"] == "application/json"
    sent = json.loads(create["body"])["metadata"]
    expected = json.loads((ROOT / ".zenodo.json").read_text())
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert {k: v for k, v in sent.items() if k != "notes"} == expected
    assert f"SHA-256 ({archive.name}): {sha}" in sent["notes"]
    assert upload["body"] == archive.read_bytes()
    assert hashlib.md5(upload["body"]).hexdigest() == hashlib.md5(archive.read_bytes()).hexdigest()
    assert not server.depositions[101]["submitted"]
    assert "publish with PUBLISH=1 DEPOSITION=101" in proc.stdout
    assert (project / "CITATION.cff").read_bytes() == citation


def test_publish_writes_the_doi_into_citation_readme_and_provenance(project, server):
    archive = the_archive(project)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    proc = deposit(project, server, "--publish")
    assert proc.returncode == 0, proc.stderr
    assert routes(server)[-1] == ("POST", "/api/deposit/depositions/101/actions/publish")
    assert "DOI 10.5281/zenodo.101" in proc.stdout
    cff = (project / "CITATION.cff").read_text()
    assert "\ndoi: 10.5281/zenodo.101\n" in cff
    assert 'date-released: "2026-11-26"' in cff
    assert cff_errors(cff) == []
    readme = (project / "README.md").read_text()
    doi_line = next(line for line in readme.splitlines() if "<!-- deposit:doi -->" in line)
    assert "https://doi.org/10.5281/zenodo.101" in doi_line and "badge" in doi_line
    sha_line = next(line for line in readme.splitlines() if "<!-- deposit:sha256 -->" in line)
    assert sha in sha_line and archive.name in sha_line
    record = json.loads((project / "results/provenance.json").read_text())
    assert record["git_commit"] == "abc"
    assert record["deposit"]["doi"] == "10.5281/zenodo.101"
    assert record["deposit"]["sha256"] == sha


def test_publish_continues_an_existing_draft_without_uploading_again(project, server):
    assert deposit(project, server).returncode == 0
    before = len(server.requests)
    proc = deposit(project, server, "--publish", "--deposition", "101")
    assert proc.returncode == 0, proc.stderr
    assert routes(server)[before:] == [
        ("GET", "/api/deposit/depositions/101"),
        ("PUT", "/api/deposit/depositions/101"),
        ("POST", "/api/deposit/depositions/101/actions/publish"),
    ]
    assert len(server.depositions) == 1


def test_a_doi_in_the_citation_makes_the_next_deposit_a_new_version(project, server):
    assert deposit(project, server, "--publish").returncode == 0
    (project / "results/tables/runs.csv").write_text("run_id,loss\na,0.5\n")
    old = the_archive(project)
    old.unlink()
    old.with_name(old.name + ".sha256").unlink()
    archive = make_archive(project)
    assert archive.name == old.name  # same config: the same name, other bytes
    start = len(server.requests)
    proc = deposit(project, server, "--publish")
    assert proc.returncode == 0, proc.stderr
    assert "CITATION.cff names record 101: depositing a new version of it" in proc.stdout
    assert routes(server)[start:] == [
        ("POST", "/api/deposit/depositions/101/actions/newversion"),
        ("GET", "/api/deposit/depositions/102"),
        ("PUT", "/api/deposit/depositions/102"),
        ("DELETE", "/api/deposit/depositions/102/files/file-101-0"),
        ("PUT", f"/api/files/bucket-102/{archive.name}"),
        ("POST", "/api/deposit/depositions/102/actions/publish"),
    ]
    new_meta = json.loads(server.requests[start + 2]["body"])["metadata"]
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"SHA-256 ({archive.name}): {sha}" in new_meta["notes"]
    assert server.blobs[(102, archive.name)] == archive.read_bytes()
    assert "\ndoi: 10.5281/zenodo.102\n" in (project / "CITATION.cff").read_text()
    assert (project / "CITATION.cff").read_text().count("\ndoi: 10.5281/zenodo") == 1


def test_record_id_makes_a_new_version_of_that_record(project, server):
    assert deposit(project, server, "--publish").returncode == 0
    (project / "CITATION.cff").write_text((ROOT / "CITATION.cff").read_text())  # no DOI
    start = len(server.requests)
    proc = deposit(project, server, "--record-id", "101")
    assert proc.returncode == 0, proc.stderr
    assert routes(server)[start] == ("POST", "/api/deposit/depositions/101/actions/newversion")
    assert ("POST", "/api/deposit/depositions/102/actions/publish") not in routes(server)


def test_verify_checks_the_archive_against_the_deposit_record(project, server):
    assert deposit(project, server, "--publish").returncode == 0
    archive = the_archive(project)
    environ = env(server)
    doi = ("--doi", "10.5281/zenodo.101")
    good = archive_cli(project, "verify", str(archive), *doi, environ=environ)
    assert good.returncode == 0, good.stderr
    assert f"OK {archive.name}: md5" in good.stdout and "SHA-256" in good.stdout
    url = archive_cli(project, "verify", str(archive), "--record", f"{server.base}/records/101",
                      environ=environ)  # fmt: skip
    assert url.returncode == 0, url.stderr
    # A forged archive: one member and its manifest line changed, so it agrees with itself.
    (project / "results/tables/runs.csv").write_text("run_id,loss\na,0.0\n")
    archive.unlink()
    forged = make_archive(project)
    assert archive_cli(project, "verify", str(forged), environ=environ).returncode == 0
    bad = archive_cli(project, "verify", str(forged), *doi, environ=environ)
    assert bad.returncode == 1
    md5 = hashlib.md5(forged.read_bytes()).hexdigest()
    assert bad.stderr.startswith(f"MISMATCH {forged.name}: md5 is {md5}, record 101")
    missing = archive_cli(project, "verify", str(forged), "--doi", "10.5281/zenodo.999",
                          environ=environ)  # fmt: skip
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def test_a_record_without_the_sha256_note_is_checked_by_md5_and_says_so(project, server):
    assert deposit(project, server, "--publish").returncode == 0
    server.depositions[101]["metadata"].pop("notes")
    archive = the_archive(project)
    proc = archive_cli(project, "verify", str(archive), "--doi", "10.5281/zenodo.101",
                       environ=env(server))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "publishes no SHA-256" in proc.stdout


def test_a_corrupted_upload_stops_before_publishing(project, server):
    server.corrupt_uploads = True
    proc = deposit(project, server, "--publish")
    assert proc.returncode == 2
    assert "Zenodo stored md5" in proc.stderr
    assert not any(path.endswith("/actions/publish") for _, path in routes(server))


def test_an_archive_that_does_not_verify_is_not_uploaded(project, server):
    archive = the_archive(project)
    archive.write_bytes(archive.read_bytes()[:-50])
    proc = deposit(project, server, "--publish")
    assert proc.returncode == 2 and "does not verify" in proc.stderr
    assert server.requests == []


def test_zenodo_errors_are_reported_with_their_message(project, server):
    server.reject_metadata = "Missing data for required field."
    proc = deposit(project, server)
    assert proc.returncode == 2
    assert "HTTP 400 Validation error.; metadata.creators: Missing data" in proc.stderr


def test_make_deposit_publishes_only_with_publish_1(project, server):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    environ = env(server)
    make = ["make", "--no-print-directory", f"PYTHON={sys.executable}"]
    draft = subprocess.run([*make, "deposit"], cwd=project, env=environ, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert draft.returncode == 0, draft.stdout + draft.stderr
    assert not any(path.endswith("/actions/publish") for _, path in routes(server))
    published = subprocess.run([*make, "deposit", "PUBLISH=1", "DEPOSITION=101"], cwd=project,
                               env=environ, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert published.returncode == 0, published.stdout + published.stderr
    assert routes(server)[-1] == ("POST", "/api/deposit/depositions/101/actions/publish")
    sha = hashlib.sha256(the_archive(project).read_bytes()).hexdigest()
    check = subprocess.run(
        [*make, "verify-archive", f"ARCHIVE={the_archive(project)}", f"SHA256={sha}",
         "DOI=10.5281/zenodo.101"],
        cwd=project, env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "matches the published SHA-256" in check.stdout


# --- unit level: instances, references, texts -----------------------------------------------


def test_instance_urls(monkeypatch):
    monkeypatch.delenv("ZENODO_URL", raising=False)
    assert zenodo.base_url() == "https://zenodo.org"
    assert zenodo.base_url(sandbox=True) == "https://sandbox.zenodo.org"
    monkeypatch.setenv("ZENODO_URL", "http://127.0.0.1:9/")
    assert zenodo.base_url(sandbox=True) == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("10.5281/zenodo.123", ("https://zenodo.org", "123")),
        ("doi:10.5281/zenodo.123", ("https://zenodo.org", "123")),
        ("https://doi.org/10.5072/zenodo.77", ("https://sandbox.zenodo.org", "77")),
        ("https://zenodo.org/records/123", ("https://zenodo.org", "123")),
        ("https://zenodo.org/api/records/123", ("https://zenodo.org", "123")),
    ],
)
def test_record_references(ref, expected, monkeypatch):
    monkeypatch.delenv("ZENODO_URL", raising=False)
    assert zenodo.record_ref(ref) == expected


@pytest.mark.parametrize("ref", ["10.1186/s13662-023-03797-x", "zenodo.org", "123"])
def test_other_references_are_refused_by_name(ref, monkeypatch):
    monkeypatch.delenv("ZENODO_URL", raising=False)
    with pytest.raises(zenodo.ZenodoError, match="Zenodo DOI"):
        zenodo.record_ref(ref)


def test_the_token_goes_only_to_the_configured_host():
    client = zenodo.Client("https://zenodo.org", TOKEN)
    assert client.url("/api/x") == "https://zenodo.org/api/x"
    with pytest.raises(zenodo.ZenodoError, match="refusing to send the token"):
        client.url("https://elsewhere.example/api/files/b")


def test_the_readme_has_the_marked_lines_that_deposit_rewrites():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Archive and cite", 1)[1].split("\n## ", 1)[0]
    for marker in DEPOSIT_MARKERS.values():
        assert section.count(marker) == 1, marker


def test_set_cff_doi_replaces_an_existing_doi_and_keeps_the_file_valid():
    text = (ROOT / "CITATION.cff").read_text()
    once = zenodo.set_cff_doi(text, "10.5281/zenodo.5")
    twice = zenodo.set_cff_doi(once, "10.5281/zenodo.6", "2027-01-02")
    assert "doi: 10.5281/zenodo.5" not in twice and "\ndoi: 10.5281/zenodo.6\n" in twice
    assert 'date-released: "2027-01-02"' in twice
    assert cff_errors(twice) == []


def test_file_entries_are_read_in_both_record_formats():
    entry = {"key": "a.tar.gz", "checksum": "md5:ABC"}
    for record in ({"files": [entry]}, {"files": {"enabled": True, "entries": {"a": entry}}}):
        assert zenodo.record_file(record, "a.tar.gz") == entry
        assert zenodo.md5_of(zenodo.record_file(record, "a.tar.gz")) == "abc"
    assert zenodo.record_file({"files": []}, "a.tar.gz") is None


# --- credentials stay on the configured host; bad instances and answers are clear errors ---


class Redirect(BaseHTTPRequestHandler):
    """Answers every request with ``302`` to ``server.target`` (another host) or a JSON array."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.target:
            self.send_response(302)
            self.send_header("Location", f"{self.server.target}/api/deposit/depositions")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            data = b"[1, 2]"
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


@pytest.fixture
def redirector():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    srv.target = None
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield from serving(srv)


def test_a_redirect_to_another_host_never_receives_the_token(project, server, redirector):
    redirector.target = server.base  # same address, another port: another origin
    proc = archive_cli(project, "deposit", environ=env(server, ZENODO_URL=redirector.base))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "redirects to" in proc.stderr and "another host" in proc.stderr
    assert server.requests == []  # the other host saw nothing, the token least of all
    assert "draft" not in proc.stdout


def test_an_answer_of_the_wrong_json_shape_is_a_clear_error(project, redirector):
    proc = archive_cli(project, "deposit", environ=env(None, ZENODO_URL=redirector.base,
                                                       ZENODO_TOKEN=TOKEN))  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "the answer is a JSON list, not the JSON object" in proc.stderr


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://127.0.0.1/x", "http://", "http://h:x/"])
def test_a_malformed_instance_url_is_a_clear_error_without_a_request(project, url):
    proc = archive_cli(project, "deposit", environ=env(None, ZENODO_URL=url, ZENODO_TOKEN=TOKEN))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "$ZENODO_URL" in proc.stderr and repr(url) in proc.stderr


def test_an_archive_of_another_config_needs_an_explicit_flag(project, server):
    (project / "dist").rename(project / "dist-default")
    (project / "results/provenance.json").write_text(
        '{"command": "snakemake --configfile my.yaml", "git_commit": "abc"}\n'
    )
    make_archive(project)
    refused = deposit(project, server)
    assert refused.returncode == 2 and server.requests == []
    assert "--configfile my.yaml" in refused.stderr and "--other-config" in refused.stderr
    allowed = deposit(project, server, "--other-config")
    assert allowed.returncode == 0, allowed.stderr
    assert "warning:" in allowed.stdout and "--configfile my.yaml" in allowed.stdout
