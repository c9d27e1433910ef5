"""Which downgrade will fail, predicted from the ops alone (pure: no database).

The steps along a path are replayed in the order they run, upgrades and downgrades alike; what
each creates, drops and renames is remembered. An upgrade has run on real databases, so it only
teaches; a downgrade is judged: it fails when it drops, renames or changes a table, column,
index, constraint or enum type that does not exist at that point, creates or adds one that
already exists (sematic's down re-adding a column its up never removed), or drops a table that
another table still references by foreign key. Only what the path itself showed counts: an
object it never mentioned may be in the schema before it, so nothing is predicted about it.
``IF EXISTS`` / ``IF NOT EXISTS`` (``Op.guarded``) never fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from compatcheck.migrations import steps as s
from compatcheck.migrations.steps import Op

#: The direction of a step that is judged; every other one (``upgrade``) only teaches.
DOWNGRADE = "downgrade"

#: A failure: the step, the op that fails, why (one line).
Failure = tuple[str, Op, str]


@dataclass
class _Fact:
    """Whether an object exists after some step, and which step made it so (for the reason)."""

    present: bool
    step: str
    direction: str

    def by(self) -> str:
        verb = "created" if self.present else "removed"
        return f"{verb} by the {self.direction} of `{self.step}`"


@dataclass
class _State:
    """What the replay knows; an object not in here is unknown (maybe in the base schema)."""

    tables: dict[str, _Fact] = field(default_factory=dict)
    columns: dict[tuple[str, str], _Fact] = field(default_factory=dict)
    #: Indexes, constraints and enum types by (kind, table, name); table "" for enum types.
    named: dict[tuple[str, str, str], _Fact] = field(default_factory=dict)
    #: Table → what declares a foreign key (``""`` the CREATE, ``column:c``, ``constraint:n``)
    #: → the tables it points at.
    references: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def find(self, kind: str, table: str, name: str) -> tuple[str, str, str] | None:
        """The key of a named object; without a table (PostgreSQL's ``DROP INDEX ix``), the one
        object of that kind and name on any table, if there is exactly one."""
        if table or kind == "enum type":
            return (kind, table, name)
        found = [k for k in self.named if k[0] == kind and k[2] == name]
        return found[0] if len(found) == 1 else None

    def rename(self, table: str, new: str) -> None:
        """Everything known about ``table`` now belongs to ``new``."""
        for (t, c), fact in list(self.columns.items()):
            if t == table:
                self.columns[(new, c)] = fact
                del self.columns[(t, c)]
        for (kind, t, n), fact in list(self.named.items()):
            if t == table:
                self.named[(kind, new, n)] = fact
                del self.named[(kind, t, n)]
        self.references[new] = self.references.pop(table, {})
        for sources in self.references.values():
            for refs in sources.values():
                if table in refs:
                    refs.discard(table)
                    refs.add(new)

    def forget(self, table: str, gone: _Fact | None) -> None:
        """``table`` was dropped (``gone``) or defined anew (None): its columns are unknown,
        its indexes and constraints went with it."""
        for column in [k for k in self.columns if k[0] == table]:
            del self.columns[column]
        for key in [k for k in self.named if k[1] == table]:
            if gone is None:
                del self.named[key]
            else:
                self.named[key] = gone
        self.references.pop(table, None)

    def referencing(self, table: str) -> str | None:
        """A live table other than ``table`` whose foreign keys point at ``table``."""
        for other, sources in sorted(self.references.items()):
            live = self.tables.get(other)
            pointing = any(table in refs for refs in sources.values())
            if other != table and pointing and (live is None or live.present):
                return other
        return None


_KIND = {
    s.CREATE_INDEX: "index",
    s.DROP_INDEX: "index",
    s.CREATE_CONSTRAINT: "constraint",
    s.DROP_CONSTRAINT: "constraint",
    s.CREATE_ENUM: "enum type",
    s.DROP_ENUM: "enum type",
}
_CREATES = frozenset({s.CREATE_INDEX, s.CREATE_CONSTRAINT, s.CREATE_ENUM})
_COLUMN_OPS = frozenset(
    {
        s.ADD_COLUMN,
        s.DROP_COLUMN,
        s.RENAME_COLUMN,
        s.ALTER_TYPE,
        s.WIDEN_TYPE,
        s.ALTER_NULLABLE,
        s.UPDATE_ROWS,
    }
)


def failing_downgrades(
    path: Sequence[tuple[str, str, Iterable[Op]]], *, foreign_keys: bool = True
) -> list[Failure]:
    """Per ``(step id, direction, ops)`` in the order they run, the downgrade ops that fail.

    ``foreign_keys`` is whether the engine refuses to drop a referenced table (PostgreSQL,
    MySQL/MariaDB with InnoDB: yes; SQLite with its default ``PRAGMA foreign_keys=OFF``: no).
    """
    state = _State()
    out: list[Failure] = []
    for step, direction, ops in path:
        now, gone = _Fact(True, step, direction), _Fact(False, step, direction)
        for op in ops:
            reason = _replay(state, op, now, gone, foreign_keys)
            if reason and direction == DOWNGRADE and not op.guarded:
                out.append((step, op, reason))
    return out


def _replay(state: _State, op: Op, now: _Fact, gone: _Fact, foreign_keys: bool) -> str | None:
    """Apply one op to what is known; the reason it fails, if it does."""
    if op.op == s.REBUILD_TABLE:
        table = op.table or ""
        state.tables[table] = now
        state.forget(table, None)
        state.references[table] = {"": set(op.references)}
        if op.name:  # the table that took its place is gone under its old name
            state.tables[op.name] = gone
            state.forget(op.name, None)
        return None
    if op.op in (s.CREATE_TABLE, s.DROP_TABLE, s.RENAME_TABLE, s.DELETE_ROWS):
        return _table_op(state, op, now, gone, foreign_keys)
    if op.op in _KIND:
        return _named_op(state, op, now, gone)
    if op.op in _COLUMN_OPS:
        return _column_op(state, op, now, gone)
    return None


def _missing_table(state: _State, table: str) -> str | None:
    known = state.tables.get(table)
    if table and known and not known.present:
        return f"table `{table}` does not exist ({known.by()})"
    return None


def _table_op(state: _State, op: Op, now: _Fact, gone: _Fact, foreign_keys: bool) -> str | None:
    table = op.table or ""
    known = state.tables.get(table)
    if op.op == s.DELETE_ROWS:
        return _missing_table(state, table)
    if op.op == s.CREATE_TABLE:
        state.tables[table] = now
        state.forget(table, None)
        state.references[table] = {"": set(op.references)}
        if known and known.present:
            return f"table `{table}` already exists ({known.by()})"
        return None
    reason = _missing_table(state, table)
    if op.op == s.DROP_TABLE:
        other = state.referencing(table) if foreign_keys and reason is None else None
        if other:
            reason = f"table `{table}` is still referenced by a foreign key of `{other}`"
        state.tables[table] = gone
        state.forget(table, gone)
        return reason
    new = op.name or ""
    target = state.tables.get(new)
    if reason is None and target and target.present:
        reason = f"table `{new}` already exists ({target.by()})"
    state.tables[table] = gone
    state.tables[new] = now
    state.rename(table, new)
    return reason


def _named_op(state: _State, op: Op, now: _Fact, gone: _Fact) -> str | None:
    """An index, constraint or enum type created or dropped."""
    if not op.name:
        return None
    kind, table = _KIND[op.op], op.table or ""
    key = state.find(kind, "" if kind == "enum type" else table, op.name)
    if key is None:
        return None
    known = state.named.get(key)
    creates = op.op in _CREATES
    state.named[key] = now if creates else gone
    if creates and known and known.present:
        return f"{kind} `{op.name}` already exists ({known.by()})"
    if not creates and known and not known.present:
        return f"{kind} `{op.name}` does not exist ({known.by()})"
    if op.op == s.CREATE_CONSTRAINT and op.references:
        state.references.setdefault(table, {})[f"constraint:{op.name}"] = set(op.references)
    elif op.op == s.DROP_CONSTRAINT:
        state.references.get(table, {}).pop(f"constraint:{op.name}", None)
    return _missing_table(state, table) if creates else None


def _column_op(state: _State, op: Op, now: _Fact, gone: _Fact) -> str | None:
    table, column = op.table or "", op.column or ""
    reason = _missing_table(state, table)
    if not column:
        return reason
    known = state.columns.get((table, column))
    sources = state.references.setdefault(table, {})
    if op.op == s.ADD_COLUMN:
        state.columns[(table, column)] = now
        sources[f"column:{column}"] = set(op.references)
        if reason is None and known and known.present:
            reason = f"column `{table}.{column}` already exists ({known.by()})"
        return reason
    if reason is None and known and not known.present:
        reason = f"column `{table}.{column}` does not exist ({known.by()})"
    if op.op == s.DROP_COLUMN:
        state.columns[(table, column)] = gone
        sources.pop(f"column:{column}", None)
    elif op.op == s.RENAME_COLUMN and op.name:
        target = state.columns.get((table, op.name))
        if reason is None and target and target.present:
            reason = f"column `{table}.{op.name}` already exists ({target.by()})"
        state.columns[(table, column)] = gone
        state.columns[(table, op.name)] = now
        sources[f"column:{op.name}"] = sources.pop(f"column:{column}", set())
    return reason
