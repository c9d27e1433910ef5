"""The four SQL-file formats read the way their tools read them: names, versions, sections.

Each reader turns a folder into :class:`Migration` values, in the order the tool applies them,
with the tool's own rules: which files are migrations (a file the tool ignores is no step), how
a version is named and ordered, where the up and down parts are, which part runs outside a
transaction, and what the tool refuses to run (a goose statement without its semicolon, a dbmate
file without ``-- migrate:down``). What compatcheck cannot execute or can only read as written
(goose Go migrations, ``ENVSUB``, Flyway placeholders and repeatable scripts) is a :class:`Note`,
never skipped in silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from compatcheck.errors import InputError
from compatcheck.migrations.sources.sqlfiles.splitting import Statement, split_statements

GOLANG_MIGRATE = "golang-migrate"
GOOSE = "goose"
DBMATE = "dbmate"
FLYWAY = "flyway"
FRAMEWORKS = (GOLANG_MIGRATE, GOOSE, DBMATE, FLYWAY)


@dataclass(frozen=True)
class Note:
    """Something about a file the reader could not take as plain SQL (``file:line``)."""

    path: Path
    line: int
    text: str


@dataclass(frozen=True)
class Section:
    """One direction of a migration: its statements and how the tool runs them."""

    statements: tuple[Statement, ...]
    #: The file where this direction is written, and the line its section starts on.
    path: Path
    line: int = 1
    #: How the file says this direction runs outside a transaction (``transaction:false``).
    no_transaction: str = ""
    #: Why the tool refuses to run this direction, every time (None: it runs).
    refused: str | None = None
    #: Why compatcheck cannot run it at all (a goose Go migration); its effect is unknown.
    not_executable: str | None = None


@dataclass(frozen=True)
class Migration:
    """One step: its version as the tool names it, its file(s), its up and optional down."""

    version: str
    order: tuple[int, ...]
    path: Path
    up: Section
    down: Section | None
    notes: tuple[Note, ...] = ()
    #: Flyway's description and script name, recorded in its history table.
    description: str = ""


@dataclass
class Folder:
    """Every migration of a folder in the tool's order, and the notes about other files."""

    framework: str
    location: Path
    migrations: list[Migration]
    notes: list[Note] = field(default_factory=list)
    #: Flyway repeatable scripts (``R__``): applied after the versioned ones, never undone.
    repeatables: list[Section] = field(default_factory=list)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from exc


def _unique(folder: Path, found: dict[str, Migration], m: Migration) -> None:
    if m.version in found:
        raise InputError(
            f"migrations folder {folder}: version {m.version} is defined twice "
            f"({found[m.version].path.name}, {m.path.name})"
        )
    found[m.version] = m


def _sorted(found: dict[str, Migration]) -> list[Migration]:
    return sorted(found.values(), key=lambda m: (m.order, m.version))


# --- golang-migrate -----------------------------------------------------------------------------

_MIGRATE_NAME = re.compile(r"^([0-9]+)_(.*)\.(down|up)\.sql$")


def read_golang_migrate(folder: Path, dialect: str) -> Folder:
    """``{version}_{title}.up.sql`` / ``.down.sql``: each file one section, the version the
    leading integer (``0030_x`` → ``30``). A version without its ``.down.sql`` has no down:
    ``migrate down`` then only moves the version (golang-migrate's "nil migration")."""
    ups: dict[int, Path] = {}
    downs: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        m = _MIGRATE_NAME.match(path.name)
        if not m or not path.is_file():
            continue
        side = ups if m.group(3) == "up" else downs
        v = int(m.group(1))
        if v in side:
            raise InputError(
                f"migrations folder {folder}: version {v} has two {m.group(3)} files "
                f"({side[v].name}, {path.name})"
            )
        side[v] = path
    found: dict[str, Migration] = {}
    out = Folder(GOLANG_MIGRATE, folder, [])
    for v in sorted(set(ups) | set(downs)):
        if v not in ups:
            out.notes.append(Note(downs[v], 1, "a down file without its up file: no step"))
            continue

        def section(p: Path) -> Section:
            return Section(tuple(split_statements(_text(p), dialect)), p)

        down = section(downs[v]) if v in downs else None
        _unique(folder, found, Migration(str(v), (v,), ups[v], section(ups[v]), down))
    out.migrations = _sorted(found)
    return out


# --- goose --------------------------------------------------------------------------------------

_GOOSE_NAME = re.compile(r"^([0-9]+)_.*\.(sql|go)$")
_ANNOTATION = re.compile(r"^--\s*\+goose\s+(.*?)\s*$", re.I)


def _ends_with_semicolon(line: str) -> bool:
    """goose's test: the last word before a ``--`` comment ends with ``;``."""
    last = ""
    for word in line.split():
        if word.startswith("--"):
            break
        last = word
    return last.endswith(";")


@dataclass
class _GooseState:
    path: Path
    side: str = ""
    block: bool = False
    buf: list[str] = field(default_factory=list)
    buf_line: int = 0
    statements: dict[str, list[Statement]] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def flush(self) -> None:
        if self.buf:
            text = "\n".join(self.buf).strip().removesuffix(";").rstrip()
            self.statements[self.side].append(Statement(text, self.buf_line))
        self.buf, self.buf_line = [], 0

    def unfinished(self) -> None:
        if self.buf and self.side and self.side not in self.refused:
            self.refused[self.side] = (
                f"{self.path.name}:{self.buf_line}: goose refuses the file: unfinished SQL "
                "statement (missing semicolon?)"
            )
        self.buf, self.buf_line = [], 0


def _goose_sql(path: Path) -> tuple[dict[str, Section | None], list[Note]]:
    """The Up and Down sections of a goose SQL file, by goose's line rules: a statement ends
    at a line whose last word ends with ``;``, or at ``StatementEnd``; comment lines are
    dropped; ``NO TRANSACTION`` covers the whole file."""
    st = _GooseState(path)
    notes: list[Note] = []
    no_tx = ""
    envsub = False
    for number, raw in enumerate(_text(path).splitlines(), start=1):
        line = raw.strip()
        if line.startswith("--"):
            ann = _ANNOTATION.match(line)
            cmd = ann.group(1).lower() if ann else ""
            if cmd in ("up", "down"):
                st.unfinished()
                st.side = cmd
                st.statements.setdefault(cmd, [])
                st.starts[cmd] = number
            elif cmd == "statementbegin":
                st.unfinished()
                st.block = True
            elif cmd == "statementend":
                st.flush()
                st.block = False
            elif cmd == "no transaction":
                no_tx = "-- +goose NO TRANSACTION"
            elif cmd.startswith("envsub"):
                envsub = cmd.endswith("on")
            continue
        if not line or not st.side:
            continue
        if envsub and "${" in raw:
            notes.append(
                Note(
                    path,
                    number,
                    "ENVSUB: `${...}` left as written (goose fills it from the "
                    "environment when it runs)",
                )
            )
        if not st.buf:
            st.buf_line = number
        st.buf.append(raw)
        if not st.block and _ends_with_semicolon(raw):
            st.flush()
    st.unfinished()
    sections: dict[str, Section | None] = {}
    for side in ("up", "down"):
        if side not in st.statements:
            sections[side] = None
            continue
        sections[side] = Section(
            tuple(st.statements[side]),
            path,
            st.starts[side],
            no_transaction=no_tx,
            refused=st.refused.get(side),
        )
    return sections, notes


def read_goose(folder: Path, dialect: str) -> Folder:
    """``NNN_name.sql`` with ``-- +goose Up``/``Down`` sections, and ``NNN_name.go`` Go
    migrations (registered in the application's binary: not executable here, read as unknown).
    A file without an Up annotation is refused by goose whenever it runs."""
    del dialect  # goose splits by its own line rules, whatever the database
    found: dict[str, Migration] = {}
    out = Folder(GOOSE, folder, [])
    for path in sorted(folder.iterdir()):
        m = _GOOSE_NAME.match(path.name)
        if not m or not path.is_file() or path.name.endswith("_test.go"):
            continue
        v = int(m.group(1))
        if m.group(2) == "go":
            why = f"{path.name}: a goose Go migration: not executable here, its effect unknown"
            unknown = Section((), path, 1, not_executable=why)
            note = Note(path, 1, why)
            _unique(folder, found, Migration(str(v), (v,), path, unknown, unknown, (note,)))
            continue
        sections, notes = _goose_sql(path)
        up, down = sections["up"], sections["down"]
        if up is None:
            up = Section((), path, 1, refused=f"{path.name}: goose refuses it: no `-- +goose Up`")
        for side in (up, down):
            if side is not None and side.refused is not None:
                notes.append(Note(path, side.line, side.refused))
        _unique(folder, found, Migration(str(v), (v,), path, up, down, tuple(notes)))
    out.migrations = _sorted(found)
    return out


# --- dbmate -------------------------------------------------------------------------------------

_DBMATE_NAME = re.compile(r"^(\d+)_.*\.sql$")
_DBMATE_MARK = re.compile(r"^--\s*migrate:(up|down)(.*)$", re.M)


def read_dbmate(folder: Path, dialect: str) -> Folder:
    """``<digits>_name.sql`` with ``-- migrate:up`` and ``-- migrate:down`` (both required by
    dbmate, up first; ``transaction:false`` after either). Versions are the digits as written."""
    found: dict[str, Migration] = {}
    out = Folder(DBMATE, folder, [])
    for path in sorted(folder.iterdir()):
        m = _DBMATE_NAME.match(path.name)
        if not m or not path.is_file():
            continue
        text = _text(path)
        marks = list(_DBMATE_MARK.finditer(text))
        sides: dict[str, Section] = {}
        refused = None
        names = [mk.group(1) for mk in marks]
        if "up" not in names:
            refused = "dbmate requires each migration to define an up block with '-- migrate:up'"
        elif "down" not in names:
            refused = "dbmate requires each migration to define a down block with '-- migrate:down'"
        elif names.index("down") < names.index("up"):
            refused = "dbmate requires '-- migrate:up' to appear before '-- migrate:down'"
        for i, mk in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            body_line = text.count("\n", 0, mk.end()) + 1
            body = text[mk.end() : end]
            options = mk.group(2)
            no_tx = (
                f"-- migrate:{mk.group(1)} transaction:false"
                if re.search(r"\btransaction:false\b", options)
                else ""
            )
            statements = tuple(split_statements(body, dialect, body_line))
            sides.setdefault(
                mk.group(1), Section(statements, path, body_line, no_transaction=no_tx)
            )
        up = sides.get("up") or Section((), path, 1)
        notes: tuple[Note, ...] = ()
        if refused is not None:
            up = Section(up.statements, path, up.line, up.no_transaction, f"{path.name}: {refused}")
            notes = (Note(path, 1, f"dbmate refuses the file: {refused}"),)
        _unique(folder, found, Migration(m.group(1), (), path, up, sides.get("down"), notes))
    # dbmate orders by version as a string of digits (file names sort the same way).
    out.migrations = sorted(found.values(), key=lambda x: (len(x.version), x.version))
    return out


# --- Flyway -------------------------------------------------------------------------------------

_FLYWAY_NAME = re.compile(r"^([VUR])(\d+(?:[._]\d+)*)?__(.+)\.sql$")
_PLACEHOLDER = re.compile(r"\$\{([^}\s]+)\}")


def _flyway_section(path: Path, dialect: str) -> tuple[Section, list[Note]]:
    text = _text(path)
    notes = [
        Note(
            path,
            text.count("\n", 0, m.start()) + 1,
            f"placeholder `{m.group(0)}` left as written: Flyway replaces it from its "
            "configuration (and refuses to run when no value is given)",
        )
        for m in _PLACEHOLDER.finditer(text)
    ]
    conf = path.with_name(path.name + ".conf")
    no_tx = ""
    if conf.is_file() and re.search(r"^\s*executeInTransaction\s*=\s*false\s*$", _text(conf), re.M):
        no_tx = f"{conf.name}: executeInTransaction=false"
    statements = tuple(split_statements(text, dialect, delimiter_lines=True))
    return Section(statements, path, 1, no_transaction=no_tx), notes


def read_flyway(folder: Path, dialect: str) -> Folder:
    """``V<version>__<desc>.sql`` (``1_2`` is version 1.2, ordered by its numbers), undo
    ``U<version>__<desc>.sql``, repeatable ``R__<desc>.sql`` (run after the versioned ones,
    never undone: named as such)."""
    versioned: dict[tuple[int, ...], tuple[str, Path, str]] = {}
    undo: dict[tuple[int, ...], Path] = {}
    out = Folder(FLYWAY, folder, [])
    for path in sorted(folder.iterdir()):
        m = _FLYWAY_NAME.match(path.name)
        if not m or not path.is_file():
            continue
        prefix, raw, desc = m.groups()
        if prefix == "R":
            section, notes = _flyway_section(path, dialect)
            out.repeatables.append(section)
            out.notes += notes
            out.notes.append(
                Note(path, 1, f"{path.name}: a repeatable migration: Flyway never undoes it")
            )
            continue
        if raw is None:
            continue
        version = raw.replace("_", ".")
        key = tuple(int(p) for p in version.split("."))
        if prefix == "U":
            undo[key] = path
            continue
        if key in versioned:
            raise InputError(
                f"migrations folder {folder}: version {version} is defined twice "
                f"({versioned[key][1].name}, {path.name})"
            )
        versioned[key] = (version, path, desc.replace("_", " "))
    for key in sorted(versioned):
        version, path, desc = versioned[key]
        up, notes = _flyway_section(path, dialect)
        down = None
        if key in undo:
            down, more = _flyway_section(undo[key], dialect)
            notes += more
        out.migrations.append(Migration(version, key, path, up, down, tuple(notes), desc))
    for key in sorted(set(undo) - set(versioned)):
        out.notes.append(Note(undo[key], 1, "an undo script without its versioned migration"))
    return out


READERS = {
    GOLANG_MIGRATE: read_golang_migrate,
    GOOSE: read_goose,
    DBMATE: read_dbmate,
    FLYWAY: read_flyway,
}
