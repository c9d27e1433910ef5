"""Reporters: pure functions from a :class:`~compatcheck.report.Report` to text in one format.

No I/O, no exit codes, no clock: the same report always renders to the same text, which is what
the golden-file tests rely on. The CLI picks the format, the colour and the exit code.
"""

from __future__ import annotations

from collections.abc import Callable

from compatcheck.errors import UsageError
from compatcheck.masking import mask_secrets
from compatcheck.report import Report
from compatcheck.reporters.github import render_github
from compatcheck.reporters.html import render_html
from compatcheck.reporters.json import render_json
from compatcheck.reporters.junit import render_junit
from compatcheck.reporters.markdown import render_markdown
from compatcheck.reporters.sarif import render_sarif
from compatcheck.reporters.text import render_text

Renderer = Callable[..., str]

#: Output formats, in the order ``--format`` lists them.
FORMATS = ("text", "json", "markdown", "junit", "sarif", "github", "html")

_RENDERERS: dict[str, Renderer] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
    "junit": render_junit,
    "sarif": render_sarif,
    "github": render_github,
    "html": render_html,
}

#: Usual file extension per format (for golden files and ``--output`` defaults).
EXTENSIONS = {
    "text": "txt",
    "json": "json",
    "markdown": "md",
    "junit": "xml",
    "sarif": "sarif",
    "github": "txt",
    "html": "html",
}


def render(report: Report, fmt: str, *, color: bool = False) -> str:
    """Render ``report`` as ``fmt``; ``color`` only affects ``text`` (ANSI escapes)."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise UsageError(f"unknown report format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    # Sources and messages are masked where they are made; this is the guarantee for all six
    # formats that no credential that slipped through reaches a report.
    return mask_secrets(renderer(report, color=color))


__all__ = ["EXTENSIONS", "FORMATS", "render"]
