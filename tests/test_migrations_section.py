"""The typed ``migrations`` section writes the report's JSON exactly, and reads it back.

Key order is part of the output (the JSON reporter does not sort keys), so every comparison is
of the serialised text, not of dicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.migrations import MigrationsSection, inspect_migrations
from compatcheck.migrations.plans import judge_trial, verify_code_only
from compatcheck.migrations.section import (
    Exchange,
    Plan,
    Removal,
    RoundTrip,
    SchemaDifference,
    StepFailure,
    TrialRecord,
    TrialSetup,
)
from compatcheck.schemas import validate
from compatcheck.snapshot import Snapshot

ALEMBIC = Path(__file__).resolve().parent.parent / "fixtures" / "alembic"
CASES = sorted(p.name for p in ALEMBIC.iterdir() if (p / "expected.yaml").is_file())


#: Keys every inspection writes first, in this order.
HEAD = ["framework", "old_head", "new_head", "downgrade_path", "plans", "heads", "mode"]


def _text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2)


def _reads_back(section: MigrationsSection) -> dict[str, Any]:
    doc = section.to_json()
    assert _text(MigrationsSection.from_json(json.loads(_text(doc))).to_json()) == _text(doc)
    return doc


@pytest.mark.parametrize("case", CASES)
def test_a_static_section_reads_back_as_written(case: str) -> None:
    exp = yaml.safe_load((ALEMBIC / case / "expected.yaml").read_text())
    result = inspect_migrations(ALEMBIC / case, exp["old"], exp["new"], static=True)
    doc = _reads_back(result.section)
    # Without a path (diverged heads) there is nothing Alembic would skip either.
    skipped = ["skipped_by_alembic"] if doc["downgrade_path"] is not None else []
    assert list(doc) == [
        *HEAD,
        "static_reason",
        "roundtrip",
        *skipped,
        "recommended",
    ]


@pytest.mark.parametrize("case", ["destructive_downgrade", "batch_mode", "failing_downgrade"])
def test_a_round_trip_section_reads_back_as_written(case: str, isolated_tmp: Path) -> None:
    exp = yaml.safe_load((ALEMBIC / case / "expected.yaml").read_text())
    result = inspect_migrations(ALEMBIC / case, exp["old"], exp["new"])
    doc = _reads_back(result.section)
    assert list(doc) == [
        *HEAD,
        "skipped_by_alembic",
        "engine",
        "database",
        "roundtrip",
        "offline_sql",
        "online_only",
        "recommended",
    ]
    assert list(doc["roundtrip"]) == [
        "status",
        "failure",
        "schema_differences",
        "reupgrade_differences",
        "old_data_lost",
        "new_data_removed",
        "seeded",
        "seed_errors",
        "timings",
    ]


def test_a_missing_path_is_null_and_no_recommendation_is_absent() -> None:
    result = inspect_migrations(ALEMBIC / "destructive_downgrade", "0999_gone", "0003", static=True)
    doc = _reads_back(result.section)
    assert doc["downgrade_path"] is None
    assert doc["recommended"] is None
    hand = MigrationsSection.from_json({"old_head": "a", "new_head": "b", "downgrade_path": []})
    assert "recommended" not in hand.to_json()
    # The published schema takes the report that says so.
    report = evaluate(
        Snapshot(label="v1"),
        Snapshot(label="v2"),
        EvaluateOptions(extra_findings=result.findings, migrations=result.section),
    )
    assert validate(report.to_json(), "report") is None


def test_the_code_only_trial_reads_back_as_written() -> None:
    trial = judge_trial(
        [Exchange("GET", "/a", 200), Exchange("POST", "/b", 201)],
        [Exchange("GET", "/a", 200), Exchange("POST", "/b", None, "server closed", "E: boom")],
        setup=TrialSetup(database="sqlite", prepared="copy", prepare_seconds=0.1, seconds=2.0),
    )
    section = MigrationsSection("a", "b", ("b",))
    _, judged = verify_code_only([], section, trial)
    doc = _reads_back(judged)
    assert list(doc["code_only_trial"]) == [
        "verified",
        "safe",
        "replayed",
        "failures",
        "database",
        "prepared",
        "prepare_seconds",
        "seconds",
        "requests",
    ]
    assert doc["code_only_trial"]["requests"][1] == {
        "method": "POST",
        "path": "/b",
        "status": None,
        "error": "server closed",
        "log": "E: boom",
    }


@pytest.mark.parametrize("direction", ["rollback", "deploy"])
def test_the_report_writes_its_plans_from_the_section(direction: str) -> None:
    section = MigrationsSection(
        "a", "b", ("b",), (Plan("code-only", True), Plan("downgrade", False))
    )
    doc = evaluate(
        Snapshot(label="v1"), Snapshot(label="v2"), EvaluateOptions(direction, migrations=section)
    ).to_json()
    assert doc["plans"] == doc["migrations"]["plans"]
    assert [p.get("applies_to") for p in doc["plans"]] == (
        [None, None] if direction == "rollback" else ["this deploy", "a later rollback"]
    )


_text_st = st.text(max_size=12)
_maybe = st.none() | _text_st
_plans = st.builds(
    Plan,
    name=st.sampled_from(["code-only", "downgrade"]),
    safe=st.booleans(),
    reasons=st.tuples(_text_st),
    verified=st.none() | st.booleans(),
    verification=_maybe,
    basis=_maybe,
    basis_reason=_maybe,
    removes_new_data=st.tuples(st.builds(Removal, _text_st, _text_st, st.none() | st.integers())),
    live_data_at_risk=st.tuples(_text_st),
    status=_maybe,
    applies_to=_maybe,
)
_counts = st.dictionaries(_text_st, st.integers(0, 99), max_size=2)
_roundtrips = st.builds(
    RoundTrip,
    status=st.sampled_from(["completed", "downgrade-failed"]),
    failure=st.none() | st.builds(StepFailure, _text_st, _maybe, _text_st),
    schema_differences=st.tuples(st.builds(SchemaDifference, _text_st, _text_st)),
    old_data_lost=_counts,
    new_data_removed=_counts,
    seeded=_counts,
)


@given(plans=st.lists(_plans, max_size=2), roundtrip=_roundtrips, trial=st.booleans())
def test_any_section_reads_back(plans: list[Plan], roundtrip: RoundTrip, trial: bool) -> None:
    section = MigrationsSection(
        "a",
        None,
        None,
        tuple(plans),
        roundtrip=roundtrip,
        code_only_trial=TrialRecord(verified=True) if trial else None,
    )
    assert MigrationsSection.from_json(json.loads(json.dumps(section.to_json()))) == section
