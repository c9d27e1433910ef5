"""The bridge rule file (checked by the real promtool) and the ``new or old`` rewrite."""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from compatcheck.checks.metrics import check_metrics
from compatcheck.consumers import render_bridge_rules, rewrite_query
from compatcheck.consumers.bridge import series_renames
from compatcheck.model import Finding, MetricFamily, MetricsSchema
from compatcheck.snapshot import load_snapshot

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "consumers"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("COMPATCHECK_REQUIRE_SERVERS") == "1":
            pytest.fail("promtool is not installed and COMPATCHECK_REQUIRE_SERVERS=1")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def _shop() -> tuple[MetricsSchema, MetricsSchema]:
    v1 = load_snapshot(ROOT / "shop" / "v1.json").metrics
    v2 = load_snapshot(ROOT / "shop" / "v2.json").metrics
    assert v1 is not None and v2 is not None
    return v2, v1


def _rules(text: str) -> list[tuple[str, str]]:
    doc = yaml.safe_load(text)
    if not doc["groups"]:
        return []
    return [(r["record"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def _schemas() -> dict[str, tuple[MetricsSchema, MetricsSchema]]:
    hist_b = MetricFamily(
        name="lat_seconds", type="histogram", labels=("route",), buckets=(0.1, math.inf)
    )
    hist_a = MetricFamily(
        name="latency_seconds", type="histogram", labels=("route",), buckets=(0.1, math.inf)
    )
    return {
        "shop": _shop(),
        "histogram": (
            MetricsSchema(families={"lat_seconds": hist_b}),
            MetricsSchema(families={"latency_seconds": hist_a}),
        ),
        "empty": (MetricsSchema(), MetricsSchema()),
    }


def _renamed(src: str, dst: str) -> Finding:
    """A metrics/renamed finding as the metrics checks write it (rollback: dst is OLD's name)."""
    evidence = {"family": src, "renamed_to": dst, "old_name": dst, "new_name": src}
    return Finding(
        "metrics/renamed", src, f"`{src}` is named `{dst}` after the transition.", evidence
    )


def test_shop_bridge_recreates_the_running_names() -> None:
    before, after = _shop()
    text = render_bridge_rules(check_metrics(before, after), before, after)
    assert _rules(text) == [
        ("shop_http_server_requests_total", "shop_http_requests_total"),
        ("shop_orders_created_total", "shop_orders_total"),
    ]
    assert "not recoverable (the target has no such label): payment_method" in text


def test_histogram_rename_bridges_every_series() -> None:
    before, after = _schemas()["histogram"]
    findings = [_renamed("lat_seconds", "latency_seconds")]
    assert _rules(render_bridge_rules(findings, before, after)) == [
        ("lat_seconds_bucket", "latency_seconds_bucket"),
        ("lat_seconds_count", "latency_seconds_count"),
        ("lat_seconds_sum", "latency_seconds_sum"),
    ]


def test_unit_rename_converts_values_and_leaves_out_buckets(tmp_path: Path) -> None:
    """`_seconds` recreated from `_milliseconds` is scaled; its `le` bounds cannot be, so no
    `_bucket` rule (alerts on seconds would otherwise see values 1000 times too large)."""
    hist_b = MetricFamily(name="lat_seconds", type="histogram", buckets=(0.1, math.inf))
    hist_a = MetricFamily(name="lat_milliseconds", type="histogram", buckets=(100, math.inf))
    size_b = MetricFamily(name="payload_bytes", type="gauge")
    size_a = MetricFamily(name="payload_seconds", type="gauge")
    before = MetricsSchema(families={"lat_seconds": hist_b, "payload_bytes": size_b})
    after = MetricsSchema(families={"lat_milliseconds": hist_a, "payload_seconds": size_a})
    findings = [
        _renamed("lat_seconds", "lat_milliseconds"),
        _renamed("payload_bytes", "payload_seconds"),
    ]
    text = render_bridge_rules(findings, before, after)
    assert _rules(text) == [
        ("lat_seconds_count", "lat_milliseconds_count"),
        ("lat_seconds_sum", "lat_milliseconds_sum * 0.001"),
    ]
    assert "# not bridged: `lat_seconds_bucket`: its `le` bounds are in `milliseconds`" in text
    assert "# not bridged: `payload_bytes`: `bytes` cannot be computed from `seconds`" in text
    # The `new or old` rewrite of a query never pairs seconds with milliseconds either.
    assert (
        rewrite_query(
            "rate(lat_seconds_sum[5m])",
            series_renames({"lat_seconds": "lat_milliseconds"}, before, after),
        )
        is None
    )
    assert rewrite_query(
        "rate(lat_seconds_count[5m])",
        series_renames({"lat_seconds": "lat_milliseconds"}, before, after),
    ) == ("(rate(lat_seconds_count[5m])) or (rate(lat_milliseconds_count[5m]))")
    if shutil.which("promtool"):
        f = tmp_path / "bridge.yml"
        f.write_text(text)
        run = subprocess.run(
            ["promtool", "check", "rules", str(f)], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_label_rename_uses_label_replace() -> None:
    old = load_snapshot(ROOT / "cases" / "old.json").metrics
    new = load_snapshot(ROOT / "cases" / "new.json").metrics
    assert old is not None and new is not None
    text = render_bridge_rules(check_metrics(new, old), new, old)
    assert _rules(text) == [
        ("queue_depth", 'label_replace(queue_depth, "queue", "$1", "queue_name", "(.*)")')
    ]


@pytest.mark.parametrize("case", ["shop", "histogram", "empty", "labels"])
def test_bridge_passes_promtool(case: str, tmp_path: Path) -> None:
    promtool = _promtool()
    if case == "labels":
        old = load_snapshot(ROOT / "cases" / "old.json").metrics
        new = load_snapshot(ROOT / "cases" / "new.json").metrics
        assert old is not None and new is not None
        before, after = new, old
    else:
        before, after = _schemas()[case]
    findings = check_metrics(before, after)
    if case == "histogram":
        findings.append(_renamed("lat_seconds", "latency_seconds"))
    f = tmp_path / "bridge.yml"
    text = render_bridge_rules(findings, before, after)
    assert len(_rules(text)) == {"shop": 2, "histogram": 3, "empty": 0, "labels": 1}[case]
    f.write_text(text)
    run = subprocess.run(
        [promtool, "check", "rules", str(f)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_bad_rule_file_fails_promtool(tmp_path: Path) -> None:
    """The promtool test can fail: an invalid record name is rejected."""
    promtool = _promtool()
    f = tmp_path / "bad.yml"
    f.write_text(
        "groups:\n  - name: x\n    rules:\n      - record: 'not a name'\n        expr: up\n"
    )
    run = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, timeout=60)
    assert run.returncode != 0


def test_rewrite_query() -> None:
    renames = {"a_total": "b_total"}
    assert rewrite_query("sum(rate(a_total[5m])) > 1", renames) == (
        "(sum(rate(a_total[5m])) > 1) or (sum(rate(b_total[5m])) > 1)"
    )
    assert rewrite_query("sum(rate(c_total[5m]))", renames) is None
    assert rewrite_query("scalar(a_total) + 1", renames) is None  # `or` needs vectors
    assert rewrite_query('a_total{x="$v"}[$__rate_interval]', renames, grafana=True) is None
    assert rewrite_query('rate(a_total{x="$v"}[$__rate_interval])', renames, grafana=True) == (
        '(rate(a_total{x="$v"}[$__rate_interval])) or (rate(b_total{x="$v"}[$__rate_interval]))'
    )


_SHAPES = [
    "sum(rate(a_total[5m])) > 1",
    "a_total",
    "-a_total",
    "a_total[5m]",
    "rate(a_total[5m:1m])",
    "scalar(a_total) + 1",
    "time() - a_total",
    "1 + 1",
    "a_total offset 5m",
    "a_total > bool 1",
    "absent(a_total)",
    "a_total # a comment",
    "a_total # a comment\n+ 1",
    'label_replace(a_total, "x", "$1", "y", "(.*)")',
    "sum by (a_total) (a_total)",
    "a_total and on (a_total) c",
    'topk($n, rate(a_total{x="$v"}[$__rate_interval])) > $threshold',
    "a_total offset $off",
    "($x)",
    "a_total * on (x) group_left (y) c",
    "histogram_quantile(0.9, sum by (le) (rate(a_total[5m])))",
]
_RENAMES = [
    {"a_total": "b_total"},
    {"a_total": "sum"},
    {"a_total": "b_offset"},
    {"a_total": "b:total"},
    {"a_total": "b.total"},
    {"a_total": "b_total", "c": "by"},
]


@functools.cache
def _rewrite_texts() -> tuple[str, ...]:
    """The shapes above and every expression of the consumer fixtures (read once, not per case)."""
    from compatcheck.consumers import load_consumers

    texts = list(_SHAPES)
    for f in sorted(ROOT.rglob("*")):
        if f.suffix in (".yml", ".yaml", ".json") and f.is_file():
            texts += [e.text for e in load_consumers([f]).expressions]
    return tuple(texts)


@pytest.mark.parametrize("renames", _RENAMES, ids=str)
@pytest.mark.parametrize("grafana", [False, True])
def test_rewrite_of_a_vector_query_needs_no_second_parse(
    renames: dict[str, str], grafana: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rewrite of a query known to be an instant vector is not parsed again: the answer
    must be the parser's own, for every shape and rename (keywords, comments, odd names)."""
    from compatcheck.consumers import bridge
    from compatcheck.consumers.promql import PromQLError, parse_consumer, parse_promql

    parses: list[str] = []

    def counted(text: str, grafana: bool = False) -> object:
        parses.append(text)
        return parse_promql(text, grafana)

    monkeypatch.setattr(bridge, "parse_promql", counted)
    fast = 0
    for text in _rewrite_texts():
        try:
            vector = parse_consumer(text, grafana).vector
        except PromQLError:
            continue
        asked = rewrite_query(text, renames, grafana)
        parses.clear()
        assert rewrite_query(text, renames, grafana, vector=vector) == asked, text
        fast += vector and asked is not None and not parses
    if renames == {"a_total": "b_total"}:
        assert fast >= 5  # the shortcut was taken (no parse at all), and agreed


def test_cli_diff_names_the_broken_consumers_and_writes_a_valid_bridge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compatcheck diff v1 v2 --consumers DIR --emit-bridge-rules FILE` on the shop fixtures."""
    import json

    from compatcheck.cli import main

    shop = ROOT / "shop"
    bridge = tmp_path / "bridge.yml"
    argv = ["diff", str(shop / "v1.json"), str(shop / "v2.json"), "--consumers", str(shop)]
    code = main([*argv, "--format", "json", "--emit-bridge-rules", str(bridge)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["verdict"] == "no-go"
    expected = yaml.safe_load((shop / "expected.yaml").read_text())
    got = {
        (f["kind"], f["subject"]) for f in report["findings"] if f["kind"].startswith("consumers/")
    }
    assert got == {(row[0], row[1]) for row in expected["flagged"]}
    assert _rules(bridge.read_text()) == [
        ("shop_http_server_requests_total", "shop_http_requests_total"),
        ("shop_orders_created_total", "shop_orders_total"),
    ]
    run = subprocess.run(
        [_promtool(), "check", "rules", str(bridge)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
