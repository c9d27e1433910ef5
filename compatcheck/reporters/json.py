"""The ``compatcheck.report/v1`` document: the machine contract other tools are written against.

Keys keep the order :meth:`Report.to_json` builds them in (schema, verdict, ... findings) rather
than being sorted, so that a person reading the file sees the verdict first.
"""

from __future__ import annotations

import json

from compatcheck.report import Report


def render_json(report: Report, *, color: bool = False) -> str:
    """``report.to_json()`` as indented JSON plus a newline; ``color`` is ignored."""
    return json.dumps(report.to_json(), indent=2, sort_keys=False) + "\n"
