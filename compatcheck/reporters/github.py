"""GitHub Actions workflow commands: one annotation per finding, then the verdict line.

A finding about an alert or panel is annotated on its file and line, so it shows up in the pull
request diff; other findings are annotated on the run. Waived findings become notices, so they
stay visible without adding to the error count.
"""

from __future__ import annotations

from compatcheck.report import RatedFinding, Report
from compatcheck.reporters._common import (
    consumer_text,
    finding_location,
    not_blocking_note,
    plan_statuses,
    printable,
    verdict_line,
    verify_statuses,
)

#: compatcheck severity → workflow command.
COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    """Escape a command's message as the runner expects (``%``, CR and LF)."""
    text = printable(text, keep="\r\n")
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value: as the message, plus ``:`` and ``,`` which delimit properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(rf: RatedFinding, note: str, report: Report) -> str:
    f = rf.finding
    props: list[tuple[str, str]] = []
    where = finding_location(rf, report)
    if where is not None:
        props.append(("file", where[0]))
        if where[1] is not None:
            props.append(("line", str(where[1])))
    props.append(("title", f.kind))
    lines = [f"{f.subject}: {f.message}"]
    lines += [f"used by {consumer_text(c)}" for c in f.consumers]
    if rf.waiver is not None:
        w = rf.waiver
        command = "notice"
        lines.append(
            f"waived ({rf.severity}) until {w.expires.isoformat()}: {w.reason} ({w.source})"
        )
    else:
        command = COMMANDS[rf.severity]
        if not rf.blocking:
            lines.append(note)
    prop_text = ",".join(f"{k}={escape_property(v)}" for k, v in props)
    return f"::{command} {prop_text}::{escape_data(chr(10).join(lines))}"


def render_github(report: Report, *, color: bool = False) -> str:
    """Workflow commands for ``$GITHUB_STEP`` output; ``color`` is ignored."""
    note = not_blocking_note(report)
    lines = [_command(rf, note, report) for rf in report.visible()]
    statuses = [*plan_statuses(report), *verify_statuses(report)]
    lines += [f"compatcheck: {printable(t)}: {printable(s)}" for t, s in statuses]
    lines.append(f"compatcheck: {verdict_line(report)}")
    return "\n".join(lines) + "\n"
