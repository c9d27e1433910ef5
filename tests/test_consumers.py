"""Consumers end to end: load the fixture folders, judge them, compare with the expectation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck.checks.metrics import check_metrics
from compatcheck.consumers import check_consumers, load_consumers
from compatcheck.errors import InputError
from compatcheck.model import Finding, MetricFamily, MetricsSchema
from compatcheck.snapshot import load_snapshot

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "consumers"
CASES = {"cases": ("old.json", "new.json"), "shop": ("v1.json", "v2.json")}


def _schemas(case: str) -> tuple[MetricsSchema, MetricsSchema]:
    """(before, after) of a rollback: before is NEW (running), after is OLD (target)."""
    old, new = CASES[case]
    o = load_snapshot(ROOT / case / old).metrics
    n = load_snapshot(ROOT / case / new).metrics
    assert o is not None and n is not None
    return n, o


def _outcome(case: str) -> tuple[list[Finding], set[str]]:
    before, after = _schemas(case)
    consumers = load_consumers([ROOT / case])
    findings = check_consumers(consumers, before, after, check_metrics(before, after))
    return findings, set(consumers.consumers)


def _row(finding: Finding, folder: Path) -> tuple[Any, ...]:
    if finding.consumers:
        c = finding.consumers[0]
        file, line = c.file, c.line
    else:
        file, line = finding.evidence["file"], finding.evidence["line"]
    rel = Path(file).relative_to(folder).as_posix()
    return (finding.kind, finding.subject, rel, line, finding.evidence.get("effect"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixture_folder_flags_exactly_the_expected_consumers(case: str) -> None:
    expected = yaml.safe_load((ROOT / case / "expected.yaml").read_text())
    findings, subjects = _outcome(case)
    flagged = [f for f in findings if f.kind.startswith("consumers/")]
    got = {_row(f, ROOT / case) for f in flagged}
    assert got == {tuple(r) for r in expected["flagged"]}
    assert len(got) == len(flagged)  # one finding per (kind, subject)
    quiet = subjects - {f.subject for f in flagged}
    assert quiet == set(expected["not_flagged"])


def _nth_line(path: Path, pattern: str, n: int = 1) -> int:
    hits = [
        i for i, line in enumerate(path.read_text().splitlines(), 1) if re.search(pattern, line)
    ]
    return hits[n - 1]


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_lines_agree_with_a_plain_text_search(case: str) -> None:
    """The YAML node marks must point at the ``- alert: X`` / ``- record: X`` line itself."""
    consumers = load_consumers([ROOT / case])
    seen: dict[tuple[str, str], int] = {}
    checked = 0
    for e in consumers.expressions:
        c = e.consumer
        if c.type not in ("alert", "record"):
            continue
        key = (c.file, c.type + c.name)
        seen[key] = seen.get(key, 0) + 1
        pattern = rf"^\s*- {c.type}: {re.escape(c.name)}\s*$"
        assert c.line == _nth_line(Path(c.file), pattern, seen[key]), c
        checked += 1
    assert checked > 10


def test_panel_and_target_lines_are_exact() -> None:
    consumers = load_consumers([ROOT / "cases" / "dashboards" / "api.json"])
    by_subject = {e.subject: e for e in consumers.expressions}
    text = (ROOT / "cases" / "dashboards" / "api.json").read_text().splitlines()
    in_flight = by_subject["panel:API/In-flight"]
    assert text[in_flight.consumer.line - 1].strip() == "{"  # type: ignore[operator]
    assert '"id": 11' in text[in_flight.consumer.line + 1]  # type: ignore[operator]
    assert "api_inflight_requests" in text[in_flight.line - 1]  # type: ignore[operator]
    team = by_subject["variable:API/team"]
    assert '"name": "team"' in text[team.consumer.line + 1]  # type: ignore[operator]
    assert "label_values(api_requests_total" in text[team.line - 1]  # type: ignore[operator]


def test_minified_dashboard_lines(tmp_path: Path) -> None:
    """A one-line export and a reformatted copy locate the same panels, each on its own line."""
    source = json.loads((ROOT / "shop" / "dashboards" / "shop.json").read_text())
    one = tmp_path / "one.json"
    one.write_text(json.dumps(source))
    spread = tmp_path / "spread.json"
    spread.write_text(json.dumps(source, indent=4))
    a = load_consumers([one])
    b = load_consumers([spread])
    assert [e.subject for e in a.expressions] == [e.subject for e in b.expressions]
    assert {e.line for e in a.expressions} == {1}
    lines = spread.read_text().splitlines()
    for e in b.expressions:
        assert json.dumps(e.text)[1:-1] in lines[e.line - 1]  # type: ignore[operator]


def test_metric_findings_list_the_consumers_they_break() -> None:
    findings, _ = _outcome("shop")
    attached = {
        (f.kind, f.subject): sorted(c.name for c in f.consumers)
        for f in findings
        if f.kind.startswith("metrics/")
    }
    assert attached == {
        ("metrics/renamed", "shop_http_server_requests_total"): [
            "Requests by route",
            "ShopErrorsBurst",
            "ShopHighErrorRate",
            "ShopNoTraffic",
            "queries.promql:2",
            "route",
            "shop:http_requests:rate5m",
        ],
        ("metrics/renamed", "shop_orders_created_total"): [
            "Orders by payment method",
            "ShopCardPaymentsFailing",
            "ShopOrdersFailing",
        ],
        ("metrics/label-removed", "shop_orders_created_total{payment_method}"): [
            "Orders by payment method",
            "ShopCardPaymentsFailing",
        ],
        ("metrics/family-removed", "shop_db_pool_connections"): [
            "DB pool in use",
            "ShopDbPoolExhausted",
            "ShopDbPoolMetricsAbsent",
            "queries.promql:3",
        ],
        ("metrics/buckets-changed", "shop_request_duration_seconds"): [
            "Requests under 25ms",
            "ShopLatencyHigh",
            "p99 latency",
        ],
        ("metrics/build-info-missing", "build_info"): [],
    }


def test_evidence_of_a_renamed_metric_has_consumer_chain_and_rewrite() -> None:
    findings, _ = _outcome("shop")
    by = {(f.kind, f.subject): f for f in findings}
    rate = by[("consumers/query-broken", "alert:ShopHighErrorRate")]
    assert rate.evidence["chain"] == ["record:shop:http_requests:rate5m"]
    assert rate.evidence["missing_metric"] == "shop_http_server_requests_total"
    assert "rewrite" not in rate.evidence  # the fix belongs to the record, not to its reader
    assert rate.evidence["consumer"] == rate.consumers[0].to_json()
    record = by[("consumers/query-broken", "record:shop:http_requests:rate5m")]
    assert record.evidence["rewrite"] == (
        "(sum by (route, status) (rate(shop_http_server_requests_total[5m]))) or "
        "(sum by (route, status) (rate(shop_http_requests_total[5m])))"
    )
    card = by[("consumers/query-broken", "alert:ShopCardPaymentsFailing")]
    assert card.evidence["unrecoverable_labels"] == ["payment_method"]
    assert "rewrite" not in card.evidence  # the old name cannot match payment_method="card"
    panel = by[("consumers/query-broken", "panel:Shop/Requests by route")]
    assert panel.evidence["rewrite"] == (
        '(sum by (route) (rate(shop_http_server_requests_total{route=~"$route"}'
        "[$__rate_interval]))) or "
        '(sum by (route) (rate(shop_http_requests_total{route=~"$route"}[$__rate_interval])))'
    )
    assert panel.evidence["line"] == 14
    assert panel.consumers[0].id == 1 and panel.consumers[0].dashboard == "Shop"


def test_semantics_evidence() -> None:
    findings, _ = _outcome("cases")
    by = {(f.kind, f.subject): f for f in findings}
    assert by[("consumers/query-broken", "alert:ApiErrorRatio")].evidence["chain"] == [
        "record:api:errors:ratio5m",
        "record:api:errors:rate5m",
    ]
    queue = by[("consumers/query-broken", "alert:QueueStuck")].evidence
    assert (queue["missing_label"], queue["needed_by"], queue["label_renamed_to"]) == (
        "queue",
        "matcher",
        "queue_name",
    )
    template = by[("consumers/query-broken", "alert:ApiTeamTemplate")].evidence
    assert (template["missing_label"], template["needed_by"]) == ("team", "template")
    # `le="0.01"` selects a bucket the target lacks: the query is broken, not merely dependent.
    fast = by[("consumers/query-broken", "alert:ApiFastRequestsDrop")]
    assert (fast.evidence["missing_bucket"], fast.evidence["removed"], fast.evidence["added"]) == (
        "0.01",
        ["0.01"],
        ["5"],
    )
    assert 'has no bucket `le="0.01"`' in fast.message


def test_deploy_direction_flags_what_the_old_names_lose() -> None:
    """The same consumers judged for a roll-forward v1 → v2: the v1-only alert breaks instead."""
    new, old = _schemas("shop")
    consumers = load_consumers([ROOT / "shop"])
    findings = check_consumers(consumers, old, new, check_metrics(old, new))
    got = {(f.kind, f.subject) for f in findings if f.kind.startswith("consumers/")}
    assert got == {
        ("consumers/query-broken", "alert:ShopOrdersLegacyName"),
        ("consumers/query-broken", "query:queries.promql:4"),
        ("consumers/bucket-dependent", "alert:ShopLatencyHigh"),
        ("consumers/bucket-dependent", "panel:Shop/p99 latency"),
    }


def test_without_metric_findings_the_schemas_still_decide() -> None:
    before, after = _schemas("shop")
    consumers = load_consumers([ROOT / "shop"])
    with_f = {
        (f.kind, f.subject)
        for f in check_consumers(consumers, before, after, check_metrics(before, after))
        if f.kind.startswith("consumers/")
    }
    without = {(f.kind, f.subject) for f in check_consumers(consumers, before, after, [])}
    assert with_f == without


def test_missing_path_is_one_line_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_consumers([tmp_path / "nope"])
    assert str(err.value) == f"{tmp_path / 'nope'}: no such file or folder"


def test_explicit_file_that_is_no_consumer_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "deploy.yaml"
    f.write_text("apiVersion: apps/v1\nkind: Deployment\n")
    got = load_consumers([f])
    assert [(x.kind, x.subject, x.evidence["error"]) for x in got.findings] == [
        (
            "consumers/parse-error",
            "file:deploy.yaml",
            "not a Prometheus rule file or PrometheusRule",
        )
    ]


def test_broken_document_keeps_the_documents_before_it(tmp_path: Path) -> None:
    f = tmp_path / "multi.yml"
    f.write_text(
        "groups:\n- name: a\n  rules:\n  - alert: First\n    expr: up == 0\n"
        "---\ngroups: [unclosed\n"
    )
    got = load_consumers([f])
    assert [e.subject for e in got.expressions] == ["alert:First"]
    assert [(x.subject, x.evidence["line"]) for x in got.findings] == [("file:multi.yml", 8)]


def test_malformed_rules_are_reported_with_their_line(tmp_path: Path) -> None:
    f = tmp_path / "rules.yml"
    f.write_text(
        "groups:\n"
        "  - name: g\n"
        "    rules:\n"
        "      - alert: NoExpr\n"
        "        for: 5m\n"
        "      - record: a:b\n"
        "        alert: Both\n"
        "        expr: up\n"
        "      - alert: Fine\n"
        "        expr: up == 0\n"
    )
    got = load_consumers([f])
    assert [e.subject for e in got.expressions] == ["alert:Fine"]
    (finding,) = got.findings
    assert finding.evidence["errors"] == [
        {"line": 4, "error": "rule `NoExpr` has no `expr`"},
        {"line": 6, "error": "a rule needs exactly one of `alert` or `record`"},
    ]


def test_duplicate_titles_and_untitled_panels_get_distinct_subjects(tmp_path: Path) -> None:
    dash = {
        "title": "D",
        "panels": [
            {"id": 7, "title": "Same", "targets": [{"expr": "a"}]},
            {"id": 8, "title": "Same", "targets": [{"expr": "b"}]},
            {"id": 9, "targets": [{"expr": "c"}, {"expr": "d"}]},
        ],
    }
    f = tmp_path / "d.json"
    f.write_text(json.dumps(dash, indent=1))
    got = load_consumers([f, f])  # the same file twice: qualified with the file, then numbered
    assert sorted(got.consumers) == [
        "panel:D/#9@d.json#1",
        "panel:D/#9@d.json#2",
        "panel:D/Same#7@d.json#1",
        "panel:D/Same#7@d.json#2",
        "panel:D/Same#8@d.json#1",
        "panel:D/Same#8@d.json#2",
    ]
    single = load_consumers([f])
    assert sorted(single.consumers) == ["panel:D/#9", "panel:D/Same#7", "panel:D/Same#8"]
    assert [e.where for e in single.expressions if e.subject == "panel:D/#9"] == [
        "target 0",
        "target 1",
    ]


def test_a_loaded_bridge_file_counts_as_a_fix(tmp_path: Path) -> None:
    from compatcheck.consumers import render_bridge_rules

    before, after = _schemas("shop")
    metric = check_metrics(before, after)
    bridge = tmp_path / "bridge.yml"
    bridge.write_text(render_bridge_rules(metric, before, after))
    consumers = load_consumers([ROOT / "shop", bridge])
    got = {
        (f.kind, f.subject)
        for f in check_consumers(consumers, before, after, metric)
        if f.kind.startswith("consumers/")
    }
    # Renames are bridged; what remains is what no rule can bring back.
    assert got == {
        ("consumers/bucket-dependent", "alert:ShopLatencyHigh"),
        ("consumers/bucket-dependent", "panel:Shop/p99 latency"),
        ("consumers/query-broken", "alert:ShopDbPoolExhausted"),
        ("consumers/query-broken", "panel:Shop (legacy)/Requests under 25ms"),
        ("consumers/query-broken", "alert:ShopDbPoolMetricsAbsent"),
        ("consumers/query-broken", "panel:Shop/DB pool in use"),
        ("consumers/query-broken", "query:queries.promql:3"),
    }


def test_record_cycle_terminates() -> None:
    fam = MetricFamily(name="x_total", type="counter", labels=("a",))
    before = MetricsSchema(families={"x_total": fam})
    after = MetricsSchema(families={})
    from compatcheck.consumers.load import ConsumerSet, Expression
    from compatcheck.consumers.promql import parse_expression
    from compatcheck.model import Consumer

    def rec(name: str, expr: str) -> Expression:
        c = Consumer(type="record", name=name, file="r.yml", line=1)
        return Expression(f"record:{name}", c, expr, 2, name, parse_expression(expr))

    cs = ConsumerSet(
        (rec("a:x", "b:x + x_total"), rec("b:x", "a:x")),
        (),
        {},
    )
    cs = ConsumerSet(cs.expressions, (), {e.subject: e.consumer for e in cs.expressions})
    got = {
        (f.subject, tuple(f.evidence.get("chain", ())))
        for f in check_consumers(cs, before, after, [])
    }
    assert got == {("record:a:x", ()), ("record:b:x", ("record:a:x",))}


def test_non_prometheus_targets_are_skipped(tmp_path: Path) -> None:
    dash = {
        "title": "Mixed",
        "panels": [
            {
                "id": 1,
                "title": "Logs",
                "datasource": "Loki (prod)",
                "targets": [{"expr": '{a="b"} |= "x"'}],
            },
            {
                "id": 2,
                "title": "Both",
                "datasource": {"type": "datasource", "uid": "-- Mixed --"},
                "targets": [
                    {"expr": "rate(x_total[5m])", "datasource": {"type": "prometheus"}},
                    {"expr": 'count_over_time({a="b"}[5m])', "datasource": {"type": "loki"}},
                ],
            },
        ],
    }
    f = tmp_path / "mixed.json"
    f.write_text(json.dumps(dash))
    got = load_consumers([f])
    assert [(e.subject, e.text) for e in got.expressions] == [
        ("panel:Mixed/Both", "rate(x_total[5m])")
    ]
    assert got.findings == ()


def test_gc_stays_off_while_any_thread_loads_and_comes_back_on_after_the_last() -> None:
    """The hook loads and judges in several threads: the first one out must not turn the
    collector on under another still inside, nor the last one leave it off (nor an error)."""
    import gc
    import threading

    from compatcheck.consumers.collector import gc_paused

    assert gc.isenabled()
    inside, leave_first, first_left = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with gc_paused():
            inside.set()
            assert leave_first.wait(10)
        first_left.set()

    worker = threading.Thread(target=first)
    worker.start()
    try:
        assert inside.wait(10)
        with pytest.raises(RuntimeError), gc_paused():
            assert not gc.isenabled()
            leave_first.set()
            assert first_left.wait(10)
            assert not gc.isenabled()  # the first thread left; this one is still loading
            raise RuntimeError("a broken file")
        assert gc.isenabled()
    finally:
        leave_first.set()
        worker.join(10)
        gc.enable()
