"""The exposition reader: every edge case with its exact schema, every error with its line."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from compatcheck.errors import ExpositionError, InputError
from compatcheck.exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    is_openmetrics,
    parse_stream,
    parse_text,
    read_exposition_file,
    stream,
)
from compatcheck.model import LABEL_VALUE_CAP, MetricFamily, MetricsSchema
from tests._support import sampled

OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"
INF = math.inf


def both_paths(text: str, content_type: str = "") -> MetricsSchema:
    """Parse with the fast path and with the slow path only; they must agree."""
    fast = parse_text(text, content_type=content_type)
    slow = stream._parse_text(text, content_type, fast_path=False)
    assert fast == slow
    assert parse_stream([text.encode()], content_type=content_type) == fast
    return fast


def only(schema: MetricsSchema) -> MetricFamily:
    assert len(schema.families) == 1, sorted(schema.families)
    return next(iter(schema.families.values()))


def error_of(text: str, content_type: str = "") -> tuple[int, str]:
    with pytest.raises(ExpositionError) as info:
        parse_text(text, content_type=content_type)
    slow = pytest.raises(ExpositionError)
    with slow as slow_info:
        stream._parse_text(text, content_type, fast_path=False)
    assert (slow_info.value.line, slow_info.value.reason) == (info.value.line, info.value.reason)
    return info.value.line, info.value.reason


# -- families, names and types ------------------------------------------------------------------


def test_counter_and_gauge_in_text_format() -> None:
    schema = both_paths(
        "# HELP http_requests_total Requests served.\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{method="GET",code="200"} 1027\n'
        'http_requests_total{method="POST",code="200"} 3\n'
        'http_requests_total{method="GET",code="500"} 1\n'
        "# TYPE temperature_celsius gauge\n"
        "temperature_celsius 21.5\n"
    )
    assert schema.content_type == CONTENT_TYPE_TEXT
    assert schema.families == {
        "http_requests_total": sampled(
            "http_requests_total",
            "counter",
            help="Requests served.",
            labels=("code", "method"),
            label_values={"code": ("200", "500"), "method": ("GET", "POST")},
            series=3,
        ),
        "temperature_celsius": sampled("temperature_celsius", "gauge", series=1),
    }


def test_text_counter_without_total_keeps_its_name() -> None:
    # prometheus_client would call this family `jobs` and rename its samples `jobs_total`;
    # PromQL selects `jobs`.
    fam = only(both_paths("# TYPE jobs counter\njobs 3\n"))
    assert (fam.name, fam.type, fam.series) == ("jobs", "counter", 1)


def test_openmetrics_counter_is_selected_with_total_and_splits_created() -> None:
    # Prometheus stores `rpc_requests_created` whatever the format: 0.0.4 clients expose it as a
    # gauge family of its own, so the OpenMetrics `_created` samples give that same entry.
    schema = both_paths(
        "# TYPE rpc_requests counter\n"
        "# UNIT rpc_requests requests\n"
        "# HELP rpc_requests Requests served.\n"
        'rpc_requests_total{path="/"} 4\n'
        'rpc_requests_created{path="/"} 1.7e9\n'
        'rpc_requests_total{path="/a"} 1\n'
        'rpc_requests_created{path="/a"} 1.7e9\n'
        "# EOF\n",
        OM,
    )
    counter = sampled(
        "rpc_requests_total",
        "counter",
        unit="requests",
        help="Requests served.",
        labels=("path",),
        label_values={"path": ("/", "/a")},
        series=2,
    )
    assert schema.families == {
        "rpc_requests_total": counter,
        "rpc_requests_created": replace(
            counter, name="rpc_requests_created", type="gauge", unit=""
        ),
    }


def test_openmetrics_histogram_and_summary_created_are_entries_of_their_own() -> None:
    schema = both_paths(
        "# TYPE lat histogram\n"
        'lat_bucket{le="+Inf"} 1\n'
        "lat_count 1\n"
        "lat_sum 0.5\n"
        "lat_created 1.7e9\n"
        "# TYPE q summary\n"
        'q{quantile="0.5"} 1\n'
        "q_count 1\n"
        "q_sum 1\n"
        "q_created 1.7e9\n"
        "# TYPE plain counter\n"
        "plain_total 1\n"
        "# EOF\n",
        OM,
    )
    assert sorted(schema.families) == ["lat", "lat_created", "plain_total", "q", "q_created"]
    assert schema.families["lat_created"] == sampled("lat_created", "gauge", series=1)
    assert schema.families["lat"].buckets == (INF,)
    assert schema.families["q"].quantiles == (0.5,)


@pytest.mark.parametrize(
    "text",
    [
        # Older writers: `_gcount`/`_gsum` samples under the histogram's TYPE.
        '# TYPE q histogram\nq_bucket{a="x",le="+Inf"} 2\nq_gcount{a="x"} 2\nq_gsum{a="x"} 3\n',
        # prometheus_client 0.2x: buckets only, `_gcount`/`_gsum` as gauge families after it.
        '# HELP q Q.\n# TYPE q histogram\nq_bucket{a="x",le="+Inf"} 2\n'
        '# HELP q_gcount Q.\n# TYPE q_gcount gauge\nq_gcount{a="x"} 2\n'
        '# HELP q_gsum Q.\n# TYPE q_gsum gauge\nq_gsum{a="x"} 3\n',
    ],
)
def test_text_histogram_with_gcount_is_a_gauge_histogram(text: str) -> None:
    # 0.0.4 has no gauge histogram: these are the series of OpenMetrics' `gaugehistogram`.
    om_schema = both_paths(
        '# TYPE q gaugehistogram\nq_bucket{a="x",le="+Inf"} 2\nq_gcount{a="x"} 2\n'
        'q_gsum{a="x"} 3\n# EOF\n',
        OM,
    )
    fam = only(both_paths(text))
    assert (fam.type, fam.labels, fam.buckets, fam.series) == ("gaugehistogram", ("a",), (INF,), 1)
    assert replace(fam, help="") == only(om_schema)


def test_gauge_and_counter_may_share_a_metadata_name_in_openmetrics() -> None:
    # client_golang's Go collector in OpenMetrics: two families named `go_memstats_alloc_bytes`,
    # a gauge and a counter (samples `_total`). Prometheus ingests both.
    schema = both_paths(
        "# HELP go_memstats_alloc_bytes Bytes in use.\n"
        "# TYPE go_memstats_alloc_bytes gauge\n"
        "go_memstats_alloc_bytes 1.7e5\n"
        "# HELP go_memstats_alloc_bytes Bytes allocated, even if freed.\n"
        "# TYPE go_memstats_alloc_bytes counter\n"
        "go_memstats_alloc_bytes_total 5e6\n"
        "# EOF\n",
        OM,
    )
    assert schema.families == {
        "go_memstats_alloc_bytes": sampled(
            "go_memstats_alloc_bytes", "gauge", help="Bytes in use.", series=1
        ),
        "go_memstats_alloc_bytes_total": sampled(
            "go_memstats_alloc_bytes_total",
            "counter",
            help="Bytes allocated, even if freed.",
            series=1,
        ),
    }


@pytest.mark.parametrize(
    ("text", "content_type", "expected"),
    [
        # Samples before their TYPE: Prometheus's parsers accept it, the TYPE describes them.
        ("m 1\n# TYPE m gauge\n", "", {"m": ("gauge", 1)}),
        ('# HELP m h\nm{a="1"} 1\n# TYPE m counter\n', "", {"m": ("counter", 1)}),
        # A repeated block of one family merges into one entry.
        (
            '# TYPE m gauge\nm{a="1"} 1\n# TYPE m gauge\nm{a="2"} 1\n',
            "",
            {"m": ("gauge", 2)},
        ),
        # Two TYPEs before any sample: the later one wins, as in Prometheus's metadata.
        ("# TYPE m counter\n# TYPE m gauge\nm 1\n", "", {"m": ("gauge", 1)}),
        # A TYPE after samples of another type: the samples keep theirs.
        ("# TYPE m counter\nm 1\n# TYPE m gauge\n", "", {"m": ("counter", 1)}),
        # A sample named like a family whose type does not use that name is its own series.
        (
            "# TYPE c counter\nc 1\n# EOF\n",
            OM,
            {"c": ("unknown", 1), "c_total": ("counter", 0)},
        ),
        ("# TYPE h histogram\nh 1\n", "", {"h": ("untyped", 1)}),
        # Buckets without (or with a non-numeric) `le` are stored by Prometheus as they come.
        ('# TYPE h histogram\nh_bucket{a="1"} 1\n', "", {"h": ("histogram", 1)}),
        ('# TYPE h histogram\nh_bucket{le="x"} 1\n', "", {"h": ("histogram", 1)}),
        # Two families PromQL selects by one name: one entry.
        (
            "# TYPE a counter\na_total 1\n# TYPE a_total gauge\n# EOF\n",
            OM,
            {"a_total": ("counter", 1)},
        ),
        # Two UNITs that both are suffixes of the name: the first one stays.
        (
            "# TYPE m_b_c gauge\n# UNIT m_b_c c\n# UNIT m_b_c b_c\n# EOF\n",
            OM,
            {"m_b_c": ("gauge", 0)},
        ),
    ],
)
def test_what_prometheus_accepts_is_read(
    text: str, content_type: str, expected: dict[str, tuple[str, int]]
) -> None:
    schema = both_paths(text, content_type)
    assert {n: (f.type, f.series) for n, f in schema.families.items()} == expected


def test_text_created_sample_is_a_family_of_its_own() -> None:
    # In 0.0.4, clients expose `_created` as its own gauge family; PromQL selects it as such.
    schema = both_paths(
        "# TYPE lat histogram\n"
        'lat_bucket{le="+Inf"} 1\n'
        "lat_count 1\n"
        "lat_sum 0.5\n"
        "# TYPE lat_created gauge\n"
        "lat_created 1.7e9\n"
    )
    assert sorted(schema.families) == ["lat", "lat_created"]
    assert schema.families["lat_created"].type == "gauge"
    assert schema.families["lat"].buckets == (INF,)


def test_histogram_buckets_series_and_labels() -> None:
    text = "# HELP rpc_seconds RPC latency.\n# TYPE rpc_seconds histogram\n"
    for method in ("Get", "Put", "Del"):
        for le in ("0.1", "0.5", "1", "+Inf"):
            text += f'rpc_seconds_bucket{{method="{method}",le="{le}"}} 3\n'
        text += f'rpc_seconds_sum{{method="{method}"}} 1.5\n'
        text += f'rpc_seconds_count{{method="{method}"}} 3\n'
    assert only(both_paths(text)) == sampled(
        "rpc_seconds",
        "histogram",
        help="RPC latency.",
        labels=("method",),
        label_values={"method": ("Del", "Get", "Put")},
        buckets=(0.1, 0.5, 1.0, INF),
        series=3,
    )


def test_bucket_bounds_are_numbers_not_strings() -> None:
    fam = only(
        both_paths(
            "# TYPE h histogram\n"
            'h_bucket{a="x",le="1"} 1\n'
            'h_bucket{a="x",le="+Inf"} 1\n'
            'h_count{a="x"} 1\n'
            'h_bucket{a="y",le="1.0"} 1\n'
            'h_bucket{a="y",le="+Inf"} 1\n'
            'h_count{a="y"} 1\n'
            'h_bucket{a="z",le="1e0"} 1\n'
            'h_bucket{a="z",le="Inf"} 1\n'
            'h_count{a="z"} 1\n'
        )
    )
    assert fam.buckets == (1.0, INF)
    assert fam.series == 3


def test_le_not_last_and_bucket_without_other_labels() -> None:
    fam = only(
        both_paths(
            "# TYPE h histogram\n"
            'h_bucket{le="0.5",job="a"} 1\n'
            'h_bucket{job="a",le="+Inf"} 1\n'
            'h_bucket{le="0.25"} 1\n'
            'h_bucket{le="+Inf"} 1\n'
        )
    )
    assert (fam.buckets, fam.labels, fam.series) == ((0.25, 0.5, INF), ("job",), 2)


def test_summary_quantiles_and_series() -> None:
    fam = only(
        both_paths(
            "# TYPE rpc summary\n"
            'rpc{svc="a",quantile="0.5"} 1\n'
            'rpc{svc="a",quantile="0.99"} 2\n'
            'rpc_sum{svc="a"} 3\n'
            'rpc_count{svc="a"} 4\n'
            'rpc{svc="b",quantile="0.50"} NaN\n'
            'rpc{svc="b",quantile="0.99"} NaN\n'
            'rpc_sum{svc="b"} 0\n'
            'rpc_count{svc="b"} 0\n'
        )
    )
    assert fam == sampled(
        "rpc",
        "summary",
        labels=("svc",),
        label_values={"svc": ("a", "b")},
        quantiles=(0.5, 0.99),
        series=2,
    )


def test_summary_without_quantiles() -> None:
    fam = only(both_paths("# TYPE s summary\ns_sum 1\ns_count 2\n"))
    assert (fam.quantiles, fam.series, fam.labels) == ((), 1, ())


def test_openmetrics_info_stateset_gaugehistogram_unknown() -> None:
    schema = both_paths(
        "# TYPE build info\n"
        'build_info{version="1.2.3",revision="abc"} 1\n'
        "# TYPE state stateset\n"
        'state{state="up"} 1\n'
        'state{state="down"} 0\n'
        "# TYPE queue_depth gaugehistogram\n"
        'queue_depth_bucket{le="10"} 2\n'
        'queue_depth_bucket{le="+Inf"} 3\n'
        "queue_depth_gcount 3\n"
        "queue_depth_gsum 12\n"
        "# TYPE mystery unknown\n"
        "mystery 1\n"
        "# EOF\n"
    )
    assert schema.content_type == CONTENT_TYPE_OPENMETRICS  # detected: # EOF, OpenMetrics types
    assert schema.families == {
        "build_info": sampled(
            "build_info",
            "info",
            labels=("revision", "version"),
            label_values={"revision": ("abc",), "version": ("1.2.3",)},
            series=1,
        ),
        "state": sampled(
            "state", "stateset", labels=("state",), label_values={"state": ("down", "up")}, series=2
        ),
        "queue_depth": sampled("queue_depth", "gaugehistogram", buckets=(10.0, INF), series=1),
        "mystery": sampled("mystery", "unknown", series=1),
    }


def test_untyped_samples_without_type() -> None:
    schema = both_paths('a_thing 1\nother{x="1"} 2\nother{x="2"} 3\n')
    assert schema.families == {
        "a_thing": sampled("a_thing", "untyped", series=1),
        "other": sampled(
            "other", "untyped", labels=("x",), label_values={"x": ("1", "2")}, series=2
        ),
    }


def test_openmetrics_sample_without_metadata_is_unknown() -> None:
    fam = only(both_paths("loose 1\n# EOF\n", OM))
    assert (fam.name, fam.type) == ("loose", "unknown")


def test_sample_not_fitting_its_type_family_is_its_own_untyped_family() -> None:
    schema = both_paths(
        '# TYPE g gauge\ng 1\ng_extra 2\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_total 3\n'
    )
    assert {n: (f.type, f.series) for n, f in schema.families.items()} == {
        "g": ("gauge", 1),
        "g_extra": ("untyped", 1),
        "h": ("histogram", 1),
        "h_total": ("untyped", 1),
    }


def test_metadata_only_family_has_no_samples() -> None:
    fam = only(both_paths("# HELP idle Never observed.\n# TYPE idle counter\n"))
    assert fam == MetricFamily(name="idle", type="counter", help="Never observed.")


def test_help_without_type_and_help_unescaping() -> None:
    fam = only(both_paths('# HELP x A \\\\ path\\nsecond line \\"as is\\".\nx 1\n'))
    # 0.0.4 HELP escapes are only \\ and \n; \" stays as written.
    assert (fam.type, fam.help) == ("untyped", 'A \\ path\nsecond line \\"as is\\".')
    fam = only(both_paths('# HELP x Say \\"hi\\" \\\\o/\nx 1\n# EOF\n', OM))
    assert fam.help == 'Say "hi" \\o/'


def test_repeated_help_and_type_merge() -> None:
    fam = only(
        both_paths(
            '# HELP c First.\n# TYPE c counter\nc{a="1"} 1\n'
            '# HELP c Second.\n# TYPE c counter\nc{a="2"} 1\n'
        )
    )
    assert fam == sampled(
        "c", "counter", help="First.", labels=("a",), label_values={"a": ("1", "2")}, series=2
    )


# -- label values ------------------------------------------------------------------------------


def test_escaped_quotes_backslashes_newlines_in_label_values() -> None:
    fam = only(
        both_paths(
            "# TYPE m gauge\n"
            'm{v="say \\"hi\\""} 1\n'
            'm{v="C:\\\\dir\\\\"} 1\n'
            'm{v="two\\nlines"} 1\n'
            'm{v="tab\\t kept"} 1\n'
        )
    )
    assert fam.label_values == {"v": ("C:\\dir\\", 'say "hi"', "tab\\t kept", "two\nlines")}
    assert fam.series == 4


def test_braces_commas_equals_inside_quoted_values() -> None:
    fam = only(
        both_paths(
            "# TYPE h histogram\n"
            'h_bucket{path="/a/{id}",q="x=1,y=2}",le="1"} 1\n'
            'h_bucket{path="/a/{id}",q="x=1,y=2}",le="+Inf"} 1\n'
            'h_count{path="/a/{id}",q="x=1,y=2}"} 1\n'
            'h_bucket{path="}",q="",le="1"} 1\n'
        )
    )
    assert fam.label_values == {"path": ("/a/{id}", "}"), "q": ("", "x=1,y=2}")}
    assert (fam.buckets, fam.series) == ((1.0, INF), 2)


def test_trailing_comma_in_label_set_is_allowed_in_text_format() -> None:
    fam = only(both_paths('m{a="1",} 1\nm{a="2",b="3",} 1\n'))
    assert fam.label_values == {"a": ("1", "2"), "b": ("3",)}


def test_whitespace_around_label_tokens() -> None:
    fam = only(both_paths('m{ a = "1" , b="2" } 1\nm\t2\n'))
    assert (fam.labels, fam.series) == (("a", "b"), 2)


def test_label_value_cap_marks_high_cardinality() -> None:
    lines = [f'm{{id="{i}",kind="k{i % 3}"}} 1' for i in range(LABEL_VALUE_CAP + 1)]
    fam = only(both_paths("\n".join(lines) + "\n"))
    assert fam.labels == ("id", "kind")
    assert fam.high_cardinality == ("id",)
    assert fam.label_values == {"kind": ("k0", "k1", "k2")}
    assert fam.series == LABEL_VALUE_CAP + 1
    # At the cap exactly, the values are kept.
    fam = only(both_paths("\n".join(lines[:LABEL_VALUE_CAP]) + "\n"))
    assert fam.high_cardinality == ()
    assert len(fam.label_values["id"]) == LABEL_VALUE_CAP


def test_high_cardinality_values_take_the_fast_path_only_when_plain() -> None:
    """Once a key is past the cap, its pieces are accepted by a character check alone; a value
    with an escape, a quote or a bad piece after it must still reach the exact path."""
    lines = [f'm{{pod="p{i}",a="x"}} 1' for i in range(LABEL_VALUE_CAP + 50)]
    lines += [f'n{{pod="p{i % 100}",a="y"}} 1' for i in range(300)]
    lines += ['m{pod="with \\"quote\\"",a="x"} 1', 'm{pod="back\\\\slash",a="z"} 1']
    schema = both_paths("\n".join(lines) + "\n")
    assert schema.families["m"].high_cardinality == ("pod",)
    assert schema.families["m"].label_values == {"a": ("x", "z")}
    assert schema.families["m"].series == LABEL_VALUE_CAP + 52
    assert schema.families["n"].high_cardinality == ("pod",)
    assert schema.families["n"].series == 300
    # A high-cardinality piece does not hide a broken one after it.
    bad = [f'm{{pod="p{i}"}} 1' for i in range(LABEL_VALUE_CAP + 2)] + ['m{pod="p0",a=x"} 1']
    line, reason = error_of("\n".join(bad) + "\n")
    assert (line, reason) == (LABEL_VALUE_CAP + 3, "label value of `a` is not quoted")
    # Pieces that split cleanly on `",` but are not valid label syntax: a stray quote, and a
    # backslash that escapes the closing quote.
    for broken in ('m{pod="p1"x",a="y"} 1', 'm{pod="p1\\",a="y"} 1'):
        assert error_of("\n".join([*bad[:-1], broken]) + "\n")[0] == LABEL_VALUE_CAP + 3


def test_a_lone_quote_is_not_an_empty_label_set() -> None:
    """`m{"} 1` and `m_bucket{",le="1"} 1` end in `"}` but hold an unterminated quoted name: the
    fast path once took the lone quote for an empty label body (equal to a family's initial
    "last body", or to nothing before a bound) and counted the sample."""
    assert error_of('# TYPE m gauge\nm{"} 1\n') == (2, "unterminated quoted name")
    assert error_of('m 1\nm{"} 1\n') == (2, "unterminated quoted name")
    hist = '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{",le="1"} 2\n'
    assert error_of(hist) == (3, 'quoted term ",le=" is not a label')


@pytest.mark.parametrize(
    ("tail", "valid"),
    [
        (" 1.5", True),
        (" 15.", True),
        (" .5", True),
        (" 1.2.3", False),
        (" .", False),
        (" 1..2", False),
        (" \u0661\u0662", False),  # Arabic-Indic digits: Go's ParseFloat takes ASCII only
        (" 1.5 17", True),
        ("  1.5", True),
        ("\t2", True),
        (" +1", True),
        (" 1e3", True),
        (" 1 \u0661", False),  # a timestamp in Arabic-Indic digits
    ],
)
def test_sample_tails_by_string_methods_and_by_the_pattern(tail: str, valid: bool) -> None:
    """Integer and plain decimal values are checked by string methods, every other tail by the
    grammar's pattern: both must decide as the slow path does, and as Prometheus does (`1.2.3`,
    `.`, Arabic digits are invalid; two blanks, a tab, a sign, an exponent, a timestamp are
    valid)."""
    text = f'# TYPE g gauge\ng{{a="x"}} 1\ng{{a="y"}}{tail}\n'
    if valid:
        assert only(both_paths(text)).series == 2
    else:
        assert error_of(text)[0] == 3


# -- sample syntax -----------------------------------------------------------------------------


def test_special_values_and_timestamps() -> None:
    fam = only(
        both_paths(
            "# TYPE g gauge\n"
            'g{k="nan"} NaN\n'
            'g{k="pinf"} +Inf\n'
            'g{k="ninf"} -Inf 1700000000000\n'
            'g{k="exp"} 1.5e-3 -5\n'
            "g 7 1700000000000\n"
        )
    )
    assert fam.series == 5
    fam = only(both_paths('g{k="a"} 1 1700000000.123\ng 2 1.7e9\n# EOF\n', OM))
    assert fam.series == 2


def test_openmetrics_exemplars() -> None:
    fam = only(
        both_paths(
            "# TYPE h histogram\n"
            'h_bucket{le="0.5"} 1 # {trace_id="KOO5S4vxi0o"} 0.67\n'
            'h_bucket{le="+Inf"} 2 # {trace_id="oHg5SJYRHA0",span="x y"} 9.8 1520879607.789\n'
            "h_count 2\n"
            "h_sum 10.5\n"
            "# EOF\n",
            OM,
        )
    )
    assert (fam.buckets, fam.series, fam.labels) == ((0.5, INF), 1, ())


def test_blank_lines_and_crlf() -> None:
    fam = only(both_paths('\r\n# TYPE g gauge\r\n\r\ng{a="1"} 1\r\n\n\ng{a="2"} 2\r\n'))
    assert (fam.type, fam.label_values) == ("gauge", {"a": ("1", "2")})


def test_quoted_utf8_metric_names() -> None:
    schema = both_paths(
        '# TYPE "my.histogram" histogram\n'
        '{"my.histogram_bucket",le="1"} 1\n'
        '{"my.histogram_bucket","service.name"="api",le="+Inf"} 1\n'
        '{"my.histogram_count"} 1\n'
        '# TYPE "my.gauge" gauge\n'
        '{"my.gauge"} 1\n'
        "# EOF\n",
        OM,
    )
    assert schema.families == {
        "my.histogram": sampled(
            "my.histogram",
            "histogram",
            labels=("service.name",),
            label_values={"service.name": ("api",)},
            buckets=(1.0, INF),
            series=1,
        ),
        "my.gauge": sampled("my.gauge", "gauge", series=1),
    }


def test_unicode_label_values_and_bom() -> None:
    fam = only(both_paths('\ufeffm{city="Zürich",emoji="🚀"} 1\n'))
    assert fam.label_values == {"city": ("Zürich",), "emoji": ("🚀",)}


def test_empty_input_and_empty_label_set() -> None:
    assert both_paths("") == MetricsSchema(content_type=CONTENT_TYPE_TEXT)
    fam = only(both_paths("m{} 1\n"))
    assert (fam.labels, fam.series) == ((), 1)


# -- format selection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "text", "expected"),
    [
        pytest.param("application/openmetrics-text; version=1.0.0", "m 1\n", True, id="om type"),
        pytest.param("text/plain; version=0.0.4", "m 1\n# EOF\n", False, id="text type wins"),
        pytest.param("text/plain", "# UNIT m seconds\n", False, id="text type, unit line"),
        pytest.param("", "m 1\n# EOF", True, id="EOF line"),
        pytest.param(
            "", "# TYPE m_seconds gauge\n# UNIT m_seconds seconds\n", True, id="UNIT line"
        ),
        pytest.param("", "# TYPE m info\n", True, id="a type only OpenMetrics has"),
        pytest.param("", "# TYPE m counter\nm_total 1\n", False, id="no marker"),
        pytest.param("", "# EOF is a comment here\nm 1\n", False, id="EOF not alone"),
        pytest.param("application/octet-stream", "m 1\n# EOF\r\n", True, id="other type: sniffed"),
    ],
)
def test_is_openmetrics(content_type: str, text: str, expected: bool) -> None:
    assert is_openmetrics(content_type, text) is expected


def test_content_type_decides_over_detection() -> None:
    # Read as 0.0.4, `# EOF` is a comment and the counter keeps its TYPE name.
    schema = parse_text("# TYPE c counter\nc 1\n# EOF\n", content_type="text/plain; version=0.0.4")
    assert sorted(schema.families) == ["c"]
    assert schema.content_type == "text/plain; version=0.0.4"


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "text", "line", "reason"),
    [
        # text format 0.0.4 (no content type: detected)
        ("", '# TYPE m gauge\nm{a="1"} 1\nm{a="x} 1\n', 3, "unterminated label value of `a`"),
        ("", "m 1\nm abc\n", 2, "invalid value `abc`"),
        ("", 'm 1\n\nm{a="1"}\n', 3, "missing value for `m`"),
        ("", "m 1\nm\n", 2, "missing value for `m`"),
        ("", "ok 1\n9m 1\n", 2, "invalid metric name `9m`"),
        ("", "ok 1\nfoo-bar 1\n", 2, "invalid metric name `foo-bar`"),
        ("", "ok 1\n\x00\x01\x02garbage 1\n", 2, "invalid metric name `\\x00\\x01\\x02garbage`"),
        ("", "# TYPE m flux\n", 1, "unknown metric type `flux` (text format 0.0.4)"),
        ("", 'm{a="1",a="2"} 1\n', 1, "duplicate label `a`"),
        ("", 'm{a="1"} 1\nm{__name__="m"} 1\n', 2, "label `__name__` is not allowed in a sample"),
        ("", 'm{a="1" b="2"} 1\n', 1, 'expected `,` or `}` in label set at `b="2"} 1`'),
        ("", "m{a=1} 1\n", 1, "label value of `a` is not quoted"),
        ("", 'm{a="1"\n', 1, "unterminated label set (missing `}`)"),
        ("", "m 1 2 3\n", 1, "unexpected text after the value: `3` (exemplars need OpenMetrics)"),
        ("", "m 1 1.5\n", 1, "invalid timestamp `1.5`"),
        ("", "m 1_000\n", 1, "invalid value `1_000`"),
        # OpenMetrics
        (OM, "# TYPE m gauge\nm 1\n", 2, "truncated exposition: no # EOF"),
        (OM, "# TYPE m gauge\nm 1\n# EOF\nm 2\n", 4, "content after # EOF"),
        (OM, "m 1\n\n# EOF\n", 2, "blank line (OpenMetrics does not allow them)"),
        (OM, 'm{a="1",} 1\n# EOF\n', 1, "trailing comma in label set (not allowed in OpenMetrics)"),
        (
            OM,
            "# TYPE m gauge\n# UNIT m seconds\nm 1\n# EOF\n",
            2,
            "unit `seconds` is not a suffix of metric `m`",
        ),
        (
            OM,
            "# TYPE mseconds gauge\n# UNIT mseconds seconds\n# EOF\n",
            2,
            "unit `seconds` is not a suffix of metric `mseconds`",
        ),
        (OM, 'm 1 # {a="1"}\n# EOF\n', 1, "exemplar without a valid value"),
        (OM, "m 1 # trace\n# EOF\n", 1, "unexpected text after the value: `# trace`"),
    ],
)
def test_errors_name_the_line(content_type: str, text: str, line: int, reason: str) -> None:
    """Both parsers (fast and slow path) name the line and the reason, in either format."""
    assert error_of(text, content_type) == (line, reason)


def test_error_message_format() -> None:
    with pytest.raises(ExpositionError, match=r"^line 2: invalid value `abc`$"):
        parse_text("m 1\nm abc\n")


def test_invalid_utf8_names_the_line() -> None:
    data = b'm{a="ok"} 1\nm{a="\xff\xfe"} 2\n'
    with pytest.raises(ExpositionError) as info:
        parse_stream([data])
    assert (info.value.line, info.value.reason) == (2, "invalid UTF-8 (bytes ff)")


def test_error_line_numbers_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "BLOCK_CHARS", 50)
    lines = [f'm{{i="{i % 10}"}} {i}' for i in range(500)]
    lines[437] = "m{i=} 1"
    text = "\n".join(lines) + "\n"
    assert error_of(text) == (438, "label value of `i` is not quoted")
    data = text.encode()
    with pytest.raises(ExpositionError) as info:
        parse_stream(data[i : i + 7] for i in range(0, len(data), 7))
    assert info.value.line == 438
    bad = text.replace('m{i="3"} 473', 'm{i="\udcff"} 473').encode("utf-8", "surrogateescape")
    with pytest.raises(ExpositionError) as info:
        parse_stream(bad[i : i + 13] for i in range(0, len(bad), 13))
    assert (info.value.line, info.value.reason) == (474, "invalid UTF-8 (bytes ff)")


# -- files -------------------------------------------------------------------------------------


def test_read_exposition_file_detects_openmetrics_at_the_end(tmp_path: Path) -> None:
    body = "".join(f'# TYPE c{i} counter\nc{i}_total{{a="{i}"}} 1\n' for i in range(5000))
    path = tmp_path / "big.om"
    path.write_text(body + "# EOF\n")
    schema = read_exposition_file(path)
    assert schema.content_type == CONTENT_TYPE_OPENMETRICS
    assert len(schema.families) == 5000
    assert schema.families["c4999_total"].label_values == {"a": ("4999",)}
    assert schema == parse_text(body + "# EOF\n")


def test_read_exposition_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^.*missing\.prom: no such exposition file$"):
        read_exposition_file(tmp_path / "missing.prom")
    with pytest.raises(InputError, match=r"is a directory, expected an exposition file$"):
        read_exposition_file(tmp_path)
    bad = tmp_path / "bad.prom"
    bad.write_bytes(b'm 1\nm{a="\xc3\x28"} 1\n')
    with pytest.raises(ExpositionError) as info:
        read_exposition_file(bad)
    assert (info.value.line, info.value.reason) == (2, "invalid UTF-8 (bytes c3)")
    truncated = tmp_path / "t.om"
    truncated.write_text("# TYPE m_seconds gauge\n# UNIT m_seconds seconds\nm_seconds 1\n")
    with pytest.raises(ExpositionError) as info:
        read_exposition_file(truncated)
    assert (info.value.line, info.value.reason) == (3, "truncated exposition: no # EOF")
