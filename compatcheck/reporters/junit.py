"""JUnit XML, the format every CI system shows as test results (GitLab, Jenkins, Azure...).

One testsuite per area, one testcase per finding. Only findings that decide the verdict (blocking,
unwaived, at or above ``--fail-on``) are failures, so the red tests are exactly the reasons for a
no-go; waived findings are skipped, the rest pass with their message in ``system-out``. An area
with no findings gets one passing testcase, so a CI page shows a green check per area instead of
an empty suite that reads as "not run".
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from compatcheck.report import RatedFinding, Report
from compatcheck.reporters._common import (
    AREAS,
    area_of,
    consumer_text,
    not_blocking_note,
    plan_statuses,
    printable,
    transition_text,
    verify_statuses,
)
from compatcheck.reporters.causes import build_causes, summary_line

# Trap: XML 1.0 cannot carry most control characters (e.g. ESC from a coloured service log), nor
# lone surrogates, and ElementTree writes them anyway, producing a file CI parsers reject.
_XML_INVALID = re.compile("[\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", printable(text, keep="\t\n"))


def _details(rf: RatedFinding) -> str:
    f = rf.finding
    lines = [f"{f.kind} {f.subject}: {f.message}", f"severity: {rf.severity}"]
    lines += [f"used by {consumer_text(c)}" for c in f.consumers]
    if f.evidence:
        evidence = json.dumps(f.to_json()["evidence"], indent=2, sort_keys=True)
        lines += ["evidence:", evidence]
    lines.append(f"fingerprint: {f.fingerprint}")
    return _clean("\n".join(lines))


def _testcase(suite: ET.Element, area: str, rf: RatedFinding, report: Report) -> str:
    """Add the testcase for ``rf``; return its outcome: failure, skipped or passed."""
    f = rf.finding
    case = ET.SubElement(
        suite,
        "testcase",
        {"classname": f"compatcheck.{area}", "name": _clean(f"{f.kind} {f.subject}")},
    )
    if rf.waiver is not None:
        w = rf.waiver
        ET.SubElement(
            case,
            "skipped",
            {"message": _clean(f"waived until {w.expires.isoformat()}: {w.reason} ({w.source})")},
        )
        ET.SubElement(case, "system-out").text = _details(rf)
        return "skipped"
    if rf.counts_against(report.fail_on):
        failure = ET.SubElement(
            case, "failure", {"message": _clean(f.message), "type": f"{rf.severity}:{f.kind}"}
        )
        failure.text = _details(rf)
        return "failure"
    out = _details(rf)
    if not rf.blocking:
        out += "\n" + not_blocking_note(report)
    ET.SubElement(case, "system-out").text = out
    return "passed"


def _set_counts(elem: ET.Element, tests: int, failures: int, skipped: int) -> None:
    elem.set("tests", str(tests))
    elem.set("failures", str(failures))
    elem.set("errors", "0")
    elem.set("skipped", str(skipped))


def render_junit(report: Report, *, color: bool = False) -> str:
    """JUnit XML with counts on every suite and on the root; ``color`` is ignored."""
    root = ET.Element("testsuites", {"name": _clean(f"compatcheck {transition_text(report)}")})
    visible = report.visible()
    areas = list(AREAS) + sorted({area_of(rf.finding.kind) for rf in visible} - set(AREAS))
    totals = [0, 0, 0]
    for area in areas:
        suite = ET.SubElement(root, "testsuite", {"name": area})
        findings = [rf for rf in visible if area_of(rf.finding.kind) == area]
        outcomes = [_testcase(suite, area, rf, report) for rf in findings]
        if not outcomes:
            ET.SubElement(
                suite,
                "testcase",
                {"classname": f"compatcheck.{area}", "name": f"{area}: no findings"},
            )
            outcomes = ["passed"]
        counts = (len(outcomes), outcomes.count("failure"), outcomes.count("skipped"))
        _set_counts(suite, *counts)
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
    _set_counts(root, *totals)
    props = ET.Element("properties")
    for name, value in (
        ("verdict", report.verdict),
        ("summary", summary_line(report, build_causes(report))),  # as every format says it
        ("direction", report.direction),
        ("fail_on", report.fail_on),
        *plan_statuses(report),
        *verify_statuses(report),
    ):
        ET.SubElement(props, "property", {"name": name, "value": _clean(value)})
    # JUnit puts properties on a testsuite, not on the root; the first suite carries them.
    root[0].insert(0, props)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
