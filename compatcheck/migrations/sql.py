"""Raw SQL strings: split into statements, and shortened for evidence.

Every place that splits a SQL string with no framework rules of its own calls
:func:`split_sql`: the static reading of Alembic's ``op.execute`` strings and the seed file the
round trip runs. Reading statements as ops is :mod:`~compatcheck.migrations.sqlstatic`'s job
(a real SQL parser), the one SQL reader.
"""

from __future__ import annotations

#: Statements longer than this are cut in evidence.
SOURCE_LIMIT = 200


def split_sql(sql: str) -> list[str]:
    """Split on ``;`` outside quotes, dropping ``--`` comments; whitespace collapsed."""
    out: list[str] = []
    buf: list[str] = []
    quote = ""
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            buf.append(ch)
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [" ".join(stmt.split()) for stmt in out if stmt.strip()]


def shorten(text: str, limit: int = SOURCE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (``...`` marks the cut), for evidence."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
