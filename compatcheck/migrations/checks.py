"""Static findings for the revisions on a downgrade path (pure: facts in, findings out).

Each finding's subject is the revision id; evidence names ``table`` / ``table.column`` so that a
person knows what to look at and a waiver can be narrow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from compatcheck.migrations import static as s
from compatcheck.migrations.graph import DowngradePath, History
from compatcheck.model import Finding

#: ``old-code-incompatible`` reasons, in the order messages list them (DESIGN.md).
REASONS = (
    "table-dropped",
    "column-dropped",
    "table-renamed",
    "column-renamed",
    "not-null-without-default",
    "type-changed",
)


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
        elif op.op in (s.DROP_COLUMN, s.UPDATE_ROWS) and op.table:
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


def leftovers(upgrade: s.FunctionInfo, downgrade: s.FunctionInfo) -> dict[str, list[str]]:
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


def _old_code_changes(
    upgrade: s.FunctionInfo, created_tables: set[str], created_columns: set[tuple[str, str]]
) -> list[dict[str, str]]:
    """Changes of the upgrade that OLD's code (which knows OLD's schema) can trip over."""
    changes: list[dict[str, str]] = []

    def existed(table: str | None, column: str | None = None) -> bool:
        if table is None or table in created_tables:
            return False
        return column is None or (table, column) not in created_columns

    for op in upgrade.ops:
        if op.op == s.DROP_TABLE and existed(op.table):
            changes.append({"reason": "table-dropped", "table": str(op.table)})
        elif op.op == s.DROP_COLUMN and existed(op.table, op.column):
            changes.append({"reason": "column-dropped", "column": _col(op)})
        elif op.op == s.RENAME_TABLE and existed(op.table):
            changes.append(
                {"reason": "table-renamed", "table": str(op.table), "new_name": str(op.name)}
            )
        elif op.op == s.RENAME_COLUMN and existed(op.table, op.column):
            changes.append(
                {
                    "reason": "column-renamed",
                    "column": _col(op),
                    "new_name": f"{op.table}.{op.name}",
                }
            )
        elif (
            op.op == s.ADD_COLUMN
            and op.nullable is False
            and not op.server_default
            and existed(op.table)
        ):
            changes.append({"reason": "not-null-without-default", "column": _col(op)})
        elif (
            op.op == s.ALTER_NULLABLE
            and op.nullable is False
            and not op.server_default
            and existed(op.table)
        ):
            # Also when the column is new: OLD's inserts do not name it at all.
            changes.append({"reason": "not-null-without-default", "column": _col(op)})
        elif op.op == s.ALTER_TYPE and existed(op.table, op.column):
            changes.append({"reason": "type-changed", "column": _col(op)})
    return changes


def static_findings(history: History, path: DowngradePath) -> list[Finding]:
    """Per revision on the path: missing/raising/destructive/incomplete downgrades, destructive
    upgrades, changes OLD's code cannot live with, and non-transactional work."""
    findings: list[Finding] = []
    created_tables: set[str] = set()
    created_columns: set[tuple[str, str]] = set()
    # Walk in upgrade order so "existed in OLD" means: not created by an earlier revision here.
    for rev_id in reversed(path.revisions):
        rev = history.revisions[rev_id]
        name = rev.path.name
        where: dict[str, Any] = {"file": name, "path": str(rev.path)}
        up = rev.upgrade or s.FunctionInfo(empty=True, raises=False, ops=())
        down = rev.downgrade
        # A merge point or a no-op revision (empty upgrade) needs no downgrade either.
        if (down is None or down.empty) and not up.empty:
            what = (
                "has no `downgrade()`" if down is None else "has a `downgrade()` that does nothing"
            )
            findings.append(
                Finding(
                    "migrations/downgrade-missing",
                    rev_id,
                    f"Revision `{rev_id}` {what}, so a downgrade cannot undo it.",
                    where,
                )
            )
        elif down is not None and down.raises:
            findings.append(
                Finding(
                    "migrations/downgrade-not-implemented",
                    rev_id,
                    f"Revision `{rev_id}` has a `downgrade()` that always raises.",
                    {**where, "line": down.line},
                )
            )
        elif down is not None and not down.empty:
            lost = _destroyed(down.ops)
            if lost["tables"] or lost["columns"]:
                findings.append(
                    Finding(
                        "migrations/downgrade-destructive",
                        rev_id,
                        f"The downgrade of `{rev_id}` removes or overwrites data: "
                        f"{_ticks(lost['tables'] + lost['columns'])}.",
                        {**where, **lost},
                    )
                )
            left = leftovers(up, down)
            if left:
                flat = [x for v in left.values() for x in v]
                findings.append(
                    Finding(
                        "migrations/downgrade-incomplete",
                        rev_id,
                        f"The downgrade of `{rev_id}` leaves what its upgrade added: "
                        f"{_ticks(flat)}.",
                        {**where, **left},
                    )
                )
        destroyed = _destroyed(o for o in up.ops if o.op != s.UPDATE_ROWS)
        if destroyed["tables"] or destroyed["columns"]:
            findings.append(
                Finding(
                    "migrations/upgrade-destructive",
                    rev_id,
                    f"The upgrade of `{rev_id}` already destroyed "
                    f"{_ticks(destroyed['tables'] + destroyed['columns'])}; a downgrade restores "
                    "them empty at best.",
                    {**where, **destroyed},
                )
            )
        changes = _old_code_changes(up, created_tables, created_columns)
        if changes:
            reasons = [r for r in REASONS if any(c["reason"] == r for c in changes)]
            objects = [c.get("column") or c.get("table", "") for c in changes]
            findings.append(
                Finding(
                    "migrations/old-code-incompatible",
                    rev_id,
                    f"OLD's code cannot run on the schema after `{rev_id}`: "
                    + "; ".join(
                        f"{c['reason']} `{c.get('column') or c.get('table')}`" for c in changes
                    )
                    + ".",
                    {
                        **where,
                        "reason": reasons[0],
                        "reasons": reasons,
                        "objects": objects,
                        "changes": changes,
                    },
                )
            )
        nontx: list[dict[str, Any]] = []
        for fn_name, fn in (("upgrade", up), ("downgrade", down)):
            if fn is None:
                continue
            nontx += [
                {"function": fn_name, "statement": o.source, "line": o.line}
                for o in fn.ops
                if o.op == s.NON_TRANSACTIONAL
            ]
        if nontx:
            fns = sorted({str(n["function"]) for n in nontx})
            findings.append(
                Finding(
                    "migrations/non-transactional",
                    rev_id,
                    f"Revision `{rev_id}` runs work outside a transaction in "
                    f"{' and '.join(f'`{f}()`' for f in fns)}: a failure leaves the database "
                    "half-migrated.",
                    {**where, "statements": nontx},
                )
            )
        for op in up.ops:
            if op.op == s.CREATE_TABLE and op.table:
                created_tables.add(op.table)
            elif op.op == s.ADD_COLUMN and op.table and op.column:
                created_columns.add((op.table, op.column))
            elif op.op == s.RENAME_TABLE and op.name:
                created_tables.add(op.name)
            elif op.op == s.RENAME_COLUMN and op.table and op.name:
                created_columns.add((op.table, op.name))
    return findings


def path_touches(history: History, revisions: Iterable[str]) -> dict[str, dict[str, set[str]]]:
    """Per revision, the tables, columns and named objects its upgrade/downgrade mention.

    Used to attribute what the round trip observes (a leftover enum, a lost column) to the
    revision whose code touches it.
    """
    out: dict[str, dict[str, set[str]]] = {}
    for rev_id in revisions:
        rev = history.revisions[rev_id]
        touched: dict[str, set[str]] = {"up": set(), "down": set()}
        for key, fn in (("up", rev.upgrade), ("down", rev.downgrade)):
            if fn is None:
                continue
            for op in fn.ops:
                for ident in (op.table, op.name, f"{op.table}.{op.column}" if op.column else None):
                    if ident:
                        touched[key].add(ident)
        out[rev_id] = touched
    return out


def rename_targets(history: History, path: DowngradePath) -> frozenset[str]:
    """New names (``table``, ``table.column``) that the path's upgrades rename things to."""
    out: set[str] = set()
    for rev_id in path.revisions:
        up = history.revisions[rev_id].upgrade
        for op in up.ops if up else ():
            if op.op == s.RENAME_TABLE and op.name:
                out.add(op.name)
            elif op.op == s.RENAME_COLUMN and op.table and op.name:
                out.add(f"{op.table}.{op.name}")
    return frozenset(out)
