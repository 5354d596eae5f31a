"""Deposit the archive on Zenodo and read a published record back (standard library only).

The REST calls are those of Zenodo's deposit API (developers.zenodo.org):

- ``POST /api/deposit/depositions`` with ``{"metadata": ...}`` creates a draft; its
  ``links.bucket`` takes the files (``PUT <bucket>/<file name>``, raw bytes; the answer holds
  the stored file's ``checksum``, ``md5:<hex>``);
- ``POST /api/deposit/depositions/<id>/actions/newversion`` on a published record makes a
  draft of a new version, found under ``links.latest_draft`` of the answer (the answer is the
  old record); the draft inherits the old files, which are removed
  (``DELETE /api/deposit/depositions/<id>/files/<file id>``), and its metadata is replaced
  (``PUT /api/deposit/depositions/<id>``);
- ``POST /api/deposit/depositions/<id>/actions/publish`` publishes and mints the DOI;
- ``GET /api/records/<id>`` reads a published record (no token needed).

Authentication: ``Authorization: Bearer <token>``, the token taken from ``ZENODO_TOKEN``.
The archive's SHA-256 goes into the record's ``notes`` as ``SHA-256 (<file>): <hex>``, which
``python -m deeplinear.publish verify --doi`` reads back beside the md5 checksum Zenodo
keeps. After publishing, the DOI goes into ``CITATION.cff``, the README's marked lines
(:mod:`deeplinear.publish.readme`) and ``provenance.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from deeplinear.publish.files import PublishError, file_digest, write_text_atomic
from deeplinear.publish.readme import deposit_lines, with_deposit_lines

PRODUCTION = "https://zenodo.org"
SANDBOX = "https://sandbox.zenodo.org"
#: DOI prefix of each instance: DataCite's test prefix for the sandbox.
DOI_PREFIX = {PRODUCTION: "10.5281", SANDBOX: "10.5072"}
TOKEN_VARIABLE = "ZENODO_TOKEN"
URL_VARIABLE = "ZENODO_URL"
#: The config of the reference result: archives of other configs need --other-config.
DEFAULT_CONFIG = "config/config.yaml"
TIMEOUT = 120
ZENODO_DOI = re.compile(r"^(10\.\d{4,9})/zenodo\.(\d+)$")
RECORD_PATH = re.compile(r"^/(?:api/)?(?:records?|deposit/depositions|uploads)/(\d+)/?$")
SHA256_NOTE = re.compile(r"SHA-256 \((?P<name>[^()\s]+)\): (?P<hex>[0-9a-f]{64})")


class ZenodoError(PublishError):
    """A failed request or an answer the deposit cannot use; the message says which."""


# --- HTTP ----------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str]:
    """``(scheme, host:port)`` of a URL, lower-cased: what "the same host" compares."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to the origin (scheme, host and port) of the request: a
    redirect elsewhere would carry the token to a host it was not given for."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urljoin(req.full_url, newurl)
        if _origin(target) != _origin(req.full_url):
            raise ZenodoError(
                f"{req.get_method()} {req.full_url}: the server redirects to {target}, another "
                "host; the token is sent only to the configured instance, so the request stops"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


class Client:
    """Minimal JSON client for one Zenodo instance; sends the token only to that host.

    Links taken from answers must be on the instance's origin, and redirects are followed
    only within it (:class:`_SameOriginRedirects`).
    """

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = check_base(base)
        self.token = token
        self._origin = _origin(self.base)

    def url(self, target: str) -> str:
        """Absolute URL of an API path (``/api/...``) or of a link from an answer."""
        url = self.base + target if target.startswith("/") else target
        if _origin(url) != self._origin:
            raise ZenodoError(f"refusing to send the token to {url}: not on {self.base}")
        return url

    def request(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        upload: IO[bytes] | None = None,
        size: int | None = None,
    ) -> dict[str, Any] | None:
        """Send one request; return the decoded JSON object (None when the answer is empty).

        Every answer the deposit reads is a JSON object: any other JSON value is an error.
        """
        url = self.url(target)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data: Any = None
        if upload is not None:
            data = upload
            headers["Content-Type"] = "application/octet-stream"
            headers["Content-Length"] = str(size)
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with _OPENER.open(req, timeout=TIMEOUT) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            raise ZenodoError(f"{method} {url}: HTTP {err.code} {_message(err)}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ZenodoError(f"{method} {url}: cannot reach the server ({reason})") from None
        if not payload.strip():
            return None
        try:
            answer = json.loads(payload)
        except ValueError:
            raise ZenodoError(f"{method} {url}: the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise ZenodoError(
                f"{method} {url}: the answer is a JSON {type(answer).__name__}, not the JSON "
                "object Zenodo's API returns; is the URL a Zenodo instance?"
            )
        return answer


def _message(err: urllib.error.HTTPError) -> str:
    """Zenodo's error message (``message`` and field ``errors``) or the HTTP reason."""
    try:
        body = json.loads(err.read() or b"{}")
    except (ValueError, OSError):
        return str(err.reason)
    if not isinstance(body, dict):
        return str(err.reason)
    details = [
        f"{e.get('field', '?')}: {e.get('message', e.get('messages', ''))}"
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    return "; ".join([str(body.get("message") or err.reason), *details])


def base_url(sandbox: bool = False, override: str | None = None) -> str:
    """The instance: ``override`` (or ``$ZENODO_URL``), else the sandbox or zenodo.org."""
    override = override or os.environ.get(URL_VARIABLE)
    if override:
        return check_base(override, f"${URL_VARIABLE}")
    return SANDBOX if sandbox else PRODUCTION


def check_base(base: str, name: str = "the instance URL") -> str:
    """``base`` without its trailing slash, if it is an ``http(s)://host[:port]`` URL."""
    try:
        parts = urllib.parse.urlsplit(base.strip())
        port = parts.port  # raises ValueError on a malformed port
    except ValueError as err:
        raise ZenodoError(f"{name} = {base!r} is not a valid URL ({err})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ZenodoError(
            f"{name} = {base!r} is not an http(s) URL of a host (for example "
            f"{PRODUCTION} or http://127.0.0.1:{port or 8000})"
        )
    if parts.query or parts.fragment:
        raise ZenodoError(f"{name} = {base!r}: an instance URL has no query or fragment")
    return base.strip().rstrip("/")


def token_from_env() -> str:
    """The personal access token from ``$ZENODO_TOKEN``; a clear error if it is missing."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise ZenodoError(
            f"the environment variable {TOKEN_VARIABLE} is not set: create a personal access "
            "token on Zenodo (Applications > Personal access tokens, scopes deposit:write and "
            f"deposit:actions) and export {TOKEN_VARIABLE}=<token>"
        )
    return token


# --- published records ---------------------------------------------------------------------


def record_ref(ref: str) -> tuple[str, str]:
    """(instance URL, record id) of a Zenodo DOI (``10.5281/zenodo.<id>``, also as a
    ``https://doi.org/`` URL) or of a record URL (``https://zenodo.org/records/<id>``).

    A DOI's instance comes from its prefix (``$ZENODO_URL`` overrides it).
    """
    text = ref.strip()
    doi = re.sub(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", "", text, flags=re.IGNORECASE)
    match = ZENODO_DOI.match(doi)
    if match:
        prefixes = {prefix: url for url, prefix in DOI_PREFIX.items()}
        if match.group(1) not in prefixes and not os.environ.get(URL_VARIABLE):
            raise ZenodoError(f"{ref} is not a Zenodo DOI (10.5281/... or sandbox 10.5072/...)")
        instance = os.environ.get(URL_VARIABLE) or prefixes[match.group(1)]
        return instance.rstrip("/"), match.group(2)
    parts = urllib.parse.urlsplit(text)
    path = RECORD_PATH.match(parts.path)
    if parts.scheme in ("http", "https") and parts.netloc and path:
        return f"{parts.scheme}://{parts.netloc}", path.group(1)
    raise ZenodoError(
        f"{ref!r} is neither a Zenodo DOI (10.5281/zenodo.<id>) nor a record URL "
        "(https://zenodo.org/records/<id>)"
    )


def fetch_record(ref: str) -> dict[str, Any]:
    """The published record of a DOI or record URL (``GET /api/records/<id>``)."""
    base, record_id = record_ref(ref)
    record = Client(base).request("GET", f"/api/records/{record_id}")
    if not isinstance(record, dict):
        raise ZenodoError(f"record {record_id} on {base}: the answer is not a record")
    return record


def file_name(entry: Mapping[str, Any]) -> str:
    """Name of a file entry (records say ``key``, depositions ``filename``)."""
    return str(entry.get("key") or entry.get("filename") or "")


def file_entries(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The file entries of a record or deposition: a list (deposit API, legacy record
    format) or ``{"entries": ...}`` (InvenioRDM's record format)."""
    files = record.get("files") or []
    if isinstance(files, dict):
        entries = files.get("entries") or []
        files = list(entries.values()) if isinstance(entries, dict) else entries
    return [entry for entry in files if isinstance(entry, dict)]


def record_file_names(record: Mapping[str, Any]) -> list[str]:
    """Names of the files of a record or deposition."""
    return [file_name(entry) for entry in file_entries(record)]


def record_file(record: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The file entry of that name, or None."""
    return next((entry for entry in file_entries(record) if file_name(entry) == name), None)


def md5_of(entry: Mapping[str, Any]) -> str:
    """Hex md5 of a file entry (``md5:<hex>`` in records and buckets, bare in depositions)."""
    checksum = str(entry.get("checksum") or "")
    return checksum.removeprefix("md5:").lower()


def sha256_note(name: str, digest: str) -> str:
    """The line of the record's notes that publishes the archive's SHA-256."""
    return f"SHA-256 ({name}): {digest}"


def published_sha256_in(record: Mapping[str, Any], name: str) -> str | None:
    """The SHA-256 a record publishes for a file (in its notes or description), or None."""
    meta = record.get("metadata") or {}
    for field in ("notes", "description"):
        text = re.sub(r"<[^>]+>", " ", str(meta.get(field) or ""))
        for match in SHA256_NOTE.finditer(text):
            if match.group("name") == name:
                return match.group("hex")
    return None


# --- deposit -------------------------------------------------------------------------------


def deposit_metadata(metadata: Mapping[str, Any], name: str, digest: str) -> dict[str, Any]:
    """The metadata of ``.zenodo.json`` with the archive's SHA-256 added to ``notes``."""
    meta = dict(metadata)
    note = sha256_note(name, digest)
    check = (
        f"Check a download with: sha256sum {name}; or unpack it and run "
        "PYTHONPATH=<unpacked>/src python3 -m deeplinear.publish verify"
    )
    lines = [str(meta["notes"])] if meta.get("notes") else []
    meta["notes"] = "\n".join([*lines, f"{note}. {check} {name} --sha256 {digest}"])
    return meta


def deposit(
    client: Client,
    archive: Path,
    metadata: Mapping[str, Any],
    *,
    record_id: str | None = None,
    deposition_id: str | None = None,
    publish: bool = False,
    out: IO[str] | None = None,
) -> dict[str, Any]:
    """Put the archive into a Zenodo draft and, only if ``publish``, publish it.

    The draft is ``deposition_id`` (an existing draft), else a new version of the published
    record ``record_id``, else a new deposition. Returns the final deposition (published
    or draft) as Zenodo describes it.
    """
    out = sys.stdout if out is None else out
    sha256, md5 = file_digest(archive, "sha256"), file_digest(archive, "md5")
    meta = deposit_metadata(metadata, archive.name, sha256)
    fresh = False
    if deposition_id:
        draft = client.request("GET", f"/api/deposit/depositions/{deposition_id}")
        if draft.get("submitted") or draft.get("state") == "done":
            raise ZenodoError(f"deposition {deposition_id} is already published")
    elif record_id:
        old = client.request("POST", f"/api/deposit/depositions/{record_id}/actions/newversion")
        latest = (old or {}).get("links", {}).get("latest_draft")
        if not latest:
            raise ZenodoError(f"record {record_id}: the new-version answer has no latest_draft")
        draft = client.request("GET", latest)
        print(f"new version of record {record_id}: draft {draft.get('id')}", file=out)
    else:
        draft = client.request("POST", "/api/deposit/depositions", {"metadata": meta})
        fresh = True
        print(f"created draft deposition {draft.get('id')}", file=out)
    did = draft.get("id")
    bucket = draft.get("links", {}).get("bucket")
    if did is None or not bucket:
        raise ZenodoError("the draft deposition has no id or no file bucket")
    if not fresh:
        draft = client.request("PUT", f"/api/deposit/depositions/{did}", {"metadata": meta})
    present = False
    for entry in file_entries(draft):
        if file_name(entry) == archive.name and md5_of(entry) == md5:
            present = True
            continue
        client.request("DELETE", f"/api/deposit/depositions/{did}/files/{entry['id']}")
        print(f"removed {file_name(entry)} (inherited) from draft {did}", file=out)
    if not present:
        with archive.open("rb") as fh:
            stored = client.request(
                "PUT",
                f"{bucket}/{urllib.parse.quote(archive.name)}",
                upload=fh,
                size=archive.stat().st_size,
            )
        if md5_of(stored or {}) != md5:
            raise ZenodoError(
                f"upload of {archive.name}: Zenodo stored md5 {md5_of(stored or {}) or '?'}, "
                f"the file's md5 is {md5}"
            )
        print(f"uploaded {archive.name} (md5 {md5}) to draft {did}", file=out)
    if not publish:
        return draft
    published = client.request("POST", f"/api/deposit/depositions/{did}/actions/publish")
    if not isinstance(published, dict) or not published.get("doi"):
        raise ZenodoError(f"publishing deposition {did}: the answer carries no DOI")
    return published


# --- writing the DOI back ------------------------------------------------------------------


def set_cff_doi(text: str, doi: str, released: str | None = None) -> str:
    """CITATION.cff text with the top-level ``doi:`` set (after ``version:`` if new) and,
    if given, ``date-released``."""
    lines = text.splitlines(keepends=True)
    doi_line = f"doi: {doi}\n"
    index = next((i for i, line in enumerate(lines) if line.startswith("doi:")), None)
    if index is not None:
        lines[index] = doi_line
    else:
        after = next((i for i, line in enumerate(lines) if line.startswith("version:")), None)
        if after is None:
            raise ZenodoError("CITATION.cff has no top-level 'version:' line to put doi after")
        lines.insert(after + 1, doi_line)
    if released:
        lines = [f'date-released: "{released}"\n' if ln.startswith("date-released:") else ln
                 for ln in lines]  # fmt: skip
    return "".join(lines)


def record_deposit(
    published: Mapping[str, Any],
    archive: Path,
    base: str,
    *,
    citation: Path,
    readme: Path,
    provenance: Path,
    out: IO[str],
) -> None:
    """Write the DOI of a published deposit into CITATION.cff, the README and provenance."""
    doi = str(published["doi"])
    digest = file_digest(archive, "sha256")
    released = (published.get("metadata") or {}).get("publication_date")
    write_text_atomic(citation, set_cff_doi(citation.read_text(encoding="utf-8"), doi, released))
    print(f"wrote doi: {doi} into {citation}", file=out)
    lines = deposit_lines(base, doi, archive.name, digest)
    text, missing = with_deposit_lines(readme.read_text(encoding="utf-8"), lines)
    write_text_atomic(readme, text)
    for marker in missing:
        print(f"warning: {readme} has no line marked {marker}; add the DOI by hand", file=out)
    if not missing:
        print(f"wrote the DOI badge and the SHA-256 into {readme}", file=out)
    if provenance.is_file():
        record = json.loads(provenance.read_text(encoding="utf-8"))
        record["deposit"] = {
            "archive": archive.name,
            "sha256": digest,
            "doi": doi,
            "conceptdoi": published.get("conceptdoi"),
            "record": (published.get("links") or {}).get("record_html")
            or (published.get("links") or {}).get("html"),
        }
        write_text_atomic(provenance, json.dumps(record, indent=2, sort_keys=True) + "\n")
        print(f"wrote the deposit into {provenance}", file=out)
    else:
        print(f"warning: {provenance} not found; the DOI is not recorded there", file=out)


# --- command line --------------------------------------------------------------------------


def add_deposit_parser(sub: Any) -> None:
    """The ``deposit`` subcommand of ``python -m deeplinear.publish``."""
    d = sub.add_parser(
        "deposit",
        help="upload the archive to a Zenodo draft; publish only with --publish",
        description=(
            f"Token from ${TOKEN_VARIABLE}; instance zenodo.org, the sandbox with --sandbox, "
            f"or ${URL_VARIABLE}."
        ),
    )
    d.add_argument("archive", type=Path, nargs="?", help="default: the one dist/*.tar.gz")
    d.add_argument("--dist", type=Path, default=Path("dist"), help="where to look for it")
    d.add_argument("--metadata", type=Path, default=Path(".zenodo.json"))
    d.add_argument("--publish", action="store_true", help="publish (mints the DOI)")
    d.add_argument("--sandbox", action="store_true", help="use sandbox.zenodo.org")
    d.add_argument("--url", help=f"instance URL (default ${URL_VARIABLE} or zenodo.org)")
    d.add_argument("--record-id", help="publish as a new version of this record")
    d.add_argument("--deposition", help="use this existing draft deposition")
    d.add_argument("--citation", type=Path, default=Path("CITATION.cff"))
    d.add_argument("--readme", type=Path, default=Path("README.md"))
    d.add_argument("--provenance", type=Path, default=Path("results/provenance.json"))
    d.add_argument(
        "--other-config",
        action="store_true",
        help=f"deposit an archive of a run with a config other than {DEFAULT_CONFIG}",
    )


def find_archive(given: Path | None, dist: Path) -> Path:
    """The archive to deposit: the one given, else the single ``dist/*.tar.gz``."""
    if given is not None:
        if not given.is_file():
            raise ZenodoError(f"archive not found: {given}")
        return given
    found = sorted(dist.glob("*.tar.gz"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ZenodoError(f"name the archive (ARCHIVE=...): {dist} holds {names}")
    return found[0]


def check_before_upload(archive: Path) -> None:
    """Refuse an archive that fails ``verify`` or disagrees with its ``.sha256`` file."""
    from deeplinear.publish import archive as tool

    sums = tool.sha256_path(archive)
    listing = io.StringIO()
    problems = io.StringIO()
    sha = str(sums) if sums.is_file() else None
    if tool.verify(archive, listing, problems, sha256=sha) != 0:
        raise ZenodoError(f"{archive} does not verify: {problems.getvalue().strip()}")


def archive_configfiles(archive: Path) -> list[str] | None:
    """The ``--configfile`` arguments of the run an archive holds, read from the command in
    its ``provenance.json`` (``[]`` for the default config); None without provenance."""
    import tarfile

    try:
        with tarfile.open(archive) as tar:
            member = next(
                (m for m in tar.getmembers() if m.isfile() and m.name.endswith("/provenance.json")),
                None,
            )
            record = json.load(tar.extractfile(member)) if member is not None else None
    except (OSError, EOFError, tarfile.TarError, ValueError) as err:
        raise ZenodoError(f"cannot read the provenance in {archive}: {err}") from None
    if not isinstance(record, dict) or not isinstance(record.get("command"), str):
        return None
    words, files = shlex.split(record["command"]), []
    for i, word in enumerate(words):
        if word == "--configfile" and i + 1 < len(words):
            files.append(words[i + 1])
        elif word.startswith("--configfile="):
            files.append(word.split("=", 1)[1])
    return files


def check_default_config(archive: Path, allow_other: bool, out: IO[str]) -> None:
    """Refuse an archive of a run of another config than :data:`DEFAULT_CONFIG` (or of
    unknown config) unless ``allow_other``; then say what is deposited."""
    files = archive_configfiles(archive)
    if files is not None and files in ([], [DEFAULT_CONFIG]):
        return
    what = (
        "has no provenance naming its config"
        if files is None
        else (f"holds a run of --configfile {' '.join(files)}")
    )
    if not allow_other:
        raise ZenodoError(
            f"{archive.name} {what}, not of the default {DEFAULT_CONFIG}; the record would "
            "not be the reference result. Deposit it anyway with --other-config "
            "(make deposit OTHER_CONFIG=1)"
        )
    print(f"warning: {archive.name} {what}, not of the default {DEFAULT_CONFIG}", file=out)


def citation_record_id(citation: Path, base: str, out: IO[str]) -> str | None:
    """Record id of the Zenodo DOI in CITATION.cff, if it belongs to this instance."""
    if not citation.is_file():
        return None
    match = re.search(r"^doi:\s*\"?([^\s\"]+)", citation.read_text(encoding="utf-8"), re.M)
    doi = ZENODO_DOI.match(match.group(1)) if match else None
    if doi is None:
        return None
    expected = DOI_PREFIX.get(base)
    if expected is not None and doi.group(1) != expected:
        print(f"note: {citation}'s DOI is not one of {base}; starting a new record", file=out)
        return None
    print(f"{citation} names record {doi.group(2)}: depositing a new version of it", file=out)
    return doi.group(2)


def run_deposit(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """``deposit``: check the archive, upload it, publish if asked, write the DOI back."""
    out = sys.stdout if out is None else out
    archive = find_archive(args.archive, args.dist)
    try:
        metadata = json.loads(args.metadata.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ZenodoError(f"cannot read the deposit metadata {args.metadata}: {err}") from None
    if not isinstance(metadata, dict):
        raise ZenodoError(f"{args.metadata} must hold a JSON object (Zenodo's metadata)")
    token = token_from_env()
    base = base_url(args.sandbox, args.url)
    check_before_upload(archive)
    check_default_config(archive, args.other_config, out)
    record_id = args.record_id
    if record_id is None and args.deposition is None:
        record_id = citation_record_id(args.citation, base, out)
    client = Client(base, token)
    result = deposit(
        client, archive, metadata, record_id=record_id, deposition_id=args.deposition,
        publish=args.publish, out=out,
    )  # fmt: skip
    links = result.get("links") or {}
    if not args.publish:
        print(
            f"draft {result.get('id')} holds {archive.name}; review it at "
            f"{links.get('html', base)} and publish with PUBLISH=1 DEPOSITION={result.get('id')}",
            file=out,
        )
        return 0
    print(f"published {archive.name}: DOI {result['doi']}", file=out)
    print(f"SHA-256 {file_digest(archive, 'sha256')}  {archive.name}", file=out)
    if base == SANDBOX:
        print("sandbox DOI: CITATION.cff, README.md and provenance left unchanged", file=out)
        return 0
    record_deposit(
        result, archive, base, citation=args.citation, readme=args.readme,
        provenance=args.provenance, out=out,
    )  # fmt: skip
    return 0
