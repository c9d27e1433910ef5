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
from compatcheck.reporters import _common as common
from compatcheck.reporters.causes import (
    Cause,
    Effect,
    build_causes,
    fixes,
    short_fingerprint,
    summary_line,
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
        safe = common.printable(text, keep="\t")
        return _Painted(f"{_STYLES[style]}{safe}{_RESET}" if self.color else safe)


def _version_line(role: str, info: VersionInfo, note: str) -> str:
    build = common.build_text(info.build)
    parts = [f"{role} {info.label} ({note})"]
    if info.source:
        parts.append(info.source)
    if build:
        parts.append(f"build {build}")
    return "  " + " · ".join(parts)


def _header(report: Report, paint: _Painter) -> list[str]:
    now, target = ("NEW", "OLD") if report.direction == "rollback" else ("OLD", "NEW")
    info = {"OLD": report.old, "NEW": report.new}
    lines = [paint("bold", f"compatcheck {common.transition_text(report)}")]
    if report.invocation:
        lines.append(f"  ran: {report.invocation}")
    return [
        *lines,
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
        text = common.short_json(ev[key])
        if text in rf.finding.message:
            continue
        out.append(f"      {key}: {text}")
    for key in _LOG_KEYS:
        tail = _log_tail(ev.get(key))
        if tail is None:
            if isinstance(ev.get(key), str) and ev[key].strip():
                out.append(f"      {key}: {common.short_json(ev[key])}")
            continue
        out.append(f"      {key} (last {len(tail)} lines):")
        out.extend(f"        | {line}" for line in tail)
    return out


def _symptom_text(effect: Effect) -> str | None:
    """The consumer finding's message without the consumer's name (the line above has it)."""
    if effect.finding is None:
        return None
    c, msg = effect.consumer, effect.finding.finding.message
    prefix = f"{c.type} `{c.name}` "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


def _cause_lines(n: int, cause: Cause, report: Report, paint: _Painter) -> list[str]:
    rf = cause.primary
    f = rf.finding
    sev = cause.severity()
    blocking = cause.blocking(report.fail_on)
    tag = sev.upper() if blocking or sev == "error" else f"{sev}, not blocking"
    lines: list[str] = [
        paint(sev, f"  {n}. [{tag}] {f.kind} {f.subject} (fp {short_fingerprint(rf)})"),
        f"     {f.message}",
    ]
    lines += [line[1:] for line in _evidence_lines(rf)]
    for other in cause.related:
        lines.append(
            f"     also: {other.finding.kind} (fp {short_fingerprint(other)}): "
            f"{other.finding.message}"
        )
        lines += [line[1:] for line in _evidence_lines(other)]
    if cause.effects:
        lines.append(f"     consequences ({len(cause.effects)}):")
        for effect in cause.effects:
            lines.append(f"       {common.consumer_text(effect.consumer)}")
            symptom = _symptom_text(effect)
            if symptom is not None:
                lines.append(f"         {symptom}")
                expr = effect.finding.finding.evidence.get("expr") if effect.finding else None
                if isinstance(expr, str) and expr.strip():
                    lines.append(f"         expr: {common.short_json(expr)}")
    fix = fixes(cause, report)
    lines.append(f"     fix: {fix[0]}")
    lines += [f"          {line}" for line in fix[1:]]
    return lines


def _findings(report: Report, causes: list[Cause], paint: _Painter) -> list[str]:
    blocking = [c for c in causes if c.blocking(report.fail_on)]
    rest = [c for c in causes if not c.blocking(report.fail_on)]
    out: list[str] = []
    if blocking:
        out += ["", paint("error", f"BLOCKING PROBLEMS ({len(blocking)})")]
        for i, cause in enumerate(blocking, 1):
            out += _cause_lines(i, cause, report, paint)
    if rest:
        out += ["", paint("warning", f"NOT BLOCKING ({len(rest)})")]
        for i, cause in enumerate(rest, len(blocking) + 1):
            out += _cause_lines(i, cause, report, paint)
    return out


def _relaxed(report: Report) -> list[str]:
    """Findings a safe plan makes moot: shown under the plans, never as errors."""
    relaxed = [rf for rf in report.visible() if not rf.waived and not rf.blocking]
    if not relaxed:
        return []
    out = [f"  {common.not_blocking_note(report)}, so these do not block:"]
    for rf in relaxed:
        f = rf.finding
        out.append(f"      {f.kind} {f.subject} (fp {short_fingerprint(rf)}): {f.message}")
    return out


def _waivers(report: Report, paint: _Painter) -> list[str]:
    out: list[str] = []
    waived = common.waived_findings(report)
    if waived:
        out += ["", paint("dim", f"WAIVED ({len(waived)})")]
        for rf in waived:
            f, w = rf.finding, rf.waiver
            assert w is not None
            out.append(f"  [{rf.severity}] {f.kind} {f.subject}: {f.message}")
            out.append(f"      waived until {w.expires.isoformat()}: {w.reason} ({w.source})")
    for group in common.unapplied_waivers(report):
        out += ["", paint(group.tone, f"{group.title.upper()} ({len(group.waivers)})")]
        for w, what in group.waivers:
            out.append(f"  {common.waiver_text(w)}: {what}, {group.advice} ({w.source})")
    return out


def _migrations(report: Report, paint: _Painter) -> list[str]:
    mig = report.migrations
    if mig is None:
        return []
    out = ["", paint("bold", "MIGRATIONS")]
    out.append(f"  heads: OLD {mig.old_head} · NEW {mig.new_head}")
    path = common.downgrade_path_text(mig.downgrade_path or (), mig.old_head or "base")
    out.append(f"  downgrade path: {path}")
    for p in mig.plans:
        out.append(f"  {common.plan_title(report, p)}: {common.plan_status(p)}")
        out += [f"      {r}" for r in p.reasons]
        live = p.live_data_at_risk
        if live:
            out.append("      data at risk on the live database:")
            out += [f"        {line}" for line in live]
    out += _relaxed(report)
    advice = common.plan_advice(report)
    if advice and (report.go or common.chosen_plan(report) is None):
        out.append(f"  → {advice}")
    return out


def _verify(report: Report, paint: _Painter) -> list[str]:
    heading = common.verify_heading(report)
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
    summary = common.artifact_summary(report)
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


def _pending_advice(report: Report, causes: list[Cause]) -> list[str]:
    """On NO-GO, what to do once the blocking findings are resolved (below the verdict)."""
    plan, commands = common.rollback_steps(report)
    if report.go or (plan is None and not commands):
        return []
    out = ["", f"{common.advice_heading(report, causes)}:"]
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
        out.append(f"  {key}: {common.short_json(text, 300)}")
    return out


def render_text(report: Report, *, color: bool = False) -> str:
    """The report for a terminal; ANSI colour only when ``color`` (CLI: a TTY and no NO_COLOR)."""
    paint = _Painter(color)
    causes = build_causes(report)  # once per render: every section below counts the same causes
    # Notes come first: they say how far the verdict below can be trusted.
    lines = [paint("warning", f"NOTE: {note}") for note in report.notes]
    lines += _header(report, paint)
    lines += _findings(report, causes, paint)
    lines += _waivers(report, paint)
    lines += _migrations(report, paint)
    lines += _verify(report, paint)
    lines += _extras(report)
    lines += _artifact(report, paint)
    lines += ["", paint(report.verdict, summary_line(report, causes))]
    lines += _pending_advice(report, causes)
    total = report.timings.get("total")
    if total is not None:
        lines += ["", paint("dim", f"done in {total:.1f} s")]
    safe = [
        line if isinstance(line, _Painted) else common.printable(line, keep="\t") for line in lines
    ]
    return "\n".join(safe) + "\n"
