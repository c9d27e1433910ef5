"""Four real projects' SQL migration folders (``fixtures/realworld/sql``) through
``compatcheck migrations``: for every window and dialect of their ``expected.yaml``, the exact
``(kind, subject)`` set statically (``--static --dialect``) and after the round trip on that
engine, the downgrade path, the ``old-code-incompatible`` reasons and the
``downgrade-will-fail`` ones.

The folders are read by the SQL parser of ``compatcheck/migrations/sqlstatic.py``, one reader per
history. Where the result differs because of a limit of the round trip's core, the case is a
strict xfail naming why: it fails loudly once the core catches up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck.cli import main

pytestmark = pytest.mark.realworld

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "realworld" / "sql"
DIALECT = {"sqlite": "sqlite", "postgres": "postgresql", "mysql": "mysql"}

#: (project, window, dialect, mode) → why our result differs from expected.yaml today.
KNOWN: dict[tuple[str, str, str, str], str] = {}


def _spec(project: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / project / "expected.yaml").read_text())
    return data


def _cases() -> list[Any]:
    out = []
    for project in sorted(p.parent.name for p in ROOT.glob("*/expected.yaml")):
        spec = _spec(project)
        for window in spec["windows"]:
            for dialect in spec["dialects"]:
                for mode in ("static", "roundtrip"):
                    listed = window.get(mode, {})
                    if dialect not in listed and "all" not in listed:
                        continue
                    key = (project, window["name"], dialect, mode)
                    marks = (
                        [pytest.mark.xfail(strict=True, reason=KNOWN[key])] if key in KNOWN else []
                    )
                    if mode == "roundtrip" and dialect != "sqlite":
                        marks.append(
                            getattr(pytest.mark, "postgres" if dialect == "postgres" else "mysql")
                        )
                    out.append(pytest.param(*key, marks=marks, id="-".join(key)))
    return out


def _expected(spec: dict[str, Any], window: dict[str, Any], dialect: str, mode: str) -> set[Any]:
    def listed(section: str) -> set[tuple[str, str]]:
        per = window.get(section, {})
        return {(k, str(s)) for k, s in per.get(dialect, per.get("all", []))}

    if mode == "static":
        return listed("static") | listed("without_roundtrip")
    return listed("static") | listed("roundtrip")


@pytest.mark.parametrize(("project", "name", "dialect", "mode"), _cases())
def test_project(
    project: str, name: str, dialect: str, mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    spec = _spec(project)
    window = next(w for w in spec["windows"] if w["name"] == name)
    span = window.get(dialect, window)
    folder = ROOT / project / str(spec["fixture"]) / spec["dialects"][dialect]["dir"]
    out = tmp_path / "report.json"
    argv = ["migrations", "--script-location", str(folder), "--framework", spec["framework"]]
    argv += ["--old", str(span["old"]), "--new", str(span["new"]), "-q", "--format", "json"]
    argv += ["-o", str(out)]
    if mode == "static":
        argv += ["--static", "--dialect", DIALECT[dialect]]
    elif dialect != "sqlite":
        url = request.getfixturevalue("postgres_url" if dialect == "postgres" else "mysql_url")
        argv += ["--db-url", url]
    main(argv)
    doc = json.loads(out.read_text())
    section = doc["migrations"]
    assert section["framework"] == spec["framework"]
    assert section["downgrade_path"] == [str(v) for v in span["path"]]
    if mode == "roundtrip":
        assert section["roundtrip"]["status"] not in ("skipped", "unavailable")
    got = {(f["kind"], f["subject"]) for f in doc["findings"]}
    assert got == _expected(spec, window, dialect, mode)
    reasons = spec["reasons"].get(dialect, spec["reasons"]) if spec["reasons"] else {}
    for f in doc["findings"]:
        if f["kind"] == "migrations/old-code-incompatible" and f["subject"] in reasons:
            assert sorted(f["evidence"]["reasons"]) == sorted(reasons[f["subject"]])
        if f["kind"] == "migrations/downgrade-will-fail":  # what fails, not only which step
            assert f["evidence"]["reasons"] == spec["will_fail"][f["subject"]]
