"""GitHub/GitLab-flavoured Markdown for a pull-request or merge-request comment.

Messages are written with identifiers in backticks, so they are Markdown already; everything around
the code spans is escaped so that a label value such as ``a|b`` or ``<none>`` cannot break the
table or inject HTML, and unbalanced backticks are escaped instead of swallowing the rest of a cell.
"""

from __future__ import annotations

import html
import json
import re

from compatcheck.report import RatedFinding, Report, VersionInfo
from compatcheck.reporters import _common as common
from compatcheck.reporters.causes import Cause, build_causes, fixes, short_fingerprint, summary_line

#: Characters with a meaning in (GitHub-flavoured) Markdown text; backslash-escaped outside code.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_BACKTICKS = re.compile(r"`+")

#: GitHub rejects comments over 65,536 characters; stay clear of it with room for a footer.
COMMENT_LIMIT = 60_000


def escape_text(text: str, *, table: bool = False) -> str:
    """Escape plain text so it renders literally (newlines become spaces in a table cell)."""
    out = _SPECIAL.sub(r"\\\1", common.printable(text, keep="\n"))
    if table:
        out = " ".join(out.splitlines())
    return out


def code(text: str, *, table: bool = False) -> str:
    """``text`` as one code span, whatever backticks it contains (CommonMark: a longer fence).

    Trap: inside a table even a code span ends at ``|``; GFM lets ``\\|`` stand for it there.
    """
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    body = " ".join(common.printable(text, keep="\n").splitlines())
    if body.startswith("`") or body.endswith("`") or (body.startswith(" ") and body.strip()):
        body = f" {body} "
    if table:
        body = body.replace("|", "\\|")
    return f"{fence}{body}{fence}"


def inline(text: str, *, table: bool = False) -> str:
    """Render a message: its code spans stay code spans, the rest is escaped text.

    A backtick run opens a code span only when a run of the same length closes it later
    (CommonMark's rule); an unmatched run is escaped so it cannot swallow the rest of the cell.
    """
    out: list[str] = []
    pos = 0
    plain_start = 0
    while pos < len(text):
        if text[pos] != "`":
            pos += 1
            continue
        run = len(text) - len(text[pos:].lstrip("`"))
        n = run - pos
        closing = re.compile(rf"(?<!`){'`' * n}(?!`)")
        m = closing.search(text, run)
        if m is None:
            pos = run
            continue
        out.append(escape_text(text[plain_start:pos], table=table))
        out.append(code(text[run : m.start()], table=table))
        pos = plain_start = m.end()
    out.append(escape_text(text[plain_start:], table=table))
    return "".join(out)


def _fence(content: str) -> str:
    longest = max((len(m) for m in _BACKTICKS.findall(content)), default=0)
    return "`" * max(3, longest + 1)


def _details(summary: str, body: str, lang: str = "") -> list[str]:
    fence = _fence(body)
    return [
        "<details>",
        f"<summary>{html.escape(common.printable(summary))}</summary>",
        "",
        f"{fence}{lang}",
        body,
        fence,
        "",
        "</details>",
    ]


def _version_row(role: str, info: VersionInfo, note: str) -> str:
    build = common.build_text(info.build)
    source = code(info.source, table=True) if info.source else ""
    label = code(info.label, table=True)
    return f"| {role} ({note}) | {label} | {source} | {escape_text(build, table=True)} |"


def _header(report: Report, causes: list[Cause]) -> list[str]:
    verdict = "GO" if report.go else "NO-GO"
    if report.verify is not None:
        verdict = "VERIFIED" if report.go else "NOT VERIFIED"
    now, target = ("NEW", "OLD") if report.direction == "rollback" else ("OLD", "NEW")
    info = {"OLD": report.old, "NEW": report.new}
    return [
        f"## compatcheck: {verdict} for {escape_text(common.transition_text(report))}",
        "",
        f"**{escape_text(summary_line(report, causes))}**",
        "",
        "| version | label | source | build |",
        "|---|---|---|---|",
        _version_row(now, info[now], "running now"),
        _version_row(target, info[target], "target"),
    ]


def _evidence(rfs: list[RatedFinding]) -> list[str]:
    out: list[str] = []
    for rf in rfs:
        if not rf.finding.evidence:
            continue
        body = json.dumps(rf.finding.to_json()["evidence"], indent=2, sort_keys=True)
        out += ["", *_details(f"evidence: {rf.finding.kind} {rf.finding.subject}", body, "json")]
    return out


def _cause_row(n: int, cause: Cause, report: Report) -> str:
    rf = cause.primary
    f = rf.finding
    sev = cause.severity()
    if not cause.blocking(report.fail_on):
        sev += ", not blocking"
    what = (
        f"{code(f.kind, table=True)} {code(f.subject, table=True)} "
        f"(fp {code(short_fingerprint(rf), table=True)}): {inline(f.message, table=True)}"
    )
    for other in cause.related:
        what += f"<br>also {code(other.finding.kind, table=True)}: "
        what += inline(other.finding.message, table=True)
    effects = "<br>".join(
        escape_text(common.consumer_text(e.consumer), table=True) for e in cause.effects
    )
    fix = "<br>".join(inline(line, table=True) for line in fixes(cause, report))
    return f"| {n} | {sev} | {what} | {effects} | {fix} |"


def _findings(
    report: Report, causes: list[Cause], *, evidence: bool, max_rows: int | None
) -> list[str]:
    if not causes:
        out = ["", "No problems."]
    else:
        out = [
            "",
            "### Problems, causes first",
            "",
            "| # | severity | cause | breaks | how to fix |",
            "|---|---|---|---|---|",
        ]
        shown = causes if max_rows is None else causes[:max_rows]
        out += [_cause_row(i, c, report) for i, c in enumerate(shown, 1)]
        if len(shown) < len(causes):
            out += ["", f"... and {len(causes) - len(shown)} more problems: see the JSON report."]
        if not evidence:
            return [*out, "", "Evidence omitted to fit a comment: see the JSON report."]
        out += _evidence([rf for c in shown for rf in c.findings])
    relaxed = [rf for rf in report.visible() if not rf.waived and not rf.blocking]
    if relaxed:
        note = common.not_blocking_note(report)
        out += [
            "",
            f"**{escape_text(note[0].upper() + note[1:])}**, so these do not block:",
            "",
        ]
        out += [
            f"- {code(rf.finding.kind)} {code(rf.finding.subject)}: {inline(rf.finding.message)}"
            for rf in relaxed
        ]
        if evidence:
            out += _evidence(relaxed)
    return out


def _waivers(report: Report) -> list[str]:
    out: list[str] = []
    waived = common.waived_findings(report)
    if waived:
        out += [
            "",
            "### Waived",
            "",
            "| severity | kind | subject | message | reason | expires |",
            "|---|---|---|---|---|---|",
        ]
        for rf in waived:
            f, w = rf.finding, rf.waiver
            assert w is not None
            out.append(
                f"| {rf.severity} | {code(f.kind, table=True)} | {code(f.subject, table=True)} | "
                f"{inline(f.message, table=True)} | {escape_text(w.reason, table=True)} | "
                f"{w.expires.isoformat()} |"
            )
    for group in common.unapplied_waivers(report):
        out += ["", f"### {group.title}", ""]
        out += [
            f"- {code(common.waiver_text(w))} {what} "
            f"({escape_text(w.reason)}, {code(w.source)}): {group.advice}"
            for w, what in group.waivers
        ]
    return out


def _migrations(report: Report) -> list[str]:
    mig = report.migrations
    if mig is None:
        return []
    out = ["", "### Migrations", ""]
    old_head, new_head = code(str(mig.old_head)), code(str(mig.new_head))
    path = code(common.downgrade_path_text(mig.downgrade_path or (), mig.old_head or "base"))
    out.append(f"OLD head {old_head}, NEW head {new_head}; downgrade path: {path}")
    out.append("")
    if mig.plans:
        out += ["| plan | status | reasons |", "|---|---|---|"]
        for p in mig.plans:
            reasons = [inline(r, table=True) for r in p.reasons]
            live = p.live_data_at_risk
            if live:
                reasons.append(
                    "data at risk on the live database: "
                    + "; ".join(inline(str(line), table=True) for line in live)
                )
            title = code(p.name, table=True)
            role = common.plan_role(report, p)
            if role:
                title += f", {escape_text(role, table=True)}"
            out.append(
                f"| {title} | {inline(common.plan_status(p), table=True)} "
                f"| {'<br>'.join(reasons)} |"
            )
    advice = common.plan_advice(report)
    if advice and (report.go or common.chosen_plan(report) is None):
        out += ["", f"**{escape_text(advice[0].upper() + advice[1:])}.**"]
    return out


def _verify(report: Report) -> list[str]:
    heading = common.verify_heading(report)
    if report.verify is None or heading is None:
        return []
    out = ["", "### Verification", "", escape_text(heading), ""]
    out += ["| check | status | last result | query |", "|---|---|---|---|"]
    for c in report.verify.checks:
        result = [inline(c.summary, table=True)]
        result += [inline(d, table=True) for d in c.details]
        query = code(c.query, table=True) if c.query else ""
        out.append(
            f"| {code(c.name, table=True)} | {escape_text(c.status, table=True)} "
            f"| {'<br>'.join(result)} | {query} |"
        )
    return out


def _artifact(report: Report) -> list[str]:
    summary = common.artifact_summary(report)
    if summary is None:
        return []
    what, commands, note = summary
    out = ["", "### Artifact", "", escape_text(what)]
    if report.direction != "rollback":
        return out
    if commands and report.go:
        out += ["", "Rollback command:", "", "```sh", *commands, "```"]
    if note:
        out += ["", escape_text(note)]
    return out


def _pending_advice(report: Report, causes: list[Cause]) -> list[str]:
    """On NO-GO, the rollback steps framed as what to do once the blockers are resolved."""
    plan, commands = common.rollback_steps(report)
    if report.go or (plan is None and not commands):
        return []
    heading = common.advice_heading(report, causes)
    out = ["", f"### {escape_text(heading[0].upper() + heading[1:])}"]
    if plan:
        out += ["", escape_text(plan[0].upper() + plan[1:]) + "."]
    if commands:
        out += ["", "Rollback command:", "", "```sh", *commands, "```"]
    return out


def _extras(report: Report) -> list[str]:
    out: list[str] = []
    sections = dict(report.extras)
    if report.artifact is not None:
        sections["artifact"] = report.artifact.to_json()
    for key in sorted(sections):
        body = json.dumps(sections[key], indent=2, sort_keys=True, default=str)
        out += ["", *_details(key, body, "json")]
    return out


def _render(report: Report, causes: list[Cause], *, evidence: bool, max_rows: int | None) -> str:
    # Notes come first: they say how far the verdict below can be trusted.
    lines = [f"> **Note:** {escape_text(note)}" for note in report.notes]
    lines += [""] if lines else []
    lines += _header(report, causes)
    lines += _findings(report, causes, evidence=evidence, max_rows=max_rows)
    lines += _waivers(report)
    lines += _migrations(report)
    lines += _verify(report)
    lines += _artifact(report)
    lines += _pending_advice(report, causes)
    if evidence:
        lines += _extras(report)
    total = report.timings.get("total")
    if total is not None:
        lines += ["", f"_done in {total:.1f} s_"]
    return "\n".join(lines) + "\n"


def render_markdown(report: Report, *, color: bool = False, limit: int = COMMENT_LIMIT) -> str:
    """A PR comment; no emoji, so the status reads the same in mail, chat and screen readers.

    Past ``limit`` characters the evidence blocks go first, then table rows from the end (info
    before errors, since rows are ordered by severity); the verdict and counts always stay.
    """
    causes = build_causes(report)  # once, however often the comment is re-rendered to fit
    text = _render(report, causes, evidence=True, max_rows=None)
    if len(text) <= limit:
        return text
    rows = len(causes)
    text = _render(report, causes, evidence=False, max_rows=None)
    while len(text) > limit and rows > 0:
        rows = rows // 2 if len(text) > 2 * limit else rows - max(1, rows // 10)
        text = _render(report, causes, evidence=False, max_rows=rows)
    return text
