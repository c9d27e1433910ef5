"""A step with statements the SQL reader could not read or judge is judged unknown, not guessed.

A down section written as a PostgreSQL ``DO`` block may well drop the column its up added; read
statically nothing says so. The checks must then not claim the column is left behind
(``downgrade-incomplete``) but name the statement they could not read
(``migrations/statement-unread``: a warning, the step's static reading is partial).
"""

from __future__ import annotations

from pathlib import Path

from compatcheck.migrations.checks import static_findings
from compatcheck.migrations.graph import History, downgrade_path
from compatcheck.migrations.sources.sqlfiles import LinearOrder
from compatcheck.migrations.sqlstatic import Reader
from compatcheck.migrations.steps import Step
from tests.test_migrations_core import WORDING

UP = "ALTER TABLE users ADD COLUMN nick text"
DO_BLOCK = "DO $$ BEGIN ALTER TABLE users DROP COLUMN nick; END $$"


def _history(tmp: Path, down: str) -> History:
    reader = Reader("postgresql")
    first, first_down = reader.step([("CREATE TABLE users (id int, name text)", 1)], [])
    up, down_code = reader.step([(UP, 2)], [(down, 5)])
    steps = {
        "001": Step("001", tmp / "001.sql", (), up=first, down=first_down),
        "002": Step("002", tmp / "002.sql", ("001",), up=up, down=down_code),
    }
    return History(tmp, steps, ("002",), LinearOrder(["001", "002"]), WORDING)


def _found(history: History) -> dict[str, dict[str, object]]:
    path = downgrade_path(history, "002", "001")
    assert path is not None
    return {f.kind: f.evidence for f in static_findings(history, path, "postgresql")}


def test_a_down_not_read_is_named_not_guessed(tmp_path: Path) -> None:
    found = _found(_history(tmp_path, DO_BLOCK))
    assert set(found) == {"migrations/statement-unread"}
    unread = found["migrations/statement-unread"]
    assert (unread["line"], unread["statement"], unread["static_reading"]) == (
        5,
        DO_BLOCK,
        "partial",
    )
    assert unread["statements"] == [
        {
            "function": "downgrade",
            "line": 5,
            "statement": DO_BLOCK,
            "reason": "DO statement the SQL parser does not read",
        }
    ]


def test_a_down_read_in_full_is_judged(tmp_path: Path) -> None:
    found = _found(_history(tmp_path, "UPDATE users SET name = 'x'"))
    assert set(found) == {"migrations/downgrade-destructive", "migrations/downgrade-incomplete"}
    assert found["migrations/downgrade-incomplete"]["columns"] == ["users.nick"]
