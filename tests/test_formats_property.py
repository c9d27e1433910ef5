"""The verdict does not depend on the exposition format; a change is found in any format.

Any registry prometheus_client can build (tests/registries.py: counters with and without
``_created``, gauges, histograms, summaries, info, enum, gauge histograms, with labels and units),
rendered by prometheus_client in text 0.0.4 and in OpenMetrics:

* text against OpenMetrics, both ways, is GO with no finding at all (not even an ``off`` one);
* dropping a family, a label or a bucket on one side gives exactly the findings that change
  predicts, whichever format each side is in.

Examples per test: the hypothesis profile (``HYPOTHESIS_PROFILE=thorough`` for many more).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.exposition import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, parse_text
from compatcheck.policy import default_policy
from compatcheck.report import Report
from compatcheck.snapshot import Snapshot
from tests.registries import (
    RENDER,
    Metric,
    drop_bucket,
    drop_family,
    drop_label,
    droppable_buckets,
    droppable_families,
    droppable_labels,
    entry_names,
    metrics,
)

CONTENT_TYPES = {"text": CONTENT_TYPE_TEXT, "openmetrics": CONTENT_TYPE_OPENMETRICS}
FORMATS = st.sampled_from(sorted(CONTENT_TYPES))
OPTIONS = EvaluateOptions(policy=default_policy())


def _snapshot(specs: Sequence[Metric], fmt: str, label: str) -> Snapshot:
    schema = parse_text(RENDER[fmt](specs), content_type=CONTENT_TYPES[fmt])
    return Snapshot(label=label, metrics=schema)


def _report(old: Sequence[Metric], old_fmt: str, new: Sequence[Metric], new_fmt: str) -> Report:
    return evaluate(_snapshot(old, old_fmt, "old"), _snapshot(new, new_fmt, "new"), OPTIONS)


@given(metrics())
def test_one_release_in_both_formats_is_go_without_findings(specs: list[Metric]) -> None:
    for old_fmt, new_fmt in (("text", "openmetrics"), ("openmetrics", "text")):
        report = _report(specs, old_fmt, specs, new_fmt)
        assert [(rf.finding.kind, rf.finding.subject) for rf in report.findings] == []
        assert report.verdict == "go"


@given(metrics(), st.data())
def test_a_change_is_found_whichever_format_each_side_uses(
    specs: list[Metric], data: st.DataObject
) -> None:
    choices = [
        name
        for name, found in (
            ("family", droppable_families(specs)),
            ("label", droppable_labels(specs)),
            ("bucket", droppable_buckets(specs)),
        )
        if found
    ]
    if not choices:
        return  # nothing but build info: see the test above
    what = data.draw(st.sampled_from(choices), label="mutation")
    # The rollback judges NEW → OLD: what only NEW has is removed, what only OLD has is added.
    side = data.draw(st.sampled_from(["old", "new"]), label="mutated side")
    if what == "family":
        i = data.draw(st.sampled_from(droppable_families(specs)))
        mutated = drop_family(specs, i)
        kind = "metrics/family-removed" if side == "old" else "metrics/family-added"
        expected = {(kind, n) for n in entry_names(specs[i])}
    elif what == "label":
        i, j = data.draw(st.sampled_from(droppable_labels(specs)))
        mutated = drop_label(specs, i, j)
        kind = "metrics/label-removed" if side == "old" else "metrics/label-added"
        label = specs[i].labels[j]
        expected = {(kind, f"{n}{{{label}}}") for n in entry_names(specs[i])}
    else:
        i, j = data.draw(st.sampled_from(droppable_buckets(specs)))
        mutated = drop_bucket(specs, i, j)
        expected = {("metrics/buckets-changed", specs[i].full_name)}
    old, new = (mutated, specs) if side == "old" else (specs, mutated)
    old_fmt = data.draw(FORMATS, label="OLD's format")
    new_fmt = data.draw(FORMATS, label="NEW's format")
    report = _report(old, old_fmt, new, new_fmt)
    assert {(rf.finding.kind, rf.finding.subject) for rf in report.findings} == expected
