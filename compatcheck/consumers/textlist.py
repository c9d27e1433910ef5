"""Reader of plain lists of PromQL expressions (``.promql``, ``.txt``).

One expression per line; blank lines and lines starting with ``#`` are skipped. An expression has
no other name than its place, so its subject is ``query:<file>:<line>``. Grafana's variable
syntax (``$var``, ``[[var]]``) is allowed in them, as in dashboards.
"""

from __future__ import annotations

from compatcheck.consumers.collector import Source
from compatcheck.model import Consumer


def read_text_list(source: Source, text: str) -> bool:
    """Read every expression; any text is a list (True)."""
    for number, raw in enumerate(text.splitlines(), start=1):
        expr = raw.strip()
        if not expr or expr.startswith("#"):
            continue
        name = f"{source.rel}:{number}"
        consumer = Consumer(type="query", name=name, file=source.file, line=number)
        source.add(f"query:{name}", consumer, expr, number, grafana=True)
    return True
