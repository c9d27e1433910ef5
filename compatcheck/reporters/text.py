"""Plain text for a person at a terminal, possibly at 3 a.m. during an incident.

The order answers the questions in the order they are asked: what is being compared, what breaks
(errors first, with the alerts and panels that break), what was accepted and until when, which
rollback plan to follow, and then one line with the verdict, the line people paste in chat.
Rollback steps are the thing to do only on GO; on NO-GO they follow the verdict, framed as what
to do once the blocking findings are resolved; a deploy gets none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from compatcheck.report import RatedFinding, Report, VersionInfo
from compatcheck.reporters._common import (
    advice_heading,
    artifact_summary,
    build_text,
    by_severity,
    chosen_plan,
    consumer_text,
    downgrade_path_text,
    not_blocking_note,
    plan_advice,
    plan_status,
    plan_title,
    printable,
    rollback_steps,
    short_json,
    transition_text,
    verdict_line,
    verify_heading,
    waived_findings,
    waiver_text,
)

_RESET = "\x1b[0m"
_STYLES = {
    "error": "\x1b[1;31m",
    "warning": "\x1b[1;33m",
    "info": "\x1b[36m",
    "go": "\x1b[1;32m",
    "no-go": "\x1b[1;31m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}

_HEADINGS = {"error": "ERRORS", "warning": "WARNINGS", "info": "INFO"}

#: Evidence worth a line in the terminal: what a person needs to act without opening the JSON.
_EVIDENCE_KEYS = (
    "reason",
    "expression",
    "expr",
    "query",
    "error",
    "exception",
    "statement",
    "sql",
    "command",
    "exit_code",
    "hint",
)
#: Evidence keys holding process output; the last lines are shown (the end is where it failed).
_LOG_KEYS = ("log_tail", "log", "stderr", "stdout", "output", "traceback")
_LOG_LINES = 10


class _Painted(str):
    """A whole output line already made safe and coloured: the final pass leaves it alone."""


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, style: str, text: str) -> str:
        safe = printable(text, keep="\t")
        return _Painted(f"{_STYLES[style]}{safe}{_RESET}" if self.color else safe)


def _version_line(role: str, info: VersionInfo, note: str) -> str:
    build = build_text(info.build)
    parts = [f"{role} {info.label} ({note})"]
    if info.source:
        parts.append(info.source)
    if build:
        parts.append(f"build {build}")
    return "  " + " · ".join(parts)


def _header(report: Report, paint: _Painter) -> list[str]:
    now, target = ("NEW", "OLD") if report.direction == "rollback" else ("OLD", "NEW")
    info = {"OLD": report.old, "NEW": report.new}
    return [
        paint("bold", f"compatcheck {transition_text(report)}"),
        _version_line(now, info[now], "running now"),
        _version_line(target, info[target], "target"),
    ]


def _log_tail(value: Any) -> list[str] | None:
    if isinstance(value, str) and "\n" in value.strip():
        lines = value.rstrip("\n").splitlines()
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        lines = [str(v) for v in value]
    else:
        return None
    return lines[-_LOG_LINES:]


def _evidence_lines(rf: RatedFinding) -> list[str]:
    """Short evidence that is not already in the message."""
    ev: Mapping[str, Any] = rf.finding.evidence
    out: list[str] = []
    for key in _EVIDENCE_KEYS:
        if key not in ev or ev[key] in (None, "", [], {}):
            continue
        text = short_json(ev[key])
        if text in rf.finding.message:
            continue
        out.append(f"      {key}: {text}")
    for key in _LOG_KEYS:
        tail = _log_tail(ev.get(key))
        if tail is None:
            if isinstance(ev.get(key), str) and ev[key].strip():
                out.append(f"      {key}: {short_json(ev[key])}")
            continue
        out.append(f"      {key} (last {len(tail)} lines):")
        out.extend(f"        | {line}" for line in tail)
    return out


def _finding_lines(rf: RatedFinding, note: str) -> list[str]:
    f = rf.finding
    head = f"  {f.kind} {f.subject}: {f.message}"
    if not rf.blocking:
        head += f" ({note})"
    lines = [head]
    lines += [f"      {consumer_text(c)}" for c in f.consumers]
    lines += _evidence_lines(rf)
    return lines


def _findings(report: Report, paint: _Painter) -> list[str]:
    out: list[str] = []
    for sev, group in by_severity(report):
        out += ["", paint(sev, f"{_HEADINGS[sev]} ({len(group)})")]
        for rf in group:
            out += _finding_lines(rf, not_blocking_note(report))
    return out


def _waivers(report: Report, paint: _Painter) -> list[str]:
    out: list[str] = []
    waived = waived_findings(report)
    if waived:
        out += ["", paint("dim", f"WAIVED ({len(waived)})")]
        for rf in waived:
            f, w = rf.finding, rf.waiver
            assert w is not None
            out.append(f"  [{rf.severity}] {f.kind} {f.subject}: {f.message}")
            out.append(f"      waived until {w.expires.isoformat()}: {w.reason} ({w.source})")
    if report.expired_waivers:
        out += ["", paint("warning", f"EXPIRED WAIVERS ({len(report.expired_waivers)})")]
        for w in report.expired_waivers:
            out.append(
                f"  {waiver_text(w)}: expired {w.expires.isoformat()}, the finding counts again"
                f" ({w.source})"
            )
    if report.unused_waivers:
        out += ["", paint("dim", f"UNUSED WAIVERS ({len(report.unused_waivers)})")]
        for w in report.unused_waivers:
            out.append(f"  {waiver_text(w)}: matched no finding, remove it ({w.source})")
    return out


def _migrations(report: Report, paint: _Painter) -> list[str]:
    mig = report.migrations
    if mig is None:
        return []
    out = ["", paint("bold", "MIGRATIONS")]
    out.append(f"  heads: OLD {mig.old_head} · NEW {mig.new_head}")
    out.append(f"  downgrade path: {downgrade_path_text(mig.downgrade_path or ())}")
    for p in mig.plans:
        out.append(f"  {plan_title(report, p)}: {plan_status(p)}")
        out += [f"      {r}" for r in p.reasons]
        live = p.live_data_at_risk
        if live:
            out.append("      data at risk on the live database:")
            out += [f"        {line}" for line in live]
    advice = plan_advice(report)
    if advice and (report.go or chosen_plan(report) is None):
        out.append(f"  → {advice}")
    return out


def _verify(report: Report, paint: _Painter) -> list[str]:
    heading = verify_heading(report)
    if report.verify is None or heading is None:
        return []
    out = ["", paint("bold", "VERIFY"), f"  {heading}"]
    width = max((len(c.name) for c in report.verify.checks), default=0)
    for c in report.verify.checks:
        since = f" (since {c.ok_since})" if c.status == "ok" and c.ok_since else ""
        out.append(f"  {c.status:<7}  {c.name:<{width}}  {c.summary}{since}")
        if c.status in ("failing", "unknown"):
            if c.query:
                out.append(f"      query: {c.query}")
            out += [f"      {d}" for d in c.details]
    return out


def _artifact(report: Report, paint: _Painter) -> list[str]:
    summary = artifact_summary(report)
    if summary is None:
        return []
    what, commands, note = summary
    out = ["", paint("bold", "ARTIFACT"), f"  {what}"]
    if report.direction != "rollback":
        return out
    if commands and report.go:
        out.append("  rollback command:")
        out += [f"    {c}" for c in commands]
    if note:
        out.append(f"  {note}")
    return out


def _pending_advice(report: Report) -> list[str]:
    """On NO-GO, what to do once the blocking findings are resolved (below the verdict)."""
    plan, commands = rollback_steps(report)
    if report.go or (plan is None and not commands):
        return []
    out = ["", f"{advice_heading(report)}:"]
    if plan:
        out.append(f"  {plan}")
    if commands:
        out.append("  rollback command:")
        out += [f"    {c}" for c in commands]
    return out


def _extras(report: Report) -> list[str]:
    others = sorted(report.extras)
    if not others:
        return []
    out = ["", "MORE"]
    for key in others:
        text = json.dumps(report.extras[key], sort_keys=True, default=str)
        out.append(f"  {key}: {short_json(text, 300)}")
    return out


def render_text(report: Report, *, color: bool = False) -> str:
    """The report for a terminal; ANSI colour only when ``color`` (CLI: a TTY and no NO_COLOR)."""
    paint = _Painter(color)
    # Notes come first: they say how far the verdict below can be trusted.
    lines = [paint("warning", f"NOTE: {note}") for note in report.notes]
    lines += _header(report, paint)
    lines += _findings(report, paint)
    lines += _waivers(report, paint)
    lines += _migrations(report, paint)
    lines += _verify(report, paint)
    lines += _extras(report)
    lines += _artifact(report, paint)
    lines += ["", paint(report.verdict, verdict_line(report))]
    lines += _pending_advice(report)
    safe = [line if isinstance(line, _Painted) else printable(line, keep="\t") for line in lines]
    return "\n".join(safe) + "\n"
