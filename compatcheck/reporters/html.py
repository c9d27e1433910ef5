"""One self-contained HTML page for a CI artifact: the verdict, causes first, the metric families
side by side, the migration path as a timeline with each plan's status, the waivers, the
post-rollback verification and OLD's artifact.

No script, no stylesheet link, no font, no image: the page is opened from a build's artifacts,
often offline or behind a strict Content-Security-Policy, and must render the same everywhere.
Every text goes through :func:`html.escape`, since messages quote service logs and label values.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from compatcheck.report import RatedFinding, Report, VersionInfo
from compatcheck.reporters import _common as common
from compatcheck.reporters.causes import Cause, build_causes, fixes, short_fingerprint, summary_line

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;
background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
h1{font-size:20px;margin:8px 0}
h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #d6d9df;padding-bottom:4px}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0}
.verdict{padding:14px 18px;border-radius:6px;font-size:18px;font-weight:700;color:#fff}
.verdict.go{background:#1f7a3a}.verdict.no-go{background:#b3261e}
.meta{color:#4a5160;margin:6px 0}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0}
th,td{border:1px solid #d6d9df;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef0f3}
.cause{background:#fff;border:1px solid #d6d9df;border-left:6px solid #999;border-radius:4px;
margin:10px 0;padding:10px 14px}
.cause.error{border-left-color:#b3261e}.cause.warning{border-left-color:#c77700}
.cause.info{border-left-color:#2a6fb0}
.sev{display:inline-block;font-size:12px;font-weight:700;padding:1px 6px;border-radius:3px;
color:#fff;background:#999;margin-right:6px}
.sev.error{background:#b3261e}.sev.warning{background:#c77700}.sev.info{background:#2a6fb0}
.fp{color:#6b7280;font-size:12px}
ol.timeline{list-style:none;padding:0;margin:6px 0}
ol.timeline li{border-left:3px solid #8a93a3;margin-left:8px;padding:2px 0 6px 12px}
.safe{color:#1f7a3a;font-weight:700}.unsafe{color:#b3261e;font-weight:700}
footer{color:#6b7280;margin:24px 0 8px;font-size:12px}
"""

_CODE = re.compile(r"`([^`]+)`")


def _e(text: object) -> str:
    return html.escape(common.printable(str(text), keep="\n"), quote=True)


def _inline(text: str) -> str:
    """A message with its backticked identifiers as ``<code>``, everything else escaped."""
    parts = _CODE.split(text)
    return "".join(f"<code>{_e(p)}</code>" if i % 2 else _e(p) for i, p in enumerate(parts))


def _version_row(role: str, info: VersionInfo, note: str) -> str:
    return (
        f"<tr><th>{_e(role)} ({_e(note)})</th><td><code>{_e(info.label)}</code></td>"
        f"<td><code>{_e(info.source)}</code></td><td>{_e(common.build_text(info.build))}</td></tr>"
    )


def _header(report: Report, causes: list[Cause]) -> list[str]:
    now, target = ("NEW", "OLD") if report.direction == "rollback" else ("OLD", "NEW")
    info = {"OLD": report.old, "NEW": report.new}
    out = [f"<h1>compatcheck {_e(common.transition_text(report))}</h1>"]
    out += [f'<p class="meta"><strong>Note:</strong> {_inline(n)}</p>' for n in report.notes]
    verdict = _e(summary_line(report, causes))
    out.append(f'<div class="verdict {report.verdict}" id="verdict">{verdict}</div>')
    if report.invocation:
        out.append(f'<p class="meta">ran: <code>{_e(report.invocation)}</code></p>')
    out += [
        "<table><tr><th>version</th><th>label</th><th>source</th><th>build</th></tr>",
        _version_row(now, info[now], "running now"),
        _version_row(target, info[target], "target"),
        "</table>",
    ]
    return out


def _evidence_table(rf: RatedFinding) -> str:
    ev = rf.finding.evidence
    if not ev:
        return ""
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td><pre>{_e(_value(ev[k]))}</pre></td></tr>" for k in sorted(ev)
    )
    return f"<details><summary>evidence</summary><table>{rows}</table></details>"


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, indent=1, sort_keys=True, default=str)


def _cause(n: int, cause: Cause, report: Report) -> list[str]:
    rf = cause.primary
    f = rf.finding
    sev = cause.severity()
    tag = sev if cause.blocking(report.fail_on) or sev == "error" else f"{sev}, not blocking"
    out = [
        f'<section class="cause {sev}" id="cause-{n}">',
        f'<div><span class="sev {sev}">{_e(tag)}</span><strong>{n}. <code>{_e(f.kind)}</code> '
        f'<code>{_e(f.subject)}</code></strong> <span class="fp">fp {_e(short_fingerprint(rf))}'
        "</span></div>",
        f"<p>{_inline(f.message)}</p>",
    ]
    for other in cause.related:
        out.append(
            f"<p>also <code>{_e(other.finding.kind)}</code>: {_inline(other.finding.message)}</p>"
        )
    if cause.effects:
        out.append(f"<p>Consequences ({len(cause.effects)}):</p><ul>")
        for effect in cause.effects:
            line = _e(common.consumer_text(effect.consumer))
            if effect.finding is not None:
                line += f"<br>{_inline(effect.finding.finding.message)}"
            out.append(f"<li>{line}</li>")
        out.append("</ul>")
    out.append("<p>How to fix:</p><ul>")
    out += [f"<li>{_inline(line)}</li>" for line in fixes(cause, report)]
    out.append("</ul>")
    out.append(_evidence_table(rf))
    out.append("</section>")
    return out


def _causes(report: Report, causes: list[Cause]) -> list[str]:
    if not causes:
        return ["<h2>Problems</h2>", "<p>No problems.</p>"]
    out = ["<h2>Problems, causes first</h2>"]
    for i, cause in enumerate(causes, 1):
        out += _cause(i, cause, report)
    return out


def _families(causes: list[Cause]) -> list[str]:
    """The metric families the causes are about, OLD and NEW side by side, from the evidence."""
    rows: list[str] = []
    for cause in causes:
        f = cause.primary.finding
        if not f.kind.startswith("metrics/"):
            continue
        ev: Mapping[str, Any] = f.evidence
        before, after = _sides(f.kind, ev)
        rows.append(
            f"<tr><td><code>{_e(ev.get('family', f.subject))}</code></td>"
            f"<td><code>{_e(f.kind)}</code></td><td>{_e(before)}</td><td>{_e(after)}</td></tr>"
        )
    if not rows:
        return []
    return [
        "<h2>Metric families, side by side</h2>",
        "<table><tr><th>family</th><th>change</th><th>running now</th><th>after</th></tr>",
        *rows,
        "</table>",
    ]


def _sides(kind: str, ev: Mapping[str, Any]) -> tuple[str, str]:
    """(what runs now, what the transition leads to) for one metrics finding's evidence."""
    if "renamed_to" in ev:
        return str(ev.get("family", "")), f"named {ev['renamed_to']}"
    if "removed" in ev or "added" in ev:
        removed, added = ev.get("removed") or [], ev.get("added") or []
        return (
            "has " + ", ".join(map(str, removed)) if removed else "",
            "has " + ", ".join(map(str, added)) if added else "",
        )
    if "before" in ev or "after" in ev:
        return str(ev.get("before", "")), str(ev.get("after", ""))
    if kind == "metrics/family-removed":
        return f"{ev.get('type', '')} {ev.get('labels', '')}", "absent"
    if kind == "metrics/family-added":
        return "absent", f"{ev.get('type', '')} {ev.get('labels', '')}"
    if "label" in ev:
        return f"label {ev['label']}", "no such label"
    return "", ""


def _migrations(report: Report) -> list[str]:
    mig = report.migrations
    if mig is None:
        return []
    out = [
        "<h2>Migrations</h2>",
        f"<p>heads: OLD <code>{_e(mig.old_head)}</code> · NEW <code>{_e(mig.new_head)}</code></p>",
        "<p>downgrade path:</p>",
        '<ol class="timeline">',
    ]
    steps = common.downgrade_path_text(mig.downgrade_path or (), mig.old_head or "base").split(
        " → "
    )
    out += [f"<li><code>{_e(s)}</code></li>" for s in steps]
    out.append("</ol>")
    for p in mig.plans:
        cls = "safe" if p.safe else "unsafe"
        out.append(
            f'<p><strong>{_e(common.plan_title(report, p))}</strong>: <span class="{cls}">'
            f"{_inline(common.plan_status(p))}</span></p>"
        )
        items = [*p.reasons, *p.live_data_at_risk]
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(r)}</li>" for r in items) + "</ul>")
    relaxed = [rf for rf in report.visible() if not rf.waived and not rf.blocking]
    if relaxed:
        out.append(f"<p>{_e(common.not_blocking_note(report))}, so these do not block:</p><ul>")
        out += [
            f"<li><code>{_e(rf.finding.kind)}</code> {_inline(rf.finding.message)}</li>"
            for rf in relaxed
        ]
        out.append("</ul>")
    advice = common.plan_advice(report)
    # As in the text report: on a NO-GO the plan is advice only once the blockers are resolved,
    # and the rollback steps below say so; it is not repeated here as an instruction.
    if advice and (report.go or common.chosen_plan(report) is None):
        out.append(f"<p><strong>{_inline(advice)}</strong></p>")
    return out


def _waivers(report: Report) -> list[str]:
    """Accepted findings with their reason and expiry, then the waivers that need attention:
    expired ones (their finding counts again) and ones that match nothing (to remove)."""
    out: list[str] = []
    waived = common.waived_findings(report)
    if waived:
        out += ['<h2 id="waived">Waived</h2>', "<ul>"]
        for rf in waived:
            w = rf.waiver
            assert w is not None
            out.append(
                f"<li>[{_e(rf.severity)}] <code>{_e(rf.finding.kind)}</code> "
                f"<code>{_e(rf.finding.subject)}</code>: {_inline(rf.finding.message)} — waived "
                f"until {_e(w.expires.isoformat())}: {_e(w.reason)} ({_e(w.source)})</li>"
            )
        out.append("</ul>")
    for group in common.unapplied_waivers(report):
        anchor = group.title.lower().replace(" ", "-")
        out += [f'<h2 id="{anchor}">{group.title}</h2>', "<ul>"]
        out += [
            f"<li><code>{_e(common.waiver_text(w))}</code>: {_e(what)}, {group.advice} "
            f"({_e(w.reason)}, {_e(w.source)})</li>"
            for w, what in group.waivers
        ]
        out.append("</ul>")
    return out


def _verify(report: Report) -> list[str]:
    """Post-rollback verification: each check's state at the last poll, failing ones with the
    query and the objects that fail it."""
    heading = common.verify_heading(report)
    if report.verify is None or heading is None:
        return []
    out = ['<h2 id="verify">Verification</h2>', f'<p class="meta">{_e(heading)}</p>']
    out.append("<table><tr><th>check</th><th>status</th><th>last result</th><th>query</th></tr>")
    for c in report.verify.checks:
        cls = {"ok": "safe", "failing": "unsafe"}.get(c.status, "")
        since = f" (since {c.ok_since})" if c.status == "ok" and c.ok_since else ""
        result = "<br>".join([_inline(c.summary + since), *(_inline(d) for d in c.details)])
        query = f"<code>{_e(c.query)}</code>" if c.query else ""
        out.append(
            f'<tr><td><code>{_e(c.name)}</code></td><td class="{cls}">{_e(c.status)}</td>'
            f"<td>{result}</td><td>{query}</td></tr>"
        )
    out.append("</table>")
    return out


def _artifact(report: Report) -> list[str]:
    """What was verified of OLD's artifact; the rollback command itself is in the steps (on
    GO) or waits for the problems to be resolved (on NO-GO), as in the text report."""
    summary = common.artifact_summary(report)
    if summary is None:
        return []
    what, _commands, note = summary
    out = ['<h2 id="artifact">Artifact</h2>', f"<p>{_inline(what)}</p>"]
    if note and report.direction == "rollback":
        out.append(f"<p>{_inline(note)}</p>")
    return out


def _steps(report: Report) -> list[str]:
    plan, commands = common.rollback_steps(report)
    if plan is None and not commands:
        return []
    out = [
        "<h2>Rollback steps" + ("" if report.go else ", once the problems are resolved") + "</h2>"
    ]
    if plan:
        out.append(f"<p>{_inline(plan)}</p>")
    if commands:
        out.append("<pre>" + _e("\n".join(commands)) + "</pre>")
    return out


def render_html(report: Report, *, color: bool = False) -> str:
    """The report as one HTML document with inline CSS only; ``color`` is ignored."""
    causes = build_causes(report)  # once per render: the verdict and the list count the same
    body: list[str] = []
    body += _header(report, causes)
    body += _causes(report, causes)
    body += _families(causes)
    body += _migrations(report)
    body += _waivers(report)
    body += _verify(report)
    body += _artifact(report)
    body += _steps(report)
    total = report.timings.get("total")
    if total is not None:
        body.append(f"<footer>done in {total:.1f} s</footer>")
    title = f"compatcheck: {report.verdict.upper()} for {common.transition_text(report)}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )
