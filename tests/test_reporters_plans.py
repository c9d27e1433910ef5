"""Plans tried for real say so in the human formats; inferred ones stay plain."""

from __future__ import annotations

from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.reporters import render
from compatcheck.snapshot import Snapshot


def _report(plan: dict[str, object]) -> object:
    section = {"old_head": "a", "new_head": "b", "downgrade_path": ["b"], "plans": [plan]}
    return evaluate(Snapshot(label="v1"), Snapshot(label="v2"), EvaluateOptions(migrations=section))


def test_verified_code_only_plan_is_marked_in_text_and_markdown() -> None:
    report = _report({"name": "code-only", "safe": False, "reasons": ["x"], "verified": True})
    text = render(report, "text")  # type: ignore[arg-type]
    assert "plan code-only: UNSAFE (verified: OLD ran on NEW's schema)" in text
    md = render(report, "markdown")  # type: ignore[arg-type]
    assert "| no (verified: OLD ran on NEW's schema) |" in md


def test_unverified_plan_says_why_and_inferred_plan_says_nothing() -> None:
    report = _report(
        {"name": "code-only", "safe": True, "reasons": [], "verified": False,
         "verification": "OLD never became ready on its own database"}
    )  # fmt: skip
    assert "(not verified: OLD never became ready on its own database)" in render(report, "text")  # type: ignore[arg-type]
    plain = _report({"name": "downgrade", "safe": True, "reasons": []})
    assert "plan downgrade: safe\n" in render(plain, "text")  # type: ignore[arg-type]


def test_downgrade_advice_is_the_command_to_type() -> None:
    """The advice names the Alembic command and the revisions it undoes, in order: the path
    alone (`c → b`) reads as "go to b" when the database ends at `a`."""
    section = {
        "old_head": "a",
        "new_head": "c",
        "downgrade_path": ["c", "b"],
        "plans": [
            {"name": "code-only", "safe": False, "reasons": ["x"]},
            {"name": "downgrade", "safe": True, "reasons": []},
        ],
    }
    report = evaluate(
        Snapshot(label="v1"), Snapshot(label="v2"), EvaluateOptions(migrations=section)
    )
    advice = (
        "→ follow the downgrade plan: run `alembic downgrade a` (undoes `c`, then `b`), "
        "then deploy the OLD release"
    )
    assert advice in render(report, "text")
    # Markdown shows the backticks literally (escaped inside its bold advice line).
    md = render(report, "markdown")
    assert "run \\`alembic downgrade a\\` (undoes \\`c\\`, then \\`b\\`)" in md
    base = evaluate(
        Snapshot(label="v1"),
        Snapshot(label="v2"),
        EvaluateOptions(migrations={**section, "old_head": None}),
    )
    assert "run `alembic downgrade base` (undoes `c`, then `b`)" in render(base, "text")


def test_advice_follows_the_recommendation_the_migrations_section_made() -> None:
    section = {
        "old_head": "a",
        "new_head": "b",
        "downgrade_path": ["b"],
        "plans": [
            {"name": "code-only", "safe": True, "reasons": []},
            {"name": "downgrade", "safe": True, "reasons": []},
        ],
        "recommended": "downgrade",
    }
    report = evaluate(
        Snapshot(label="v1"), Snapshot(label="v2"), EvaluateOptions(migrations=section)
    )
    text = render(report, "text")
    assert "→ follow the downgrade plan: run `alembic downgrade a` (undoes `b`)" in text
    section["recommended"] = None
    report = evaluate(
        Snapshot(label="v1"), Snapshot(label="v2"), EvaluateOptions(migrations=section)
    )
    assert "no rollback plan is safe" in render(report, "text")
