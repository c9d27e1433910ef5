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
    repo_path,
    verify_statuses,
)
from compatcheck.reporters.causes import Cause, build_causes, fixes, short_fingerprint, summary_line

#: compatcheck severity → workflow command.
COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    """Escape a command's message as the runner expects (``%``, CR and LF)."""
    text = printable(text, keep="\r\n")
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value: as the message, plus ``:`` and ``,`` which delimit properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(
    command: str, where: tuple[str, int | None] | None, title: str, lines: list[str], report: Report
) -> str:
    """One workflow command: ``::error file=F,line=N,title=T::message``, every part escaped and
    the file relative to the repository root (annotations outside it are dropped by GitHub)."""
    props: list[tuple[str, str]] = []
    if where is not None:
        props.append(("file", repo_path(where[0], report)))
        if where[1] is not None:
            props.append(("line", str(where[1])))
    props.append(("title", title))
    prop_text = ",".join(f"{k}={escape_property(v)}" for k, v in props)
    return f"::{command} {prop_text}::{escape_data(chr(10).join(lines))}"


def _command(rf: RatedFinding, note: str, report: Report) -> str:
    """A waived finding (a notice) or one a safe plan makes moot (with the note saying so)."""
    f = rf.finding
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
    return _annotation(command, finding_location(rf, report), f.kind, lines, report)


def _cause_command(cause: Cause, report: Report) -> list[str]:
    """One annotation per cause (its severity, where it points) with its consequences and fix;
    each consequence is a notice on the consumer's own file and line, so the PR diff shows it,
    without counting it as a problem of its own."""
    rf = cause.primary
    f = rf.finding
    lines = [f"{f.subject}: {f.message}"]
    lines += [f"also {o.finding.kind}: {o.finding.message}" for o in cause.related]
    lines += [f"breaks {consumer_text(e.consumer)}" for e in cause.effects]
    if not cause.blocking(report.fail_on):
        lines.append("not blocking")
    lines += [f"fix: {line}" for line in fixes(cause, report)]
    title = f"{f.kind} (fp {short_fingerprint(rf)})"
    out = [
        _annotation(COMMANDS[cause.severity()], finding_location(rf, report), title, lines, report)
    ]
    for e in cause.effects:
        c = e.consumer
        text = e.finding.finding.message if e.finding is not None else consumer_text(c)
        where = (c.file, c.line)
        out.append(_annotation("notice", where, f"broken by {f.kind} {f.subject}", [text], report))
    return out


def render_github(report: Report, *, color: bool = False) -> str:
    """Workflow commands for ``$GITHUB_STEP`` output, causes first; ``color`` is ignored."""
    note = not_blocking_note(report)
    causes = build_causes(report)
    lines: list[str] = []
    for cause in causes:
        lines += _cause_command(cause, report)
    lines += [_command(rf, note, report) for rf in report.visible() if rf.waived or not rf.blocking]
    lines += [
        f"compatcheck: {printable(t)}: {printable(s)}"
        for t, s in [*plan_statuses(report), *verify_statuses(report)]
    ]
    lines.append(f"compatcheck: {summary_line(report, causes)}")
    total = report.timings.get("total")
    if total is not None:
        lines.append(f"compatcheck: done in {total:.1f} s")
    return "\n".join(lines) + "\n"
