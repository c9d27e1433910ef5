"""Static findings for the steps on a downgrade path (pure: facts in, findings out).

Each finding's subject is the revision id; evidence names ``table`` / ``table.column`` so that a
person knows what to look at and a waiver can be narrow. The checks read only
:mod:`~compatcheck.migrations.steps` values and speak the framework's words through its
:class:`~compatcheck.migrations.steps.Wording`: they never know which framework wrote the steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compatcheck.checks.migrations import (
    DOWNGRADE_DESTRUCTIVE,
    DOWNGRADE_INCOMPLETE,
    DOWNGRADE_MISSING,
    DOWNGRADE_NOT_IMPLEMENTED,
    DOWNGRADE_WILL_FAIL,
    NON_TRANSACTIONAL,
    OLD_CODE_INCOMPATIBLE,
    STATEMENT_UNREAD,
    UPGRADE_DESTRUCTIVE,
)
from compatcheck.migrations import steps as s
from compatcheck.migrations.graph import DowngradePath, History
from compatcheck.migrations.simulate import failing_downgrades
from compatcheck.model import Finding

#: ``old-code-incompatible`` reasons (public ids), in the order messages list them.
REASONS = (
    "table-dropped",
    "column-dropped",
    "table-renamed",
    "column-renamed",
    "not-null-without-default",
    "type-changed",
)

_NOTHING = s.Code(empty=True, raises=False, ops=())


def _col(op: s.Op) -> str:
    return f"{op.table}.{op.column}" if op.column else str(op.table)


def _ticks(items: Iterable[str]) -> str:
    return ", ".join(f"`{i}`" for i in items)


def _destroyed(ops: Iterable[s.Op]) -> dict[str, list[str]]:
    """Tables and columns whose data the ops remove or overwrite, plus the statements."""
    tables: list[str] = []
    columns: list[str] = []
    statements: list[str] = []
    for op in ops:
        if (op.op == s.DROP_TABLE and op.table) or (op.op == s.DELETE_ROWS and op.table):
            tables.append(str(op.table))
        elif op.op in (s.DROP_COLUMN, s.UPDATE_ROWS, s.CLEAR_VALUES) and op.table:
            if op.column:
                columns.append(_col(op))
            else:
                tables.append(str(op.table))
        else:
            continue
        statements.append(op.source)
    return {
        "tables": sorted(set(tables)),
        "columns": sorted(set(columns)),
        "statements": list(dict.fromkeys(statements)),
    }


def leftovers(upgrade: s.Code, downgrade: s.Code) -> dict[str, list[str]]:
    """What the upgrade adds that the downgrade does not take away again.

    A dropped table takes its columns, indexes and constraints with it; a dropped column takes the
    indexes and constraints on it. Trap: dropping a table or column does NOT drop a PostgreSQL enum
    type created for it — the classic leftover that breaks the next upgrade.
    """
    d_tables = {o.table for o in downgrade.ops if o.op == s.DROP_TABLE}
    d_columns = {(o.table, o.column) for o in downgrade.ops if o.op == s.DROP_COLUMN}
    d_indexes = {o.name for o in downgrade.ops if o.op == s.DROP_INDEX}
    d_constraints = {o.name for o in downgrade.ops if o.op == s.DROP_CONSTRAINT}
    d_enums = {o.name for o in downgrade.ops if o.op == s.DROP_ENUM}
    d_renames = {
        (o.op, o.table, o.column, o.name)
        for o in downgrade.ops
        if o.op in (s.RENAME_TABLE, s.RENAME_COLUMN)
    }
    created_tables = {o.table for o in upgrade.ops if o.op == s.CREATE_TABLE}
    out: dict[str, list[str]] = {
        "tables": [],
        "columns": [],
        "indexes": [],
        "constraints": [],
        "enum_types": [],
        "renames": [],
    }

    def gone(table: str | None, columns: tuple[str, ...] = ()) -> bool:
        if table in d_tables:
            return True
        return bool(columns) and all((table, c) in d_columns for c in columns)

    for op in upgrade.ops:
        if op.op == s.CREATE_TABLE and op.table and op.table not in d_tables:
            out["tables"].append(op.table)
        elif (
            op.op == s.ADD_COLUMN
            and op.table
            and op.column
            and op.table not in created_tables
            and not gone(op.table, (op.column,))
        ):
            out["columns"].append(_col(op))
        elif op.op == s.CREATE_INDEX and op.name and op.table not in created_tables:
            if op.name not in d_indexes and not gone(op.table, op.columns):
                out["indexes"].append(op.name)
        elif op.op == s.CREATE_CONSTRAINT and op.name and op.table not in created_tables:
            if op.name not in d_constraints and not gone(op.table, op.columns):
                out["constraints"].append(op.name)
        elif op.op == s.CREATE_ENUM and op.name and op.name not in d_enums:
            out["enum_types"].append(op.name)
        elif op.op == s.RENAME_TABLE and op.table and op.name:
            back: tuple[str, str | None, str | None, str | None]
            back = (s.RENAME_TABLE, op.name, None, op.table)
            if back not in d_renames:
                out["renames"].append(f"{op.table} -> {op.name}")
        elif op.op == s.RENAME_COLUMN and op.table and op.column and op.name:
            back = (s.RENAME_COLUMN, op.table, op.name, op.column)
            if back not in d_renames and not gone(op.table, (op.name,)):
                out["renames"].append(f"{op.table}.{op.column} -> {op.table}.{op.name}")
    return {k: sorted(set(v)) for k, v in out.items() if v}


@dataclass
class _Created:
    """Tables and columns the path's earlier upgrades created: OLD's code does not know them."""

    tables: set[str] = field(default_factory=set)
    columns: set[tuple[str, str]] = field(default_factory=set)

    def existed(self, table: str | None, column: str | None = None) -> bool:
        """True when OLD's schema had it (nothing on the path created it)."""
        if table is None or table in self.tables:
            return False
        return column is None or (table, column) not in self.columns

    def record(self, upgrade: s.Code) -> None:
        for op in upgrade.ops:
            if op.op == s.CREATE_TABLE and op.table:
                self.tables.add(op.table)
            elif op.op == s.ADD_COLUMN and op.table and op.column:
                self.columns.add((op.table, op.column))
            elif op.op == s.RENAME_TABLE and op.name:
                self.tables.add(op.name)
            elif op.op == s.RENAME_COLUMN and op.table and op.name:
                self.columns.add((op.table, op.name))


def _not_null(op: s.Op, created: _Created) -> dict[str, str] | None:
    # ALTER ... SET NOT NULL counts also when the column is new: OLD's inserts do not name it.
    if op.nullable is False and not op.server_default and created.existed(op.table):
        return {"reason": "not-null-without-default", "column": _col(op)}
    return None


def _table_dropped(op: s.Op, created: _Created) -> dict[str, str] | None:
    if created.existed(op.table):
        return {"reason": "table-dropped", "table": str(op.table)}
    return None


def _column_dropped(op: s.Op, created: _Created) -> dict[str, str] | None:
    if created.existed(op.table, op.column):
        return {"reason": "column-dropped", "column": _col(op)}
    return None


def _table_renamed(op: s.Op, created: _Created) -> dict[str, str] | None:
    if created.existed(op.table):
        return {"reason": "table-renamed", "table": str(op.table), "new_name": str(op.name)}
    return None


def _column_renamed(op: s.Op, created: _Created) -> dict[str, str] | None:
    if created.existed(op.table, op.column):
        new_name = f"{op.table}.{op.name}"
        return {"reason": "column-renamed", "column": _col(op), "new_name": new_name}
    return None


def _type_changed(op: s.Op, created: _Created) -> dict[str, str] | None:
    if created.existed(op.table, op.column):
        return {"reason": "type-changed", "column": _col(op)}
    return None


#: Per operation: the change OLD's code (which knows OLD's schema) can trip over, if any.
OLD_CODE_CHANGES: dict[str, Callable[[s.Op, _Created], dict[str, str] | None]] = {
    s.DROP_TABLE: _table_dropped,
    s.DROP_COLUMN: _column_dropped,
    s.RENAME_TABLE: _table_renamed,
    s.RENAME_COLUMN: _column_renamed,
    s.ADD_COLUMN: _not_null,
    s.ALTER_NULLABLE: _not_null,
    s.ALTER_TYPE: _type_changed,
}


@dataclass(frozen=True)
class _Revision:
    """One step on the path, as every per-step check sees it."""

    id: str
    up: s.Code
    down: s.Code | None
    wording: s.Wording
    created: _Created
    #: Evidence every finding of this step carries: which file.
    where: dict[str, Any]


def _file(path: Path) -> dict[str, Any]:
    return {"file": path.name, "path": str(path)}


def _downgrade(r: _Revision) -> list[Finding]:
    """Missing, always raising, or present: then destructive and/or incomplete."""
    w, down = r.wording, r.down
    # A merge point or a no-op revision (empty upgrade) needs no downgrade either, but it must
    # have one: without it the framework's downgrade stops there (Alembic: AttributeError).
    if down is None and r.up.empty:
        message = (
            f"{w.step} `{r.id}` has no {w.down}: its upgrade does nothing, but a downgrade "
            "cannot pass it."
        )
        return [Finding(DOWNGRADE_MISSING, r.id, message, r.where)]
    if (down is None or down.empty) and not r.up.empty:
        what = f"has no {w.down}" if down is None else f"has a {w.down} that does nothing"
        message = f"{w.step} `{r.id}` {what}, so a downgrade cannot undo it."
        return [Finding(DOWNGRADE_MISSING, r.id, message, r.where)]
    if down is None or down.empty:
        return []
    if down.raises:
        message = f"{w.step} `{r.id}` has a {w.down} that always raises."
        evidence = {**r.where, "line": down.line}
        return [Finding(DOWNGRADE_NOT_IMPLEMENTED, r.id, message, evidence)]
    out: list[Finding] = []
    complete = not down.unknown and not r.up.unknown
    lost = _destroyed(down.ops)
    if lost["tables"] or lost["columns"]:
        message = (
            f"The downgrade of `{r.id}` removes or overwrites data: "
            f"{_ticks(lost['tables'] + lost['columns'])}."
        )
        out.append(Finding(DOWNGRADE_DESTRUCTIVE, r.id, message, {**r.where, **lost}))
    # What the downgrade leaves behind is judged only when both directions are fully known:
    # a statement not read may be the one that undoes it (``_unknown_statements`` names it).
    left = leftovers(r.up, down) if complete else {}
    if left:
        flat = [x for v in left.values() for x in v]
        message = f"The downgrade of `{r.id}` leaves what its upgrade added: {_ticks(flat)}."
        out.append(Finding(DOWNGRADE_INCOMPLETE, r.id, message, {**r.where, **left}))
    return out


def _upgrade_destructive(r: _Revision) -> list[Finding]:
    destroyed = _destroyed(o for o in r.up.ops if o.op != s.UPDATE_ROWS)
    if not (destroyed["tables"] or destroyed["columns"]):
        return []
    message = (
        f"The upgrade of `{r.id}` already destroyed "
        f"{_ticks(destroyed['tables'] + destroyed['columns'])}; a downgrade restores "
        "them empty at best."
    )
    return [Finding(UPGRADE_DESTRUCTIVE, r.id, message, {**r.where, **destroyed})]


def _old_code_incompatible(r: _Revision) -> list[Finding]:
    changes: list[dict[str, Any]] = []
    # A column renamed in this step is already a change OLD's code trips over (it knows only
    # the old name); its NOT NULL under the new name is no second one (a SQLite rebuild that
    # renames a column and defines it NOT NULL).
    renamed = {(o.table, o.name) for o in r.up.ops if o.op == s.RENAME_COLUMN}
    for op in r.up.ops:
        if op.op in (s.ADD_COLUMN, s.ALTER_NULLABLE) and (op.table, op.column) in renamed:
            continue
        change = OLD_CODE_CHANGES[op.op](op, r.created) if op.op in OLD_CODE_CHANGES else None
        if change and change not in changes:  # both branches of a dialect test drop it
            changes.append(change)
    if not changes:
        return []
    reasons = [x for x in REASONS if any(c["reason"] == x for c in changes)]
    objects = [c.get("column") or c.get("table", "") for c in changes]
    listed = "; ".join(f"{c['reason']} `{c.get('column') or c.get('table')}`" for c in changes)
    message = f"OLD's code cannot run on the schema after `{r.id}`: {listed}."
    evidence = {
        **r.where,
        "reason": reasons[0],
        "reasons": reasons,
        "objects": objects,
        "changes": changes,
    }
    return [Finding(OLD_CODE_INCOMPATIBLE, r.id, message, evidence)]


def _non_transactional(r: _Revision) -> list[Finding]:
    found: list[dict[str, Any]] = []
    for direction, code in (("upgrade", r.up), ("downgrade", r.down)):
        if code is None:
            continue
        if code.non_transactional:
            entry = {"function": direction, "statement": code.non_transactional}
            found.append({**entry, "line": code.line})
        found += [
            {"function": direction, "statement": o.source, "line": o.line}
            for o in code.ops
            if o.op == s.NON_TRANSACTIONAL
        ]
    if not found:
        return []
    where = " and ".join(r.wording.code(d) for d in sorted({str(n["function"]) for n in found}))
    message = (
        f"{r.wording.step} `{r.id}` runs work outside a transaction in {where}: a failure "
        "leaves the database half-migrated."
    )
    evidence = {**r.where, "statements": found}
    return [Finding(NON_TRANSACTIONAL, r.id, message, evidence)]


def _unknown_statements(r: _Revision) -> list[Finding]:
    """Statements the source could not read or judge (``Code.unknown``): the step's static
    reading is partial, so no ``downgrade-incomplete`` is judged from it, and each statement is
    named (``migrations/statement-unread``, a warning: the step's other checks ran, and the
    round trip, when it runs, executes the statement for real), never a silent pass."""
    found: list[dict[str, Any]] = []
    for direction, code in (("upgrade", r.up), ("downgrade", r.down)):
        for u in code.unknown if code else ():
            entry = {"function": direction, "line": u.line, "statement": u.statement}
            found.append({**entry, "reason": u.reason})
    if not found:
        return []
    first = found[0]
    code = r.up if first["function"] == "upgrade" else r.down
    where = _file(code.path) if code is not None and code.path else r.where
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    message = (
        f"{r.wording.step} `{r.id}` could not be read in full, so its static checks are "
        f"partial: {r.wording.code(first['function'])} line {first['line']}: "
        f"{first['reason']}{more}."
    )
    evidence = {
        **where,
        "line": first["line"],
        "statement": first["statement"],
        "reason": first["reason"],
        "statements": found,
        "static_reading": "partial",
    }
    return [Finding(STATEMENT_UNREAD, r.id, message, evidence)]


#: What is checked for every step on the path, each on its own.
STEP_CHECKS: tuple[Callable[[_Revision], list[Finding]], ...] = (
    _unknown_statements,
    _downgrade,
    _upgrade_destructive,
    _old_code_incompatible,
    _non_transactional,
)


def static_findings(history: History, path: DowngradePath, dialect: str) -> list[Finding]:
    """Per step on the path: missing/raising/destructive/incomplete downgrades, destructive
    upgrades, changes OLD's code cannot live with, non-transactional work, and downgrades
    predicted to fail on ``dialect`` (``sqlite``: its default ``PRAGMA foreign_keys=OFF`` drops
    a referenced table without a word; the others refuse)."""
    findings: list[Finding] = []
    created = _Created()
    # Walk in upgrade order so "existed in OLD" means: not created by an earlier revision here.
    for rev_id in reversed(path.revisions):
        step = history.steps[rev_id]
        r = _Revision(
            rev_id, step.up or _NOTHING, step.down, history.wording, created, _file(step.path)
        )
        for check in STEP_CHECKS:
            findings += check(r)
        created.record(r.up)
    return findings + predicted_failures(history, path, dialect)


_NAMED = frozenset(
    {s.CREATE_INDEX, s.DROP_INDEX, s.CREATE_CONSTRAINT, s.DROP_CONSTRAINT, s.CREATE_ENUM}
    | {s.DROP_ENUM}
)


def _once(ops: Iterable[s.Op]) -> list[s.Op]:
    """The ops of one direction, each operation on an object once: the same drop twice in one
    function is the two branches of a dialect test (``if dialect == "sqlite": batch ... else:
    op.drop_index(...)``), which the source reads one after the other, not a double drop.
    A named object is the same when its table is, or when either op does not say its table
    (``op.drop_index("ix")``); MySQL's ``ix`` on ``a`` and ``ix`` on ``b`` are two."""
    seen: set[tuple[str | None, ...]] = set()
    tables: dict[tuple[str, str | None], set[str | None]] = {}
    out: list[s.Op] = []
    for o in ops:
        if o.op in _NAMED:
            known = tables.setdefault((o.op, o.name), set())
            if known and (o.table is None or None in known or o.table in known):
                continue
            known.add(o.table)
        else:
            key = (o.op, o.table, o.column, o.name)
            if key in seen:
                continue
            seen.add(key)
        out.append(o)
    return out


def predicted_failures(history: History, path: DowngradePath, dialect: str) -> list[Finding]:
    """Downgrades on the path that will fail, from the ops alone (:mod:`.simulate`): every
    upgrade up to NEW teaches (it ran), then the path's downgrades run in order. A downgrade
    with statements not read stops the replay (what it did is not known, so nothing after it
    is predicted); one that always raises is ``downgrade-not-implemented`` already. The
    finding is ``downgrade-will-fail``: a prediction, never worded as an observed failure; where
    the round trip ran that downgrade, :func:`.willfail.reconcile` settles it. An upgrade with
    statements not read still teaches what was read, but the message names it: what it did
    unseen may have made the prediction wrong."""
    replay: list[tuple[str, str, list[s.Op]]] = []
    unread: list[str] = []
    for rev_id in reversed(list(history.order.downgrade_order(path.new))):
        up = history.steps[rev_id].up
        replay.append((rev_id, "upgrade", _once(up.ops if up else ())))
        if up is not None and up.unknown:
            unread.append(rev_id)
    for rev_id in path.revisions:
        down = history.steps[rev_id].down
        if down is not None and (down.unknown or down.raises):
            break
        replay.append((rev_id, "downgrade", _once(down.ops if down else ())))
    failing: dict[str, list[tuple[s.Op, str]]] = {}
    for rev_id, op, reason in failing_downgrades(replay, foreign_keys=dialect != "sqlite"):
        failing.setdefault(rev_id, []).append((op, reason))
    out: list[Finding] = []
    w = history.wording
    basis = "predicted from the code of the steps before it"
    if unread:
        others = f" and {len(unread) - 3} more" if len(unread) > 3 else ""
        basis += (
            f"; the upgrade of {_ticks(unread[:3])}{others} ran statements not read, which may "
            "make it wrong"
        )
    for rev_id in path.revisions:
        if rev_id not in failing:
            continue
        (op, reason), *more = failing[rev_id]
        step = history.steps[rev_id]
        down = step.down
        where = _file(down.path if down is not None and down.path else step.path)
        also = f" (and {len(more)} more)" if more else ""
        message = (
            f"The downgrade of `{rev_id}` will fail: {reason}, at {w.code('downgrade')} "
            f"({where['file']}:{op.line}): `{op.source}`{also} ({basis})."
        )
        evidence = {
            **where,
            "line": op.line,
            "statement": op.source,
            "reasons": [r for _o, r in failing[rev_id]],
            "dialect": dialect,
        }
        out.append(Finding(DOWNGRADE_WILL_FAIL, rev_id, message, evidence))
    return out


def path_touches(history: History, revisions: Iterable[str]) -> dict[str, dict[str, set[str]]]:
    """Per revision, the tables, columns and named objects its upgrade/downgrade mention.

    Used to attribute what the round trip observes (a leftover enum, a lost column) to the
    revision whose code touches it.
    """
    out: dict[str, dict[str, set[str]]] = {}
    for rev_id in revisions:
        step = history.steps[rev_id]
        touched: dict[str, set[str]] = {"up": set(), "down": set()}
        for key, code in (("up", step.up), ("down", step.down)):
            for op in code.ops if code else ():
                for ident in (op.table, op.name, f"{op.table}.{op.column}" if op.column else None):
                    if ident:
                        touched[key].add(ident)
        out[rev_id] = touched
    return out


def rename_targets(history: History, path: DowngradePath) -> frozenset[str]:
    """New names (``table``, ``table.column``) that the path's upgrades rename things to."""
    out: set[str] = set()
    for rev_id in path.revisions:
        up = history.steps[rev_id].up
        for op in up.ops if up else ():
            if op.op == s.RENAME_TABLE and op.name:
                out.add(op.name)
            elif op.op == s.RENAME_COLUMN and op.table and op.name:
                out.add(f"{op.table}.{op.name}")
    return frozenset(out)
