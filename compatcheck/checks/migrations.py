"""Migrations: whether the schema and its data survive the transition.

Every one of these needs the scratch databases and the Alembic scripts (a downgrade that fails,
rows it deletes, OLD's code against NEW's schema), so the inspection in
:mod:`compatcheck.migrations` finds them during capture and records them; this check is where
they enter the report, and the one owner of their kinds.
"""

from __future__ import annotations

from compatcheck.model import Finding
from compatcheck.rules import CheckContext, check

PATH_MISSING = "migrations/path-missing"
MULTIPLE_HEADS = "migrations/multiple-heads"
DOWNGRADE_MISSING = "migrations/downgrade-missing"
DOWNGRADE_NOT_IMPLEMENTED = "migrations/downgrade-not-implemented"
DOWNGRADE_INCOMPLETE = "migrations/downgrade-incomplete"
DOWNGRADE_DESTRUCTIVE = "migrations/downgrade-destructive"
UPGRADE_DESTRUCTIVE = "migrations/upgrade-destructive"
DATA_LOST = "migrations/data-lost"
DOWNGRADE_FAILED = "migrations/downgrade-failed"
DOWNGRADE_WILL_FAIL = "migrations/downgrade-will-fail"
ROUNDTRIP_MISMATCH = "migrations/roundtrip-mismatch"
OLD_CODE_INCOMPATIBLE = "migrations/old-code-incompatible"
NON_TRANSACTIONAL = "migrations/non-transactional"
NEW_DATA_REMOVED = "migrations/new-data-removed"
DIRTY_VERSION = "migrations/dirty-version"
STATEMENT_UNREAD = "migrations/statement-unread"
REPEATABLE_NOT_UNDONE = "migrations/repeatable-not-undone"


@check(
    PATH_MISSING,
    MULTIPLE_HEADS,
    DOWNGRADE_MISSING,
    DOWNGRADE_NOT_IMPLEMENTED,
    DOWNGRADE_INCOMPLETE,
    DOWNGRADE_DESTRUCTIVE,
    UPGRADE_DESTRUCTIVE,
    DATA_LOST,
    DOWNGRADE_FAILED,
    DOWNGRADE_WILL_FAIL,
    ROUNDTRIP_MISMATCH,
    OLD_CODE_INCOMPATIBLE,
    NON_TRANSACTIONAL,
    NEW_DATA_REMOVED,
    DIRTY_VERSION,
    STATEMENT_UNREAD,
    REPEATABLE_NOT_UNDONE,
)
def migration_problems(ctx: CheckContext) -> list[Finding]:
    """Nothing beyond what the inspection recorded (see the module docstring)."""
    return []
