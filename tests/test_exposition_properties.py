"""Properties of the exposition reader, on generated valid text-format 0.0.4 expositions.

* differential: the schema equals the one derived from ``prometheus_client``'s parser (the
  reference), after undoing its known renames;
* chunking: ``parse_stream`` gives the same schema however the bytes are split, also with tiny
  internal blocks, and ``parse_text`` agrees;
* the fast path and the slow path build the same schema.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from compatcheck.errors import ExpositionError
from compatcheck.exposition import parse_stream, parse_text, stream
from compatcheck.exposition.grammar import parse_comment, tokenize_comment
from compatcheck.model import LABEL_VALUE_CAP, MetricFamily, MetricsSchema
from tests.exposition_text import series_lines

OM = "application/openmetrics-text; version=1.0.0"
LABEL_KEYS = ("method", "path", "status", "instance", "pod", "a", "b_c")
VALUE_CHARS = st.sampled_from([*list('ab/{}=, "\\\nZé.-_:'), "\\n", '\\"', "x"])
SAMPLE_VALUES = ("0", "1", "-1.5", "1e3", "3.25", "NaN", "+Inf", "-Inf", "12345678")
BOUND_SPELLINGS = {
    0.1: ("0.1", "1e-1", "0.10"),
    0.5: ("0.5", "5e-1"),
    1.0: ("1", "1.0", "1e0"),
    2.5: ("2.5",),
    10.0: ("10", "1e1"),
}
QUANTILES = ("0.5", "0.9", "0.99")
HELP_CHARS = st.sampled_from([*list("ab \"'{}#="), "\\", "\n", "é"])


@dataclass
class Generated:
    text: str
    #: Counter TYPE names as written (to undo prometheus_client's `_total` stripping).
    counters: set[str]


def _escape_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


@st.composite
def label_sets(draw: st.DrawFn, n: int, many: bool) -> list[dict[str, str]]:
    """``n`` distinct label sets; with ``many``, the first key gets a value per series."""
    keys = draw(st.lists(st.sampled_from(LABEL_KEYS), unique=True, min_size=many, max_size=3))
    out: list[dict[str, str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for i in range(n):
        labels: dict[str, str] = {}
        for k in keys:
            if draw(st.integers(0, 9)) == 0 and not (many and k == keys[0]):
                continue  # a series without this label
            if many and k == keys[0]:
                labels[k] = f"id{i}"  # a label with many values (past the cap)
            else:
                labels[k] = draw(st.lists(VALUE_CHARS, max_size=5).map("".join))
        key = tuple(sorted(labels.items()))
        if key not in seen:
            seen.add(key)
            out.append(labels)
    return out


def _labels_text(draw: st.DrawFn, labels: dict[str, str], extra: tuple[str, str] | None) -> str:
    parts = [f'{k}="{_escape_value(v)}"' for k, v in labels.items()]
    if extra is not None:
        # `le`/`quantile` usually last, as clients write them; sometimes elsewhere.
        pos = len(parts) if draw(st.integers(0, 3)) else draw(st.integers(0, len(parts)))
        parts.insert(pos, f'{extra[0]}="{extra[1]}"')
    if not parts:
        return "" if draw(st.booleans()) else "{}"
    comma = "," if draw(st.integers(0, 9)) == 0 else ""
    return "{" + ",".join(parts) + comma + "}"


def _value(draw: st.DrawFn) -> str:
    v = draw(st.sampled_from(SAMPLE_VALUES))
    if draw(st.integers(0, 9)) == 0:
        v += f" {draw(st.integers(0, 2**41))}"
    return v


@st.composite
def expositions(draw: st.DrawFn) -> Generated:
    lines: list[str] = []
    counters: set[str] = set()
    n_families = draw(st.integers(0, 6))
    for i in range(n_families):
        kind = draw(
            st.sampled_from(["counter", "gauge", "histogram", "summary", "untyped", "bare"])
        )
        base = f"f{i}_{draw(st.sampled_from(['req', 'lat', 'x', 'bytes']))}"
        name = base + "_total" if kind == "counter" and draw(st.integers(0, 3)) else base
        if kind != "bare":
            if draw(st.booleans()):
                help_text = draw(st.text(HELP_CHARS, max_size=12)).strip(" ")
                lines.append(f"# HELP {name} {_escape_help(help_text)}".rstrip(" "))
            lines.append(f"# TYPE {name} {kind}")
            if kind == "counter":
                counters.add(name)
        many = draw(st.integers(0, 7)) == 0
        n_series = LABEL_VALUE_CAP + draw(st.integers(-1, 2)) if many else draw(st.integers(0, 4))
        series = draw(label_sets(n_series, many))
        if kind == "histogram":
            bounds = sorted(draw(st.sets(st.sampled_from(sorted(BOUND_SPELLINGS)), max_size=4)))
            spelled = [draw(st.sampled_from(BOUND_SPELLINGS[b])) for b in bounds] + ["+Inf"]
            totals = draw(st.integers(0, 3)) > 0  # without them, labels come from buckets only
            for labels in series:
                written = functools.partial(_labels_text, draw, labels)
                total = (_value(draw), "1") if totals else None
                lines += series_lines(name, kind, written, [(le, "1") for le in spelled], total)
        elif kind == "summary":
            qs = sorted(draw(st.sets(st.sampled_from(QUANTILES), max_size=3)))
            for labels in series:
                written = functools.partial(_labels_text, draw, labels)
                values = [(q, _value(draw)) for q in qs]
                lines += series_lines(name, kind, written, values, (_value(draw), "3"))
        else:
            for labels in series:
                lines.append(f"{name}{_labels_text(draw, labels, None)} {_value(draw)}")
        if draw(st.integers(0, 4)) == 0:
            lines.append("")
    eol = "\r\n" if draw(st.integers(0, 9)) == 0 else "\n"
    final_newline: bool = draw(st.booleans())
    text = eol.join(lines) + (eol if lines and final_newline else "")
    return Generated(text, counters)


def reference_schema(gen: Generated) -> dict[str, MetricFamily]:
    """The schema as prometheus_client sees the exposition, in PromQL names."""

    @dataclass
    class Acc:
        type: str
        help: str
        values: dict[str, set[str]]
        series: set[frozenset[tuple[str, str]]]
        buckets: set[float]
        quantiles: set[float]
        samples: int = 0

    accs: dict[str, Acc] = {}
    for mf in text_string_to_metric_families(gen.text):
        name = mf.name
        # Trap: prometheus_client strips `_total` from counter family names.
        if mf.type == "counter" and name + "_total" in gen.counters:
            name += "_total"
        # Trap: prometheus_client's Metric turns 0.0.4 `untyped` into OpenMetrics `unknown`.
        typ = "untyped" if mf.type == "unknown" else mf.type
        # Untyped samples come as one family per sample: merge them back by name.
        acc = accs.setdefault(name, Acc(typ, mf.documentation, {}, set(), set(), set()))
        for s in mf.samples:
            acc.samples += 1
            labels = dict(s.labels)
            if mf.type == "histogram" and s.name.endswith("_bucket"):
                acc.buckets.add(float(labels.pop("le")))
            if mf.type == "summary" and "quantile" in labels:
                acc.quantiles.add(float(labels.pop("quantile")))
            acc.series.add(frozenset(labels.items()))
            for k, v in labels.items():
                acc.values.setdefault(k, set()).add(v)
    out: dict[str, MetricFamily] = {}
    for name, acc in accs.items():
        hc = {k for k, v in acc.values.items() if len(v) > LABEL_VALUE_CAP}
        out[name] = MetricFamily(
            name=name,
            type=acc.type,
            help=acc.help,
            labels=tuple(sorted(acc.values)),
            label_values={k: tuple(sorted(v)) for k, v in acc.values.items() if k not in hc},
            high_cardinality=tuple(sorted(hc)),
            buckets=tuple(sorted(acc.buckets)),
            quantiles=tuple(sorted(acc.quantiles)),
            series=len(acc.series) if acc.samples else 0,
            has_samples=bool(acc.samples),
        )
    return out


@given(expositions())
def test_matches_prometheus_client(gen: Generated) -> None:
    ours = parse_text(gen.text)
    assert dict(ours.families) == reference_schema(gen)


def _split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@given(expositions(), st.lists(st.integers(0, 10**6), max_size=12), st.integers(1, 64))
def test_chunk_boundaries_do_not_matter(gen: Generated, cuts: list[int], block: int) -> None:
    expected = parse_text(gen.text)
    data = gen.text.encode()
    assert parse_stream(_split(data, cuts)) == expected
    with mock.patch.object(stream, "BLOCK_CHARS", block):
        assert parse_stream(_split(data, cuts)) == expected
        assert parse_text(gen.text) == expected
        assert parse_stream([bytes([b]) for b in data]) == expected


@given(expositions())
def test_fast_and_slow_paths_agree(gen: Generated) -> None:
    fast = parse_text(gen.text)
    slow = stream._parse_text(gen.text, "", fast_path=False)
    assert fast == slow
    assert isinstance(fast, MetricsSchema)
    assert all(not math.isnan(b) for f in fast.families.values() for b in f.buckets)


def _outcome(text: str, fast_path: bool, content_type: str) -> object:
    try:
        return stream._parse_text(text, content_type, fast_path=fast_path)
    except ExpositionError as err:
        return ("error", err.line, err.reason)


NOISY = st.sampled_from(
    [
        "m",
        "m_total",
        "{",
        "}",
        '"',
        "\\",
        "=",
        ",",
        " ",
        "\t",
        "\n",
        "\r",
        "#",
        "# TYPE m ",
        "counter",
        "histogram",
        "summary",
        "le",
        'le="1"',
        'a="x"',
        "1",
        "NaN",
        "+Inf",
        "e",
        ".",
        "_bucket",
        "_sum",
        "_count",
        "# EOF",
        "# HELP m ",
        "# {",
        "é",
        "\x00",
        "_created",
    ]
)


@given(st.lists(NOISY, max_size=40).map("".join), st.sampled_from(["", "text/plain", OM]))
def test_any_text_parses_or_fails_cleanly_and_paths_agree(text: str, content_type: str) -> None:
    """Arbitrary input never raises anything but ExpositionError; both paths say the same."""
    assert _outcome(text, True, content_type) == _outcome(text, False, content_type)


@given(
    expositions(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 2), NOISY), min_size=1, max_size=3),
    st.sampled_from(["", "text/plain", OM]),
)
def test_mutated_expositions_fail_cleanly_and_paths_agree(
    gen: Generated, edits: list[tuple[int, int, str]], content_type: str
) -> None:
    """Valid expositions with a few characters inserted or deleted: same verdict both ways."""
    text = gen.text
    for pos, deleted, inserted in edits:
        at = pos % (len(text) + 1)
        text = text[:at] + inserted + text[at + deleted :]
    assert _outcome(text, True, content_type) == _outcome(text, False, content_type)


def _result_or_error(fn: Callable[[str, bool], object], text: str, om: bool) -> object:
    try:
        return fn(text, om)
    except ExpositionError as exc:
        return ("error", str(exc))


def test_the_one_match_metadata_form_agrees_with_the_tokenizer() -> None:
    # Every line made of the parts of a metadata line, each part right or slightly wrong (about
    # 40,000 lines, each in both formats): exhaustive, so that no rare spelling is left to luck.
    blanks = ["", " ", "\t "]
    words = ["HELP", "TYPE", "UNIT", "EOF", "HELPX", "help", ""]
    names = ["up", "a_b:c", "1x", '"q"', "a-b", "", "é", "_"]
    values = ["", "x", "counter", "a \\n b", "\\\\", "\\", '"', "x  y", "é"]
    checked = 0
    for b0, b1, b2, b3 in itertools.product(blanks, repeat=4):
        for word, name, value in itertools.product(words, names, values):
            text = f"#{b0}{word}{b1}{name}{b2}{value}{b3}".strip(" \t")
            for om in (False, True):
                fast = _result_or_error(parse_comment, text, om)
                assert fast == _result_or_error(tokenize_comment, text, om), (text, om)
                checked += 1
    assert checked > 80_000


def test_the_one_match_metadata_form_is_taken() -> None:
    # Proves the property above compares two different paths on the usual lines.
    with mock.patch("compatcheck.exposition.grammar.tokenize_comment") as slow:
        assert parse_comment("# HELP up_total Whether \\n up.", False) == (
            "HELP",
            "up_total",
            "Whether \n up.",
        )
        assert parse_comment("#\tTYPE  up_total\tcounter", True) == ("TYPE", "up_total", "counter")
    slow.assert_not_called()
