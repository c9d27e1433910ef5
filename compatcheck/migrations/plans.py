"""The two ways to roll back, each judged from the findings: keep NEW's schema, or downgrade.

*code-only* keeps NEW's schema and deploys OLD's code on it: safe when nothing OLD's code relies
on was dropped, renamed, retyped or made NOT NULL without a default.
*downgrade* runs the downgrade path: safe when the path exists, every downgrade is implemented and
runs, undoes what its upgrade did, and loses no data OLD wrote. Losing what NEW wrote is the
nature of a downgrade: reported (``downgrade-destructive``), not blocking.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from compatcheck.model import Finding

#: Finding kinds that make each plan unsafe.
BLOCKERS: dict[str, frozenset[str]] = {
    "code-only": frozenset({"migrations/path-missing", "migrations/old-code-incompatible"}),
    "downgrade": frozenset(
        {
            "migrations/path-missing",
            "migrations/downgrade-missing",
            "migrations/downgrade-not-implemented",
            "migrations/downgrade-failed",
            "migrations/downgrade-incomplete",
            "migrations/upgrade-destructive",
            "migrations/roundtrip-mismatch",
            "migrations/data-lost",
        }
    ),
}

#: Preference when both plans are safe: keeping the schema touches no data.
ORDER = ("code-only", "downgrade")


def judge_plans(findings: Iterable[Finding]) -> tuple[list[dict[str, Any]], str | None]:
    """``[{"name", "safe", "reasons"}]`` for both plans, and the plan to follow (or None)."""
    items = sorted(findings, key=lambda f: (f.kind, f.subject))
    plans: list[dict[str, Any]] = []
    for name in ORDER:
        reasons = [f"{f.kind} {f.subject}: {f.message}" for f in items if f.kind in BLOCKERS[name]]
        plans.append({"name": name, "safe": not reasons, "reasons": reasons})
    recommended = next((p["name"] for p in plans if p["safe"]), None)
    return plans, recommended
