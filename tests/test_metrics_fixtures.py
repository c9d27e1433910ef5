"""Fixture pairs under fixtures/metrics/<case>/: the exact (kind, subject) set and the verdict.

Each case is data (old.prom, new.prom, expected.yaml), so adding a case needs no code; the test
asserts the exact set of findings, never "at least one".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compatcheck.cli import main
from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.schemas import validate
from compatcheck.sources import load_source

CASES = sorted(
    p for p in (Path(__file__).parent.parent / "fixtures" / "metrics").iterdir() if p.is_dir()
)


def _expected(case: Path) -> dict[str, object]:
    data = yaml.safe_load((case / "expected.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fixture_exact_findings(case: Path) -> None:
    expected = _expected(case)
    old = load_source(str(case / "old.prom"))
    new = load_source(str(case / "new.prom"))
    report = evaluate(old, new, EvaluateOptions())
    got = {(rf.finding.kind, rf.finding.subject) for rf in report.findings}
    want = {tuple(f) for f in expected["findings"]}  # type: ignore[attr-defined]
    assert got == want
    assert report.verdict == expected["verdict"]
    assert validate(report.to_json(), "report") is None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fixture_cli_exit_code_and_json(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _expected(case)
    out = tmp_path / "report.json"
    code = main(
        ["diff", str(case / "old.prom"), str(case / "new.prom"), "--format", "json", "-o", str(out)]
    )
    default = 0 if expected["verdict"] == "go" else 1
    assert code == expected.get("exit_code", default)
    doc = json.loads(out.read_text())
    assert validate(doc, "report") is None
    assert doc["verdict"] == expected["verdict"]
    assert doc["go"] is (expected["verdict"] == "go")


def test_deploy_direction_swaps_removed_and_added() -> None:
    case = next(c for c in CASES if c.name == "family_removed_added")
    old = load_source(str(case / "old.prom"))
    new = load_source(str(case / "new.prom"))
    report = evaluate(old, new, EvaluateOptions(direction="deploy"))
    got = {(rf.finding.kind, rf.finding.subject) for rf in report.findings}
    assert got == {
        ("metrics/family-added", "cache_hits_total"),
        ("metrics/family-added", "jobs_inflight"),
        ("metrics/family-removed", "legacy_queue_depth"),
    }
