"""The committed real-world SQL migration folders are what their PROVENANCE says, and their
expectations only name kinds, versions, reasons and lines that exist.

No download here: ``fixtures/realworld/sql/fetch.py --check`` compares with the registries.
These checks keep hand edits out of the published files and keep ``expected.yaml`` usable by
the tests of the SQL-file migrations.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck.migrations.checks import REASONS

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "realworld" / "sql"
KINDS = set(yaml.safe_load((ROOT.parents[2] / "rules" / "default.yaml").read_text())["kinds"])
PROJECTS = sorted(p.parent.name for p in ROOT.glob("*/expected.yaml"))
ROW = re.compile(r"^\| `([^`]+)` \| `([^`]+)` \| `([0-9a-f]{16})` \|$")


def _spec(project: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / project / "expected.yaml").read_text())
    return spec


def _versions(folder: Path, framework: str) -> set[str]:
    """Versions as the framework's version table stores them (leading zeros dropped for ints)."""
    out = set()
    for path in folder.glob("*.sql"):
        m = re.match(r"^(\d+)_", path.name)
        if m:
            out.add(m.group(1) if framework == "dbmate" else str(int(m.group(1))))
    return out


def test_there_are_at_least_three_projects_and_two_frameworks() -> None:
    assert len(PROJECTS) >= 3
    assert len({_spec(p)["framework"] for p in PROJECTS}) >= 2


@pytest.mark.parametrize("project", PROJECTS)
def test_files_match_their_provenance(project: str) -> None:
    folder = ROOT / project / str(_spec(project)["fixture"])
    listed = {}
    for line in (folder / "PROVENANCE.md").read_text().splitlines():
        if m := ROW.match(line):
            listed[m.group(1)] = m.group(3)
    assert listed, "PROVENANCE.md lists no file"
    extra = {"PROVENANCE.md", "LICENSE", "debian-copyright"}
    present = {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name not in extra and not p.name.startswith("LICENSE.")
    }
    assert present == set(listed)
    for rel, digest in listed.items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest()[:16] == digest, rel
    sha = re.search(r"^- sha256: `([0-9a-f]{64})`$", (folder / "PROVENANCE.md").read_text(), re.M)
    assert sha is not None
    fetch = (ROOT / "fetch.py").read_text()
    assert sha.group(1) in fetch, "PROVENANCE sha256 is not the pin in fetch.py"


@pytest.mark.parametrize("project", PROJECTS)
def test_expectations_name_real_kinds_versions_and_lines(project: str) -> None:
    spec = _spec(project)
    base = ROOT / project / str(spec["fixture"])
    versions = {
        d: _versions(base / c["dir"], spec["framework"]) for d, c in spec["dialects"].items()
    }
    for window in spec["windows"]:
        for section in ("static", "roundtrip"):
            for dialect, pairs in window.get(section, {}).items():
                allowed = set.union(*versions.values()) if dialect == "all" else versions[dialect]
                for kind, subject in pairs:
                    assert kind in KINDS, kind
                    assert subject in allowed, (window["name"], dialect, subject)
        paths = [window[d]["path"] for d in versions if d in window] or [window["path"]]
        for path in paths:
            ints = [int(v) for v in path]
            assert ints == sorted(ints, reverse=True), "path must be in downgrade order"
    for per in spec["reasons"].values():
        reasons = per if isinstance(per, list) else [r for v in per.values() for r in v]
        assert set(reasons) <= set(REASONS)
    for trap in spec["parser_traps"]:
        lines = (base / trap["file"]).read_text().splitlines()
        assert 1 <= trap["line"] <= len(lines), trap


@pytest.mark.parametrize("project", PROJECTS)
def test_ground_truth_section_is_filled(project: str) -> None:
    text = (ROOT / project / "EXPECTED.md").read_text()
    body = text.split("<!-- ground-truth:begin -->")[1].split("<!-- ground-truth:end -->")[0]
    assert "| dialect | tool |" in body
    assert (ROOT / project / "ground_truth.json").exists()
