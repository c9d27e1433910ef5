"""SQL text into statements, each with the line it starts on, by the target database's rules.

Why not :func:`compatcheck.migrations.sql.split_sql`: a migration file holds PostgreSQL functions
(``$$ ... ; ... $$`` bodies), MariaDB routines between ``DELIMITER`` lines, SQLite triggers
(``BEGIN ...; END``) and block comments, and every finding must say ``file:line``. The scanner
here knows, per dialect, where a statement can end: not inside a string, a quoted identifier, a
line or block comment, a dollar-quoted body, nor (SQLite) a trigger body. What is only comments
and whitespace is no statement: a section of comments is empty.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

#: Dialect names as :class:`~compatcheck.migrations.scratch.Scratch` gives them.
DIALECTS = ("sqlite", "postgresql", "mysql")

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_DELIMITER = re.compile(r"^[ \t]*DELIMITER[ \t]+(\S+)[ \t]*$", re.I | re.M)


@dataclass(frozen=True)
class Statement:
    """One statement as written (comments inside kept, the delimiter dropped) and its line."""

    text: str
    #: 1-based line of the statement's first character that is not a comment or space.
    line: int


class _Scanner:
    """One pass over the text; ``cut()`` ends a statement at the current position."""

    def __init__(self, text: str, dialect: str, first_line: int) -> None:
        self.text = text
        self.dialect = dialect
        self.line = first_line
        self.start = 0
        self.code_line = 0
        self.out: list[Statement] = []

    def saw_code(self, i: int) -> None:
        if not self.code_line:
            self.code_line = self.line
            self.start = i  # leading comments are not part of the statement

    def cut(self, end: int, resume: int) -> None:
        if self.code_line:
            self.out.append(Statement(self.text[self.start : end].strip(), self.code_line))
        self.start = resume
        self.code_line = 0

    def skip_to(self, i: int, j: int) -> int:
        """Move from ``i`` to ``j`` counting lines."""
        self.line += self.text.count("\n", i, j)
        return j


def _quoted_end(text: str, i: int, quote: str, backslash: bool) -> int:
    """Index after the closing quote of the literal opening at ``i`` (doubled quote escapes)."""
    j = i + 1
    while j < len(text):
        ch = text[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < len(text) and text[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return len(text)


def _block_comment_end(text: str, i: int, nested: bool) -> int:
    depth, j = 1, i + 2
    while j < len(text) and depth:
        if nested and text.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif text.startswith("*/", j):
            depth, j = depth - 1, j + 2
        else:
            j += 1
    return j


def _line_comment(text: str, i: int, dialect: str) -> bool:
    if text.startswith("--", i):
        # MariaDB/MySQL need a space or control character after `--`.
        return dialect != "mysql" or i + 2 >= len(text) or text[i + 2] in " \t\r\n"
    return dialect == "mysql" and text[i] == "#"


def split_statements(
    text: str, dialect: str, first_line: int = 1, *, delimiter_lines: bool = False
) -> list[Statement]:
    """Every statement of ``text`` (line numbers counted from ``first_line``).

    ``delimiter_lines``: MariaDB ``DELIMITER x`` lines change the delimiter, as the ``mysql``
    client and Flyway read them. golang-migrate and dbmate send the text to the server, which
    knows no ``DELIMITER`` command: for them such a line stays in the statement (and fails there,
    as it does with the real tool)."""
    sc = _Scanner(text, dialect, first_line)
    delimiters = dialect == "mysql" and delimiter_lines
    delimiter = ";"
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            sc.line += 1
            i += 1
            if delimiters and not sc.code_line:
                m = _DELIMITER.match(text, i)
                if m:
                    sc.start = m.end()
                    delimiter = m.group(1)
                    i = m.end()
            continue
        if delimiters and i == 0 and (m := _DELIMITER.match(text, 0)):
            delimiter, sc.start, i = m.group(1), m.end(), m.end()
            continue
        if ch in " \t\r":
            i += 1
        elif _line_comment(text, i, dialect):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            i = sc.skip_to(i, _block_comment_end(text, i, nested=dialect == "postgresql"))
        elif text.startswith(delimiter, i):
            if dialect == "sqlite" and sc.code_line and not _complete(text[sc.start : i]):
                i += 1  # inside a trigger body: SQLite's own test says it goes on
                continue
            if dialect == "mysql" and delimiter == ";" and _inside_routine(text[sc.start : i]):
                i += 1  # the server reads a routine's BEGIN ... END as one statement
                continue
            sc.cut(i, i + len(delimiter))
            i += len(delimiter)
        else:
            sc.saw_code(i)
            i = _literal(sc, i)
    sc.cut(n, n)
    return sc.out


def _literal(sc: _Scanner, i: int) -> int:
    """Step over the token at ``i``: a string, a quoted identifier, a dollar-quoted body, or
    one character of code."""
    text, dialect, ch = sc.text, sc.dialect, sc.text[i]
    if ch == "'":
        backslash = dialect == "mysql" or (
            dialect == "postgresql" and i > 0 and text[i - 1] in "eE" and not _word(text, i - 2)
        )
        return sc.skip_to(i, _quoted_end(text, i, "'", backslash))
    if ch == '"':
        return sc.skip_to(i, _quoted_end(text, i, '"', dialect == "mysql"))
    if ch == "`" and dialect != "postgresql":
        return sc.skip_to(i, _quoted_end(text, i, "`", False))
    if ch == "[" and dialect == "sqlite":
        end = text.find("]", i)
        return sc.skip_to(i, len(text) if end < 0 else end + 1)
    if ch == "$" and dialect == "postgresql" and not _word(text, i - 1):
        m = _DOLLAR.match(text, i)
        if m:
            close = text.find(m.group(0), m.end())
            end = len(text) if close < 0 else close + len(m.group(0))
            return sc.skip_to(i, end)
    return i + 1


_ROUTINE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?"
    r"(?:PROCEDURE|FUNCTION|TRIGGER|EVENT)\b",
    re.I,
)
_BLOCK = re.compile(r"\b(BEGIN|CASE|END(?:\s+(?:CASE|IF|LOOP|WHILE|REPEAT)\b)?)", re.I)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`")


def _inside_routine(stmt: str) -> bool:
    """A MariaDB routine or trigger whose ``BEGIN ... END`` is still open: its inner ``;`` do
    not end it (the server parses compound statements; ``CASE`` closes with ``END`` too)."""
    if not _ROUTINE.match(stmt):
        return False
    depth = 0
    for m in _BLOCK.finditer(_QUOTED.sub("''", stmt)):
        word = " ".join(m.group(1).upper().split())
        if word in ("BEGIN", "CASE"):
            depth += 1
        elif word in ("END", "END CASE"):
            depth -= 1
    return depth > 0


def _word(text: str, i: int) -> bool:
    return i >= 0 and (text[i].isalnum() or text[i] in "_$")


def _complete(stmt: str) -> bool:
    """SQLite's own test: a trigger body's inner ``;`` does not end ``CREATE TRIGGER``."""
    return sqlite3.complete_statement(stmt + ";")


def blank_bodies(text: str) -> str:
    """``text`` with dollar-quoted bodies emptied (``$$ ... $$`` → ``$$$$``): a function's
    statements are not the migration's own."""
    out, i = [], 0
    for m in _DOLLAR.finditer(text):
        if m.start() < i:
            continue
        close = text.find(m.group(0), m.end())
        if close < 0:
            break
        out.append(text[i : m.end()])
        i = close
    out.append(text[i:])
    return "".join(out)
