"""The framework-neutral model of a migration history: steps, what each direction does, wording.

A source (:mod:`compatcheck.migrations.sources`) turns a folder into :class:`Step` values; every
part of the core (graph, static checks, round trip, plans) reads these and nothing else, so it
never knows which framework wrote the folder. An :class:`Op` is one schema or data operation a
step's up or down performs, read without running it: the static facts every check works from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Operation names an ``Op`` can carry.
CREATE_TABLE = "create_table"
DROP_TABLE = "drop_table"
RENAME_TABLE = "rename_table"
#: ``table`` defined anew in place of the table of that name (SQLite's rebuild: create, copy,
#: drop, rename; or a swap by renames). ``name`` is the table that took its place when that one
#: existed before the step (it is gone now). What changed for OLD's code (columns added,
#: dropped, renamed, retyped; rows not carried over) follows as ops of their own.
REBUILD_TABLE = "rebuild_table"
ADD_COLUMN = "add_column"
DROP_COLUMN = "drop_column"
RENAME_COLUMN = "rename_column"
ALTER_TYPE = "alter_type"
#: A type change OLD's code survives (a widening): no finding, but the revision touches the
#: column (what the round trip sees of it is attributed to this revision).
WIDEN_TYPE = "widen_type"
ALTER_NULLABLE = "alter_nullable"
CREATE_INDEX = "create_index"
DROP_INDEX = "drop_index"
CREATE_CONSTRAINT = "create_constraint"
DROP_CONSTRAINT = "drop_constraint"
CREATE_ENUM = "create_enum"
DROP_ENUM = "drop_enum"
DELETE_ROWS = "delete_rows"
UPDATE_ROWS = "update_rows"
#: Every value of ``table.column`` replaced by a constant, none converted (``ALTER COLUMN ...
#: TYPE ... USING NULL``): destroyed in either direction (an upgrade's ``UPDATE`` is usually a
#: backfill; this never is).
CLEAR_VALUES = "clear_values"
NON_TRANSACTIONAL = "non_transactional"
NEEDS_ONLINE = "needs_online"


def identifier(name: str | None) -> str | None:
    """Unquote and lower-case an identifier and drop a schema prefix (``"public"."Users"``)."""
    if name is None:
        return None
    name = name.strip().strip(",;()")
    parts = [p.strip('"`[] ') for p in name.split(".")]
    return parts[-1].lower() if parts and parts[-1] else None


@dataclass(frozen=True)
class Op:
    """One schema or data operation found in a step's up or down.

    ``table``/``column`` are lower-cased, unquoted and without schema prefix (:func:`identifier`)
    so that ``"Users"``, ``public.users`` and ``users`` compare equal; ``name`` is the index,
    constraint or enum type name, or the new name of a rename.
    """

    op: str
    table: str | None = None
    column: str | None = None
    name: str | None = None
    nullable: bool | None = None
    server_default: bool = False
    #: Columns an index or constraint covers (lower-cased), when written as literals.
    columns: tuple[str, ...] = ()
    #: Source of the statement (SQL text or ``op.drop_column('t', 'c')``), for evidence.
    source: str = ""
    line: int = 0
    #: An added column whose values the database computes (a generated column): dropping and
    #: adding it again loses nothing.
    generated: bool = False
    #: Tables a created table, an added column or a created constraint points at by foreign key
    #: (lower-cased): dropping one of those first fails while this one exists.
    references: tuple[str, ...] = ()
    #: ``IF EXISTS`` / ``IF NOT EXISTS``: the statement does not fail when the object is already
    #: gone (or already there), so a simulation must not predict that failure.
    guarded: bool = False


@dataclass(frozen=True)
class Unknown:
    """A statement a direction runs that could not be read (no parser accepted it) or could not
    be judged (read, but what it does to the schema is not known): the checks call such a
    direction unknown rather than guess what it does."""

    line: int
    #: The statement, shortened for evidence.
    statement: str
    #: Why, one line (the parser's message, or what is not judged).
    reason: str


@dataclass(frozen=True)
class Code:
    """What one direction of a step (its up or its down) does, read without running it."""

    #: The body does nothing: only ``pass``, a docstring, ``...``, or an empty SQL section.
    empty: bool
    #: It fails whenever it runs (an unconditional ``raise``).
    raises: bool
    ops: tuple[Op, ...]
    line: int = 0
    #: How the source says this whole direction runs outside a transaction (goose's
    #: ``-- +goose NO TRANSACTION``); empty when the framework runs it in one. Work that leaves
    #: the transaction on its own (``autocommit_block()``, ``CONCURRENTLY``) is an ``Op``.
    non_transactional: str = ""
    #: Statements not read or not judged (:class:`Unknown`): what this direction does is not
    #: fully known, so the checks must not judge it from ``ops`` alone.
    unknown: tuple[Unknown, ...] = ()
    #: The file this direction is written in when it is not the step's own (golang-migrate's
    #: ``.down.sql``, Flyway's ``U`` script): what ``line`` and the ops' lines count in.
    path: Path | None = None


@dataclass(frozen=True)
class Step:
    """One migration: its id, what it builds on, and its two directions."""

    id: str
    #: The file that defines it (findings point at it).
    path: Path
    #: The steps it directly follows (several for a merge point; none for the first).
    parents: tuple[str, ...]
    up: Code | None = None
    #: None when the step has no down at all.
    down: Code | None = None
    #: References to further steps it needs applied first (Alembic's ``depends_on``).
    depends_on: tuple[str, ...] = ()
    #: Names the framework lets users address a line of steps by (Alembic's branch labels).
    labels: tuple[str, ...] = ()
    #: Certainly no down at all: the source cannot bind one (the name is nowhere in it, nor
    #: anything that could bind a name it does not spell), so running it can only fail; a
    #: walk past broken downgrades need not build a database to watch it fail.
    down_absent: bool = False


@dataclass(frozen=True)
class Wording:
    """How a framework's users name a step, its two directions and its upgrade command, so that
    a finding made by the core speaks the framework's language."""

    #: ``Revision`` (Alembic), ``Migration``...
    step: str
    #: ``upgrade``/``downgrade`` (direction names in evidence) → how a message shows them.
    up: str
    down: str
    #: The command that applies every step (``alembic upgrade head``), in backticks.
    upgrade_all: str

    def code(self, direction: str) -> str:
        """``upgrade`` → ``\\`upgrade()\\```: the direction as the framework's users know it."""
        return self.up if direction == "upgrade" else self.down


def net_ops(ops: tuple[Op, ...]) -> tuple[Op, ...]:
    """The ops without what one function takes away and puts back (SQLite batch rebuilds do
    that): a generated column dropped and added again (nothing is lost), an index or constraint
    dropped and created again under the same name (it existed before and exists after; a
    downgrade need not drop it)."""
    readded = {(o.table, o.column) for o in ops if o.op == ADD_COLUMN and o.generated}
    dropped = {(o.table, o.column) for o in ops if o.op == DROP_COLUMN}
    columns = readded & dropped
    names: set[tuple[str, str]] = set()
    for drop, create in ((DROP_INDEX, CREATE_INDEX), (DROP_CONSTRAINT, CREATE_CONSTRAINT)):
        gone: set[str] = set()
        for o in ops:
            if o.op == drop and o.name:
                gone.add(o.name)
            elif o.op == create and o.name in gone:
                names.add((create, o.name))
    paired = {(d, n) for c, n in names for d in (DROP_INDEX, DROP_CONSTRAINT) if _pair(d, c)}
    return tuple(
        o
        for o in ops
        if not (o.op in (ADD_COLUMN, DROP_COLUMN) and (o.table, o.column) in columns)
        and (o.op, o.name) not in names
        and (o.op, o.name) not in paired
    )


def _pair(drop: str, create: str) -> bool:
    return (drop, create) in ((DROP_INDEX, CREATE_INDEX), (DROP_CONSTRAINT, CREATE_CONSTRAINT))
