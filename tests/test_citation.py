"""Citation metadata: CITATION.cff against the CFF 1.2.0 schema, .zenodo.json against Zenodo.

CITATION.cff is checked the way ``cffconvert --validate`` (2.0.0) checks it: YAML loaded safely
with timestamps kept as strings, then JSON-schema validation with a format checker against the
schema file that cffconvert 2.0.0 ships (``cffconvert/schemas/1.2.0/schema.json``, vendored
as ``tests/data/cff-schema-1.2.0.json``). cffconvert itself pins ``jsonschema<4``, which would
break Snakemake's config validation, so it is not a test dependency; the jsonschema 4 that
Snakemake already needs does the validation here. If a ``cffconvert`` executable is found (for
example in an isolated ``.venv-cff``), the file is checked with it too.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tomllib
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

CFF = ROOT / "CITATION.cff"
ZENODO = ROOT / ".zenodo.json"
SCHEMA = ROOT / "tests/data/cff-schema-1.2.0.json"
#: sha256 of cffconvert-2.0.0's cffconvert/schemas/1.2.0/schema.json (the wheel on PyPI).
SCHEMA_SHA256 = "0b8d22140da702d766df318dcff3a91af2f39521298dcf36d76315fd99cc169b"
PAPER_DOI = "10.1186/s13662-023-03797-x"
ARXIV = "arXiv:2108.02040"


class _CffLoader(yaml.SafeLoader):
    """Safe YAML loader that keeps timestamps as strings, as cffconvert does."""


_CffLoader.add_constructor("tag:yaml.org,2002:timestamp", _CffLoader.construct_yaml_str)


def load_cff(text: str) -> Any:
    """Parse CITATION.cff text like cffconvert 2.0.0."""
    return yaml.load(text, Loader=_CffLoader)  # a SafeLoader subclass: no object tags


def cff_errors(text: str) -> list[str]:
    """Schema violations of a CITATION.cff text (empty when valid), as readable lines."""
    data = load_cff(text)
    if not isinstance(data, dict):
        return ["CITATION.cff is not a YAML mapping"]
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    return [
        f"{'/'.join(map(str, err.absolute_path)) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]


# Zenodo's legacy deposit API (deposit metadata reference): the vocabularies a software upload
# may use. Only what the API requires or constrains is checked here.
ZENODO_REQUIRED = ("upload_type", "title", "creators", "description", "access_right")
UPLOAD_TYPES = {
    "publication", "poster", "presentation", "dataset", "image", "video", "software",
    "lesson", "physicalobject", "other",
}  # fmt: skip
ACCESS_RIGHTS = {"open", "embargoed", "restricted", "closed"}
RELATIONS = {
    "isCitedBy", "cites", "isSupplementTo", "isSupplementedBy", "isContinuedBy", "continues",
    "isDescribedBy", "describes", "hasMetadata", "isMetadataFor", "isNewVersionOf",
    "isPreviousVersionOf", "isPartOf", "hasPart", "isReferencedBy", "references",
    "isDocumentedBy", "documents", "isCompiledBy", "compiles", "isVariantFormOf",
    "isOriginalFormof", "isIdenticalTo", "isAlternateIdentifier", "isReviewedBy", "reviews",
    "isDerivedFrom", "isSourceOf", "requires", "isRequiredBy", "isObsoletedBy", "obsoletes",
}  # fmt: skip
SCHEME_PATTERNS = {
    "doi": re.compile(r"^10\.\d{4,9}/\S+$"),
    "arxiv": re.compile(r"^arXiv:\d{4}\.\d{4,5}(v\d+)?$"),
    "url": re.compile(r"^https?://\S+$"),
}


def zenodo_errors(meta: Any) -> list[str]:
    """What Zenodo's deposit API would reject in a software upload's metadata (empty if fine)."""
    if not isinstance(meta, dict):
        return [".zenodo.json must hold a JSON object"]
    errors = [f"missing required field {key!r}" for key in ZENODO_REQUIRED if not meta.get(key)]
    if meta.get("upload_type") not in UPLOAD_TYPES:
        errors.append(f"upload_type {meta.get('upload_type')!r} is not one of Zenodo's types")
    elif meta["upload_type"] != "software":
        errors.append("upload_type must be 'software' for this repository")
    if meta.get("access_right") not in ACCESS_RIGHTS:
        errors.append(f"access_right {meta.get('access_right')!r} is not one of {ACCESS_RIGHTS}")
    if meta.get("access_right") in ("open", "embargoed") and not meta.get("license"):
        errors.append("an open or embargoed upload needs a license")
    creators = meta.get("creators", [])
    if not isinstance(creators, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"] for c in creators
    ):
        errors.append("creators must be a list of objects, each with a non-empty name")
    if not all(isinstance(k, str) and k for k in meta.get("keywords", [])):
        errors.append("keywords must be non-empty strings")
    for i, rel in enumerate(meta.get("related_identifiers", [])):
        errors += related_identifier_errors(i, rel)
    return errors


def related_identifier_errors(index: int, rel: Any) -> list[str]:
    """Problems of one related identifier: relation vocabulary and identifier syntax."""
    where = f"related_identifiers[{index}]"
    if not isinstance(rel, dict) or not rel.get("identifier"):
        return [f"{where} needs an identifier"]
    errors = []
    if rel.get("relation") not in RELATIONS:
        errors.append(f"{where}: relation {rel.get('relation')!r} is not one Zenodo accepts")
    pattern = SCHEME_PATTERNS.get(rel.get("scheme", ""))
    if "scheme" in rel and pattern is None:
        errors.append(f"{where}: scheme {rel['scheme']!r} is not checked by this test")
    elif pattern is not None and not pattern.match(rel["identifier"]):
        errors.append(f"{where}: {rel['identifier']!r} is not a valid {rel['scheme']}")
    return errors


# --- CITATION.cff ---------------------------------------------------------------------------


def test_vendored_schema_is_the_one_cffconvert_ships():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA.read_text())
    assert schema["$id"].endswith("/1.2.0/schema.json")


def test_citation_cff_is_valid_cff_1_2_0():
    errors = cff_errors(CFF.read_text())
    assert errors == [], "CITATION.cff violates the CFF 1.2.0 schema:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("cff-version: 1.2.0\n", ""),  # required key removed
        ("license: MIT", "license: Not-A-License"),  # not an SPDX identifier
        ("doi: 10.1186/s13662-023-03797-x", "doi: not-a-doi"),  # DOI pattern
        ("type: article", "type: blogpost"),  # unknown reference type
        ('date-released: "2026-11-24"', 'date-released: "24.11.2026"'),  # date pattern
        ("keywords:", "colour: blue\nkeywords:"),  # unknown top-level key
    ],
)
def test_broken_citation_cff_fails_validation(old, new):
    text = CFF.read_text()
    assert old in text, f"test fixture out of date: {old!r} not in CITATION.cff"
    assert cff_errors(text.replace(old, new, 1)) != []


def test_citation_matches_the_package_and_the_paper():
    cff = load_cff(CFF.read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (cff["version"], cff["license"]) == (project["version"], project["license"])
    assert "preferred-citation" not in cff
    (paper,) = cff["references"]
    assert paper["type"] == "article" and paper["doi"] == PAPER_DOI
    assert [a["family-names"] for a in paper["authors"]] == ["Nguegnang", "Rauhut", "Terstiege"]
    assert (paper["year"], paper["volume"], str(paper["issue"])) == (2024, 2024, "23")
    assert paper["journal"] == "Advances in Continuous and Discrete Models"
    assert ARXIV in [i["value"] for i in paper["identifiers"]]


def test_cffconvert_agrees_when_available(tmp_path):
    exe = shutil.which("cffconvert") or shutil.which("cffconvert", path=str(ROOT / ".venv-cff/bin"))
    if exe is None:
        pytest.skip("no cffconvert executable (optional cross-check of the vendored schema)")
    good = subprocess.run([exe, "--validate", "-i", str(CFF)], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    broken = tmp_path / "CITATION.cff"
    broken.write_text(CFF.read_text().replace("doi: 10.1186", "doi: 99.1186", 1))
    bad = subprocess.run([exe, "--validate", "-i", str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0


# --- .zenodo.json ---------------------------------------------------------------------------


def test_zenodo_metadata_is_a_valid_software_deposit():
    meta = json.loads(ZENODO.read_text())
    errors = zenodo_errors(meta)
    assert errors == [], ".zenodo.json would be rejected by Zenodo:\n" + "\n".join(errors)


def test_zenodo_metadata_matches_the_citation_file():
    meta, cff = json.loads(ZENODO.read_text()), load_cff(CFF.read_text())
    assert (meta["title"], meta["version"], meta["license"]) == (
        cff["title"],
        cff["version"],
        cff["license"],
    )
    assert [c["name"] for c in meta["creators"]] == [a["name"] for a in cff["authors"]]
    related = {(r["identifier"], r["relation"], r["scheme"]) for r in meta["related_identifiers"]}
    assert (PAPER_DOI, "isSupplementTo", "doi") in related
    assert (ARXIV, "isSupplementTo", "arxiv") in related


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.pop("creators"), "missing required field 'creators'"),
        (lambda m: m.pop("description"), "missing required field 'description'"),
        (lambda m: m.update(upload_type="code"), "upload_type 'code'"),
        (lambda m: m.update(access_right="public"), "access_right 'public'"),
        (lambda m: m.pop("license"), "needs a license"),
        (lambda m: m["creators"].append({"affiliation": "x"}), "each with a non-empty name"),
        (
            lambda m: m["related_identifiers"][0].update(relation="supplements"),
            "relation 'supplements'",
        ),
        (
            lambda m: m["related_identifiers"][1].update(identifier="2108.02040"),
            "is not a valid arxiv",
        ),
    ],
)
def test_broken_zenodo_metadata_is_reported(change, expected):
    meta = json.loads(ZENODO.read_text())
    change(meta)
    errors = zenodo_errors(meta)
    assert any(expected in e for e in errors), errors


# --- what `make deposit` writes -------------------------------------------------------------


def test_the_deposited_metadata_is_still_a_valid_software_deposit():
    from deeplinear.publish.zenodo import deposit_metadata

    meta = deposit_metadata(json.loads(ZENODO.read_text()), "x-1-abcd.tar.gz", "0" * 64)
    assert zenodo_errors(meta) == []
    assert (
        isinstance(meta["notes"], str)
        and f"SHA-256 (x-1-abcd.tar.gz): {'0' * 64}" in (meta["notes"])
    )


def test_a_deposited_doi_keeps_citation_cff_valid(tmp_path):
    from deeplinear.publish.zenodo import set_cff_doi

    text = set_cff_doi(CFF.read_text(), "10.5281/zenodo.1234567", "2026-12-01")
    assert cff_errors(text) == []
    assert load_cff(text)["doi"] == "10.5281/zenodo.1234567"
    assert load_cff(text)["references"][0]["doi"] == PAPER_DOI
    exe = shutil.which("cffconvert") or shutil.which("cffconvert", path=str(ROOT / ".venv-cff/bin"))
    if exe is not None:
        path = tmp_path / "CITATION.cff"
        path.write_text(text)
        proc = subprocess.run([exe, "--validate", "-i", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
