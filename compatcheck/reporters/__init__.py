"""Reporters: pure functions from a :class:`~compatcheck.report.Report` to text in one format.

No I/O, no exit codes, no clock: the same report always renders to the same text, which is what
the golden-file tests rely on. The CLI picks the format, the colour and the exit code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from compatcheck.errors import UsageError
from compatcheck.masking import mask_secrets
from compatcheck.report import Report

Renderer = Callable[..., str]

#: Output formats, in the order ``--format`` lists them.
FORMATS = ("text", "json", "markdown", "junit", "sarif", "github", "html")

#: Each format's renderer is ``render_<format>`` in the module of that name, imported when the
#: format is asked for: a gate that prints text does not pay for the XML and HTML machinery of
#: the others (their imports were a tenth of ``compatcheck diff``'s start-up).
_RENDERER_MODULES = {fmt: f"compatcheck.reporters.{fmt}" for fmt in FORMATS}


def _renderer(fmt: str) -> Renderer | None:
    module = _RENDERER_MODULES.get(fmt)
    if module is None:
        return None
    renderer: Renderer = getattr(importlib.import_module(module), f"render_{fmt}")
    return renderer


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
    renderer = _renderer(fmt)
    if renderer is None:
        raise UsageError(f"unknown report format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    # Sources and messages are masked where they are made; this is the guarantee for all six
    # formats that no credential that slipped through reaches a report.
    return mask_secrets(renderer(report, color=color))


__all__ = ["EXTENSIONS", "FORMATS", "render"]
