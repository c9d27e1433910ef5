"""PromQL reduction: variables, selectors, and which labels each selector is asked for."""

from __future__ import annotations

import pytest

from compatcheck.consumers.promql import (
    Op,
    PromQLError,
    Selector,
    parse_expression,
    rename_metrics,
    selectors,
    substitute_variables,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rate(x[$__rate_interval])", "rate(x[5m])"),
        ("rate(x[${__interval}])", "rate(x[5m])"),
        ("rate(x[$__range])", "rate(x[5m])"),
        ("rate(x[$window]) offset $shift", "rate(x[5m]) offset 5m"),
        ("max_over_time(x[${__range_s}s:$__interval])", "max_over_time(x[300s:5m])"),
        (
            'x{job="$job", i=~"${instance:regex}"}',
            'x{job="__grafana_job", i=~"__grafana_instance"}',
        ),
        ('x{q=~"[[queue]]"}', 'x{q=~"__grafana_queue"}'),
        ("sum by ($label) (x)", "sum by (__grafana_label) (x)"),
        ('label_replace(x, "a", "$1", "b", "(.*)")', 'label_replace(x, "a", "$1", "b", "(.*)")'),
        (
            'label_replace(x, "a", "${1}", "b", "(.*)")',
            'label_replace(x, "a", "${1}", "b", "(.*)")',
        ),
        ("x / $__interval_ms", "x / 1"),
        ("plain_metric", "plain_metric"),
    ],
)
def test_substitute_variables(text: str, expected: str) -> None:
    assert substitute_variables(text) == expected


def test_a_variable_standing_for_a_number_parses() -> None:
    node = parse_expression("topk($n, rate(x_total[$__rate_interval])) > $threshold", grafana=True)
    assert [s.name for s in selectors(node)] == ["x_total"]


def _needs(text: str) -> dict[str, set[tuple[str, str]]]:
    return {s.text: set(s.needs) for s in selectors(parse_expression(text))}


def test_labels_are_attributed_to_their_own_subtree() -> None:
    got = _needs(
        "sum by (job) (rate(a_total[5m])) * on (job) group_left (team) max by (job, team) (b_info)"
    )
    assert got == {"a_total": {("job", "by")}, "b_info": {("job", "by"), ("team", "by")}}
    got = _needs("a_total * on (instance) group_left (team) b_info")
    assert got == {
        "a_total": {("instance", "on")},
        "b_info": {("instance", "on"), ("team", "group_left")},
    }
    got = _needs("b_info * on (instance) group_right (team) a_total")
    assert got == {
        "b_info": {("instance", "on"), ("team", "group_right")},
        "a_total": {("instance", "on")},
    }


def test_label_replace_and_join_sources() -> None:
    got = _needs('sum by (owner) (label_replace(x, "owner", "$1", "team", "(.*)"))')
    assert got == {"x": {("team", "label_replace")}}
    got = _needs('label_join(x, "pair", "-", "a", "b")')
    assert got == {"x": {("a", "label_join"), ("b", "label_join")}}


def test_histogram_quantile_needs_le_and_outer_labels() -> None:
    got = _needs("histogram_quantile(0.9, sum by (le, route) (rate(h_bucket[5m])))")
    assert got == {"h_bucket": {("le", "by"), ("route", "by")}}
    got = _needs("sum by (route) (histogram_quantile(0.9, rate(h_bucket[5m])))")
    assert got == {"h_bucket": {("route", "by"), ("le", "le")}}


def test_without_passes_outer_needs_but_drops_its_labels() -> None:
    assert _needs("sum by (a) (sum without (b) (x))") == {"x": {("a", "by")}}
    assert _needs("sum by (b) (sum without (b) (x))") == {"x": set()}
    assert _needs("sum(x)") == {"x": set()}
    assert _needs("topk by (a) (3, x)") == {"x": {("a", "by")}}
    assert _needs('count_values by (a) ("v", x)') == {"x": {("a", "by")}}


def test_one_to_one_on_keeps_only_matching_labels() -> None:
    # `b` cannot survive `/ on (a)`, so it is asked of neither side; `a` is asked twice
    both = {("a", "on"), ("a", "by")}
    assert _needs("sum by (a, b) (x / on (a) y)") == {"x": both, "y": both}
    assert _needs("sum by (a, b) (x / ignoring (b) y)") == {"x": {("a", "by")}, "y": {("a", "by")}}
    assert _needs("sum by (a) (x / y)") == {"x": {("a", "by")}, "y": {("a", "by")}}


def test_operators_that_change_meaning_are_kept() -> None:
    node = parse_expression("absent(x) or (y unless on (a) z) or vector(0)")
    assert isinstance(node, Op) and node.kind == "or"
    lhs, rhs = node.children
    assert isinstance(lhs, Op) and lhs.kind == "or"
    assert rhs == Op("all", ())  # vector(0): a constant
    absent, unless = lhs.children
    assert isinstance(absent, Op) and absent.kind == "absent"
    assert isinstance(unless, Op) and unless.kind == "unless"
    # both sides of `unless on (a)` are matched on `a`
    assert [s.needs for s in selectors(unless)] == [{("a", "on")}, {("a", "on")}]


def test_name_matchers() -> None:
    (a,) = selectors(parse_expression('{__name__="x_total", job="j"}'))
    assert (a.name, a.name_regex, [m.label for m in a.matchers]) == ("x_total", None, ["job"])
    (b,) = selectors(parse_expression('{__name__=~"x_.*"}'))
    assert (b.name, b.name_regex) == (None, "x_.*")


def test_alert_template_needs_reach_the_selector() -> None:
    node = parse_expression("rate(x[5m]) > 1", root_needs=frozenset({("team", "template")}))
    (sel,) = selectors(node)
    assert isinstance(sel, Selector) and sel.needs == {("team", "template")}


def test_parse_error_is_one_line() -> None:
    with pytest.raises(PromQLError) as err:
        parse_expression("sum(rate(x[5m])")
    assert "\n" not in str(err.value) and str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rate(old_total[5m])", "rate(new_total[5m])"),
        (
            'sum by (old_total) (old_total{old_total="old_total"})',
            'sum by (old_total) (new_total{old_total="old_total"})',
        ),
        ("old_total_bucket + old_total", "old_total_bucket + new_total"),
        (
            "rate(old_total[$__rate_interval]) / $old_total",
            "rate(new_total[$__rate_interval]) / $old_total",
        ),
        (
            "old_total offset 5m and on (old_total) old_total",
            "new_total offset 5m and on (old_total) new_total",
        ),
    ],
)
def test_rename_metrics_touches_only_metric_names(text: str, expected: str) -> None:
    assert rename_metrics(text, {"old_total": "new_total"}) == expected
