"""Streaming reader of Prometheus text format 0.0.4 and OpenMetrics 1.0 into a metrics *schema*.

A rollback check needs what consumers of a service's metrics depend on — family names as PromQL
selects them, types, units, help, label keys, observed label values, histogram buckets, summary
quantiles, series counts — never the sample values. So this reader keeps per family only what
the schema holds; memory grows with the schema, not with the number of samples, and the input is
read in blocks of lines (``parse_stream`` decodes UTF-8 block by block as bytes arrive).

Speed comes from a fast path that handles the ordinary sample line
(``name{k="v",...,le="0.5"} 1.5 [ts]``) with C-level string operations and caches, and a slow
path (a careful tokenizer) for everything else: comments, escapes, quoted UTF-8 names, exemplars,
whitespace oddities, and every error. The fast path is *sound*: it accepts a line only when the
line is certainly valid and means what the fast path thinks; anything unusual goes to the slow
path, which decides exactly (and produces the error message with its line number).

Traps (each handled below, each tested):

* PromQL names differ from metadata names. In OpenMetrics ``# TYPE foo counter`` has samples
  ``foo_total`` — PromQL selects ``foo_total``; in 0.0.4 ``# TYPE foo_total counter`` names the
  samples directly. ``prometheus_client`` strips ``_total`` from counter family names (and renames
  0.0.4 samples to ``_total``), so its family names are *not* what PromQL selects.
* OpenMetrics ``info`` family ``foo`` has samples ``foo_info``; histograms and summaries fold
  ``_bucket``/``_sum``/``_count``/``_created`` into the base name; gauge histograms
  ``_bucket``/``_gcount``/``_gsum``. In 0.0.4 ``_created`` is *not* folded: clients expose it as
  a family of its own there (``# TYPE foo_created gauge``).
* ``le="1"``, ``le="1.0"`` and ``le="1e0"`` are the same bound: bounds are compared as floats.
* Label values may contain ``}``, ``,``, ``=`` and (escaped) quotes; the fast path only relies on
  ``"`` never appearing unescaped inside a value, and leaves any backslash to the slow path.
* Series are counted without per-series sets: in a valid exposition every series has exactly one
  sample per sample name (and per bucket bound / quantile), so the number of series of a family
  is the largest count of lines over its sample names and bounds. (Duplicate series are invalid
  and dropped by Prometheus; they would be counted twice here.)

Known gap: a label name repeated within one sample (``{a="1",a="2"}``) is reported only when the
line reaches the slow path (a label piece not seen before in its family); checking it on every
fast-path line would cost about a quarter of the throughput.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from compatcheck.errors import ExpositionError
from compatcheck.files import reading
from compatcheck.model import LABEL_VALUE_CAP, MetricFamily, MetricsSchema

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "is_openmetrics",
    "parse_stream",
    "parse_text",
    "read_exposition_file",
]

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0"

#: Characters decoded per block; a block is cut at a newline so lines are never split.
BLOCK_CHARS = 1 << 18
#: Bytes looked at (from the start, plus the last few hundred) to detect OpenMetrics.
DETECT_BYTES = 1 << 16
#: Longest line read (bytes; characters for text already decoded). Real lines are well under a
#: KB; a longer one is refused at once, before the rest of it is read.
MAX_LINE_BYTES = 1 << 20
#: Longest ``# HELP`` text kept: help is stored in the schema and shown in reports.
MAX_HELP_CHARS = 1 << 16
#: Recently seen ``key="value`` pieces of high-cardinality labels kept (all families together)
#: so that repeated pod/instance values hit the cache; past it those cache entries are dropped.
HC_CACHE_LIMIT = 8192

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
# Values as Prometheus' Go parser (strconv.ParseFloat) and OpenMetrics accept them; Python's
# float() is laxer (``1_0``, Unicode digits, odd whitespace), so it is never the validator.
_NUMBER = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf(?:inity)?|nan))"
_TS_TEXT = r"[+-]?\d+"  # 0.0.4: integer milliseconds
_TS_OM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"  # OpenMetrics: float seconds

_NAME_RE = re.compile(_NAME)
_LEGACY_NAME_RE = re.compile(_NAME + r"\Z")
_LABEL_RE = re.compile(_LABEL)
_NUMBER_RE = re.compile(_NUMBER + r"\Z")
_TS_TEXT_RE = re.compile(_TS_TEXT + r"\Z")
_TS_OM_RE = re.compile(_TS_OM + r"\Z")
_QUOTED_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_WS_RE = re.compile(r"[ \t]*")
_TOKEN_RE = re.compile(r"[^ \t]*")
#: One ``key="value`` piece of a label body split on ``",`` (no escapes: those go the slow way).
_PIECE_RE = re.compile(_LABEL + r'="[^"\\\n]*\Z')
#: What follows the closing brace (or the name) of an ordinary sample line.
_TAIL_TEXT_RE = re.compile(rf"[ \t]+{_NUMBER}(?:[ \t]+{_TS_TEXT})?[ \t]*\Z")
_TAIL_OM_RE = re.compile(rf"[ \t]+{_NUMBER}(?:[ \t]+{_TS_OM})?[ \t]*\Z")
_ESCAPE_RE = re.compile(r'\\[\\n"]')
_HELP_ESCAPE_TEXT_RE = re.compile(r"\\[\\n]")
_OM_MARKER_RE = re.compile(
    r"^#[ \t]+(?:EOF[ \t]*\r?$|UNIT[ \t]"
    r"|TYPE[ \t]+\S+[ \t]+(?:info|stateset|gaugehistogram|unknown)[ \t]*\r?$)",
    re.MULTILINE,
)

_PLAIN, _BUCKET, _QUANTILE = 0, 1, 2

# Sample names of each type: (suffix, role). The empty suffix is the family name itself.
_SUFFIXES_TEXT: dict[str, tuple[tuple[str, int], ...]] = {
    "counter": (("", _PLAIN),),
    "gauge": (("", _PLAIN),),
    # Trap: 0.0.4 has no gauge histogram; clients write one as `# TYPE x histogram` with
    # `x_gcount`/`x_gsum` samples (see _text_type), so those names belong to the histogram.
    "histogram": (
        ("_bucket", _BUCKET),
        ("_count", _PLAIN),
        ("_sum", _PLAIN),
        ("_gcount", _PLAIN),
        ("_gsum", _PLAIN),
    ),
    "summary": (("", _QUANTILE), ("_count", _PLAIN), ("_sum", _PLAIN)),
    "untyped": (("", _PLAIN),),
}
_SUFFIXES_OM: dict[str, tuple[tuple[str, int], ...]] = {
    "counter": (("_total", _PLAIN), ("_created", _PLAIN)),
    "gauge": (("", _PLAIN),),
    "histogram": (("_bucket", _BUCKET), ("_count", _PLAIN), ("_sum", _PLAIN), ("_created", _PLAIN)),
    "gaugehistogram": (("_bucket", _BUCKET), ("_gcount", _PLAIN), ("_gsum", _PLAIN)),
    "summary": (("", _QUANTILE), ("_count", _PLAIN), ("_sum", _PLAIN), ("_created", _PLAIN)),
    "info": (("_info", _PLAIN),),
    "stateset": (("", _PLAIN),),
    "unknown": (("", _PLAIN),),
}
#: OpenMetrics families whose PromQL name is not the TYPE name.
_OM_PROMQL_SUFFIX = {"counter": "_total", "info": "_info"}
#: Type of the ``X_created`` schema entry split off an OpenMetrics counter, histogram or summary:
#: what client libraries declare for it in 0.0.4 (``# TYPE X_created gauge``).
CREATED_TYPE = "gauge"


def _unescape(text: str) -> str:
    r"""Label values, quoted names: ``\\``, ``\"``, ``\n``; other escapes stay as they are."""
    if "\\" not in text:
        return text
    return _ESCAPE_RE.sub(lambda m: {"\\\\": "\\", "\\n": "\n", '\\"': '"'}[m.group()], text)


def _unescape_help(text: str, openmetrics: bool) -> str:
    r"""HELP text: 0.0.4 escapes only ``\\`` and ``\n``; OpenMetrics also ``\"``."""
    if "\\" not in text:
        return text
    if openmetrics:
        return _unescape(text)
    return _HELP_ESCAPE_TEXT_RE.sub(lambda m: "\\" if m.group() == "\\\\" else "\n", text)


def _show(token: str, limit: int = 40) -> str:
    """A token for an error message: control characters escaped, long ones cut."""
    shown = token if token.isprintable() else token.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _is_number(text: str) -> bool:
    return _NUMBER_RE.match(text) is not None


def is_openmetrics(content_type: str, first_bytes: str) -> bool:
    """Whether to read an exposition as OpenMetrics 1.0 rather than text 0.0.4.

    An explicit content type decides (``application/openmetrics-text`` → yes, ``text/plain`` → no,
    as Prometheus does). Otherwise the text is sniffed: a ``# EOF`` line, a ``# UNIT`` line or a
    type only OpenMetrics has. Pass the start of the exposition (and, when available, its last few
    hundred characters, where ``# EOF`` is): a large OpenMetrics stream without a content type and
    without ``# UNIT`` lines near its start is read as 0.0.4 — scrapers always know the type.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/openmetrics-text":
        return True
    if media == "text/plain":
        return False
    return _OM_MARKER_RE.search(first_bytes) is not None


class _Family:
    """Schema accumulator of one family (keyed by its TYPE/HELP name, or by the sample name of
    a family without metadata)."""

    __slots__ = (
        "hc",
        "hc_cached",
        "help",
        "implicit",
        "last",
        "line",
        "name",
        "pieces",
        "sinks",
        "type",
        "unit",
        "values",
    )

    def __init__(self, name: str, line: int, implicit: bool) -> None:
        self.name = name
        self.line = line
        self.implicit = implicit
        self.type: str | None = None
        self.help: str | None = None
        self.unit: str | None = None
        self.values: dict[str, set[str]] = {}
        self.hc: set[str] = set()
        #: Cache of ``key="value`` pieces (fast-path form) already folded into ``values``.
        self.pieces: set[str] = set()
        #: The pieces of high-cardinality keys in ``pieces`` (evictable).
        self.hc_cached: set[str] = set()
        #: Last fast-path label body folded in: the buckets, ``_sum`` and ``_count`` of one
        #: series share it, so most histogram lines skip label work entirely.
        self.last = ""
        self.sinks: list[_Sink] = []


class _Sink:
    """One sample name of a family and what its lines count."""

    __slots__ = ("bound_key", "bound_tag", "bounds", "fam", "n", "name", "role")

    def __init__(self, fam: _Family, name: str, role: int) -> None:
        self.fam = fam
        self.name = name
        self.role = role
        self.n = 0
        #: Lines per bound string (``le`` or ``quantile`` value) for bucket/quantile samples.
        self.bounds: dict[str, int] = {}
        key = "le" if role == _BUCKET else "quantile"
        self.bound_key = key
        self.bound_tag = f'",{key}="'


@dataclass
class _Reader:
    """Incremental state of one exposition. Feed it blocks of whole lines, then ``finish``."""

    openmetrics: bool
    content_type: str
    #: Tests turn the fast path off to check that both paths build the same schema.
    fast_path: bool = True

    def __post_init__(self) -> None:
        #: Metadata name → the family its next HELP/TYPE/UNIT line describes (the latest block).
        self.families: dict[str, _Family] = {}
        #: Every family block in order of appearance, including earlier blocks of a name.
        self.order: list[_Family] = []
        #: Every sample name → its sink.
        self.sinks: dict[str, _Sink] = {}
        #: Sample names usable by the fast path: legacy (unquoted) names only. Cleared at
        #: ``# EOF`` so that anything after it reaches the slow path and its error.
        self.fast: dict[str, _Sink] = {}
        self.suffixes = _SUFFIXES_OM if self.openmetrics else _SUFFIXES_TEXT
        self.tail_re = _TAIL_OM_RE if self.openmetrics else _TAIL_TEXT_RE
        self.ts_re = _TS_OM_RE if self.openmetrics else _TS_TEXT_RE
        self.eof_line = 0
        self.lines = 0
        self.hc_cached = 0

    # -- fast path -------------------------------------------------------------------------

    def feed(self, block: str) -> None:
        """Read ``block``: whole lines joined by ``\\n`` (no trailing newline), CRLF removed."""
        fast = self.fast
        tail_at = self.tail_re.match
        lineno = self.lines
        # `name{` of the previous fast line and its sink: consecutive lines mostly share it.
        # Reset after every slow line, the only place where metadata (and so sinks) change.
        prev, prev_sink, prev_i = "\n", None, 0
        for line in block.split("\n"):
            lineno += 1
            if line.startswith(prev):
                sink, i = prev_sink, prev_i
            else:
                i = line.find("{")
                sink = fast.get(line[:i]) if i > 0 else None
                if sink is None:
                    if i < 0:
                        sp = line.find(" ")
                        if sp > 0:
                            sink = fast.get(line[:sp])
                            if sink is not None and sink.role == _PLAIN and tail_at(line, sp):
                                sink.n += 1
                                continue
                    self._slow(line, lineno)
                    prev = "\n"
                    continue
                prev, prev_sink, prev_i = line[: i + 1], sink, i
            assert sink is not None
            j = line.rfind("}")
            # The tail is validated first: once it holds no `}`, the last `}` is the closing
            # brace whatever the label values contain.
            if j > i + 1 and line[j - 1] == '"' and tail_at(line, j + 1) is not None:
                body = line[i + 1 : j - 1]
                fam = sink.fam
                if sink.role:
                    tag = sink.bound_tag
                    p = body.rfind(tag)
                    if p >= 0:
                        bound = body[p + len(tag) :]
                        body = body[:p]
                    elif body.startswith(tag[2:]):
                        bound = body[len(tag) - 2 :]
                        body = ""
                    else:
                        bound = ""
                    bounds = sink.bounds
                    if '"' not in bound and (bound in bounds or _is_number(bound)):
                        if not body or body == fam.last:
                            bounds[bound] = bounds.get(bound, 0) + 1
                            continue
                        if fam.pieces.issuperset(body.split('",')) or self._add_pieces(fam, body):
                            fam.last = body
                            bounds[bound] = bounds.get(bound, 0) + 1
                            continue
                    # Bound not last, missing, escaped or invalid, or labels need the exact path.
                elif body == fam.last:
                    sink.n += 1
                    continue
                elif fam.pieces.issuperset(body.split('",')) or self._add_pieces(fam, body):
                    fam.last = body
                    sink.n += 1
                    continue
            self._slow(line, lineno)
            prev = "\n"
        self.lines = lineno

    def _add_pieces(self, fam: _Family, body: str) -> bool:
        """Fold a fast-path label body into ``fam``; False if any piece needs the slow path."""
        pieces = body.split('",')
        for piece in pieces:
            if _PIECE_RE.match(piece) is None or piece.startswith('__name__="'):
                return False
        known = fam.pieces
        for piece in pieces:
            if piece not in known:
                key, _, value = piece.partition('="')
                self._add_value(fam, key, value, piece)
        return True

    def _add_value(self, fam: _Family, key: str, value: str, piece: str | None) -> None:
        if key in fam.hc:
            if piece is not None:
                fam.pieces.add(piece)
                fam.hc_cached.add(piece)
                self.hc_cached += 1
                if self.hc_cached > HC_CACHE_LIMIT:
                    self._evict_hc_cache()
            return
        values = fam.values.get(key)
        if values is None:
            values = fam.values[key] = set()
        values.add(value)
        if len(values) > LABEL_VALUE_CAP:
            # Past the cap the values are ids, not a contract: keep only the key.
            fam.hc.add(key)
            del fam.values[key]
            prefix = key + '="'
            fam.pieces = {p for p in fam.pieces if not p.startswith(prefix)}
        elif piece is not None:
            fam.pieces.add(piece)

    def _evict_hc_cache(self) -> None:
        for fam in self.order:
            if fam.hc_cached:
                fam.pieces -= fam.hc_cached
                fam.hc_cached = set()
                fam.last = ""
        self.hc_cached = 0

    # -- slow path -------------------------------------------------------------------------

    def _slow(self, line: str, lineno: int) -> None:
        try:
            self._slow_line(line, lineno)
        except ExpositionError as err:
            if err.line:
                raise
            raise ExpositionError(err.reason, lineno) from None

    def _slow_line(self, line: str, lineno: int) -> None:
        if self.eof_line:
            raise ExpositionError("content after # EOF")
        text = line.strip(" \t")
        if not text:
            if self.openmetrics:
                raise ExpositionError("blank line (OpenMetrics does not allow them)")
            return
        if text[0] == "#":
            self._comment(text, lineno)
            return
        name, labels = _parse_sample(text, self.openmetrics, self.ts_re)
        self._add_sample(name, labels, lineno)

    def _add_sample(self, name: str, labels: list[tuple[str, str]], lineno: int) -> None:
        sink = self.sinks.get(name)
        if sink is None:
            sink = self._implicit(name, lineno)
        fam = sink.fam
        if sink.role:
            bound: str | None = None
            rest = []
            for key, value in labels:
                if key == sink.bound_key:
                    bound = value
                else:
                    rest.append((key, value))
            # Trap: Prometheus stores a bucket without `le`, or with `le="x"`, as it comes (its
            # parser checks syntax, not semantics); such a sample counts as a series without a
            # bound here rather than failing the whole exposition.
            if bound is None or (bound not in sink.bounds and not _is_number(bound)):
                sink.n += 1
            else:
                sink.bounds[bound] = sink.bounds.get(bound, 0) + 1
            labels = rest
        else:
            sink.n += 1
        for key, value in labels:
            self._add_value(fam, key, value, None)

    def _implicit(self, name: str, lineno: int) -> _Sink:
        """A sample whose name no TYPE/HELP claimed: its own untyped family (what PromQL sees).

        Trap: the name may be a family's metadata name that its type does not use for samples
        (``c`` of an OpenMetrics counter ``c``, whose samples are ``c_total``). Prometheus stores
        such a sample all the same, so it is a family of its own, not an error; the metadata name
        keeps describing the declared family.
        """
        fam = _Family(name, lineno, implicit=True)
        self.families.setdefault(name, fam)
        self.order.append(fam)
        return self._register(fam, name, _PLAIN)

    def _register(self, fam: _Family, name: str, role: int) -> _Sink:
        sink = _Sink(fam, name, role)
        fam.sinks.append(sink)
        self.sinks[name] = sink
        if self.fast_path and _LEGACY_NAME_RE.match(name):
            self.fast[name] = sink
        return sink

    def _comment(self, text: str, lineno: int) -> None:
        rest = text[1:]
        stripped = rest.lstrip(" \t")
        if stripped == rest:  # `#HELP`: not metadata, a plain comment (as Prometheus)
            return
        word, _, rest = stripped.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest if rest else more
        if word == "EOF" and not rest.strip(" \t"):
            if self.openmetrics:
                self.eof_line = lineno
                self.fast.clear()
            return
        if word not in ("HELP", "TYPE", "UNIT") or (word == "UNIT" and not self.openmetrics):
            return
        rest = rest.lstrip(" \t")
        if rest.startswith('"'):
            m = _QUOTED_RE.match(rest)
            if m is None:
                raise ExpositionError(f"unterminated quoted metric name in # {word}")
            name = _unescape(m.group(1))
        else:
            m = _NAME_RE.match(rest)
            if m is None or (m.end() < len(rest) and rest[m.end()] not in " \t"):
                token = _TOKEN_RE.match(rest)
                shown = token.group() if token else rest
                raise ExpositionError(f"invalid metric name `{_show(shown)}` in # {word}")
            name = m.group()
        after = rest[m.end() :]
        if after and after[0] not in " \t":
            raise ExpositionError(f"expected whitespace after the metric name in # {word}")
        value = after.strip(" \t")
        if word == "HELP":
            self._help(name, _unescape_help(value, self.openmetrics), lineno)
        elif word == "TYPE":
            self._type(name, value, lineno)
        else:
            self._unit(name, value, lineno)

    def _declared(self, name: str, lineno: int) -> _Family:
        """The family a metadata line for ``name`` describes.

        Metadata after samples starts a new block of that name: client_golang's OpenMetrics
        output has a gauge ``go_memstats_alloc_bytes`` and, further down, a counter with the same
        metadata name (samples ``go_memstats_alloc_bytes_total``). Prometheus's parser takes
        each block as it comes; so does this reader. Blocks that end up with one PromQL name are
        merged in :meth:`finish`.
        """
        fam = self.families.get(name)
        if fam is None or fam.implicit or _has_samples(fam):
            fam = _Family(name, lineno, implicit=False)
            self.families[name] = fam
            self.order.append(fam)
            if name not in self.sinks:
                # Until a TYPE says otherwise, the family's samples are named like it.
                self._register(fam, name, _PLAIN)
        return fam

    def _help(self, name: str, text: str, lineno: int) -> None:
        if len(text) > MAX_HELP_CHARS:
            raise ExpositionError(f"# HELP for `{name}` is longer than {MAX_HELP_CHARS} characters")
        fam = self._declared(name, lineno)
        if fam.help is None:  # a repeated HELP merges; the first one wins
            fam.help = text

    def _unit(self, name: str, unit: str, lineno: int) -> None:
        if unit and not _LEGACY_NAME_RE.match(unit):
            raise ExpositionError(f"invalid unit `{_show(unit)}` for `{name}`")
        # As Prometheus's OpenMetrics parser (and the specification): a unit is the suffix of
        # the family name, `_` included; a `# UNIT` that is not fails the whole scrape.
        if unit and not name.endswith("_" + unit):
            raise ExpositionError(f"unit `{_show(unit)}` is not a suffix of metric `{_show(name)}`")
        fam = self._declared(name, lineno)
        if fam.unit is None:  # a repeated UNIT merges; the first one wins, as HELP
            fam.unit = unit

    def _type(self, name: str, typ: str, lineno: int) -> None:
        if not typ:
            raise ExpositionError(f"# TYPE for `{name}` has no type")
        if typ not in self.suffixes:
            fmt = "OpenMetrics" if self.openmetrics else "text format 0.0.4"
            raise ExpositionError(f"unknown metric type `{_show(typ)}` ({fmt})")
        # `_declared` starts a new block when the family already has samples, so `fam` has none.
        fam = self._declared(name, lineno)
        if fam.type == typ:
            return  # the same family again: merge
        # No samples yet: a later TYPE replaces an earlier one (Prometheus's metadata does the
        # same), dropping the sample names the earlier one (or HELP, provisionally) registered.
        for sink in fam.sinks:
            self.sinks.pop(sink.name, None)
            self.fast.pop(sink.name, None)
        fam.sinks = []
        fam.type = typ
        for suffix, role in self.suffixes[typ]:
            sample = name + suffix
            other = self.sinks.get(sample)
            if other is not None and other.fam is not fam:
                if other.n or other.bounds:
                    # Samples came before this TYPE (Prometheus accepts that). A family that
                    # has nothing but them and no type of its own is this one: take it over.
                    # Otherwise they stay where they are (merged by PromQL name at the end).
                    if other.role == role and other.fam.type is None and len(other.fam.sinks) == 1:
                        self._absorb(fam, other)
                    continue
                if other.fam.name == sample:
                    continue  # an explicitly declared family keeps its own name
                other.fam.sinks.remove(other)
            self._register(fam, sample, role)

    def _absorb(self, fam: _Family, sink: _Sink) -> None:
        """Move ``sink``'s untyped family (its samples, labels and help) into ``fam``."""
        other = sink.fam
        for key, values in other.values.items():
            for value in values:
                self._add_value(fam, key, value, None)
        for key in other.hc:
            fam.hc.add(key)
            fam.values.pop(key, None)
        if fam.help is None:
            fam.help = other.help
        other.sinks = []
        sink.fam = fam
        fam.sinks.append(sink)
        self.order.remove(other)
        if self.families.get(other.name) is other:
            del self.families[other.name]

    # -- result ----------------------------------------------------------------------------

    def finish(self) -> MetricsSchema:
        """The schema: one entry per name PromQL selects, as Prometheus stores the samples.

        Both formats give the same entries for the same series: an OpenMetrics counter,
        histogram or summary's ``_created`` samples become the entry ``X_created`` (a gauge), as
        0.0.4 clients expose them; a 0.0.4 histogram with ``_gcount``/``_gsum`` samples is a gauge
        histogram. Blocks selected by one name (a family repeated, samples before their TYPE) are
        merged into one entry.
        """
        if self.openmetrics and not self.eof_line:
            raise ExpositionError("truncated exposition: no # EOF", self.lines)
        default = "unknown" if self.openmetrics else "untyped"
        grouped: dict[str, list[MetricFamily]] = {}
        gauge_histograms = {} if self.openmetrics else self._gauge_histograms()
        folded = {id(part) for parts in gauge_histograms.values() for part in parts}
        for fam in self.order:
            if id(fam) in folded:
                continue
            typ = fam.type or default
            name = fam.name
            created: _Sink | None = None
            if self.openmetrics and fam.type is not None:
                name += _OM_PROMQL_SUFFIX.get(typ, "")
                created = next((s for s in fam.sinks if s.name == fam.name + "_created"), None)
            elif id(fam) in gauge_histograms:
                typ = "gaugehistogram"
            entry = _schema_family(fam, name, typ, skip=created)
            grouped.setdefault(name, []).append(entry)
            if created is not None and created.n:
                split = replace(
                    entry,
                    name=created.name,
                    type=CREATED_TYPE,
                    unit="",
                    buckets=(),
                    quantiles=(),
                    series=created.n,
                    has_samples=True,
                )
                grouped.setdefault(created.name, []).append(split)
        out = {name: merge_entries(entries) for name, entries in grouped.items()}
        return MetricsSchema(families=out, content_type=self.content_type)

    def _gauge_histograms(self) -> dict[int, list[_Family]]:
        """0.0.4 ``histogram`` families that are gauge histograms → their ``_gcount``/``_gsum``
        families to fold in (keyed by ``id``).

        Trap: 0.0.4 has no gauge histogram. prometheus_client writes one as ``# TYPE x
        histogram`` with the buckets only, then ``x_gcount`` and ``x_gsum`` as gauge families of
        their own (like ``_created``); older writers put ``x_gcount``/``x_gsum`` samples under the
        histogram. Either way the series are OpenMetrics' ``gaugehistogram`` ``x``.
        """
        out: dict[int, list[_Family]] = {}
        for fam in self.order:
            if fam.type != "histogram":
                continue
            seen = {s.name[len(fam.name) :] for s in fam.sinks if s.n}
            if seen & {"_count", "_sum"}:
                continue
            parts = [
                part
                for part in (self.families.get(fam.name + s) for s in ("_gcount", "_gsum"))
                if part is not None
                and part is not fam
                and part.type in (None, "gauge")
                and _has_samples(part)
            ]
            if parts or seen & {"_gcount", "_gsum"}:
                out[id(fam)] = parts
        return out


def _has_samples(fam: _Family) -> bool:
    return any(s.n or s.bounds for s in fam.sinks)


def merge_entries(entries: list[MetricFamily]) -> MetricFamily:
    """One schema entry from blocks that PromQL selects by one name (in order of appearance).

    The type, help and unit come from the first block with samples (else the first block); label
    keys, values and bounds are united; ``series`` is the largest block's (the blocks may repeat
    the same series).
    """
    if len(entries) == 1:
        return entries[0]
    first = next((e for e in entries if e.has_samples), entries[0])
    values: dict[str, set[str]] = {}
    high = {k for e in entries for k in e.high_cardinality}
    for e in entries:
        for key, vals in e.label_values.items():
            values.setdefault(key, set()).update(vals)
    high |= {k for k, v in values.items() if len(v) > LABEL_VALUE_CAP}
    return replace(
        first,
        help=first.help or next((e.help for e in entries if e.help), ""),
        unit=first.unit or next((e.unit for e in entries if e.unit), ""),
        labels=tuple(sorted({k for e in entries for k in e.labels})),
        label_values={k: tuple(sorted(v)) for k, v in sorted(values.items()) if k not in high},
        high_cardinality=tuple(sorted(high)),
        buckets=tuple(sorted({b for e in entries for b in e.buckets})),
        quantiles=tuple(sorted({q for e in entries for q in e.quantiles})),
        series=max(e.series for e in entries),
        has_samples=any(e.has_samples for e in entries),
    )


def _schema_family(fam: _Family, name: str, typ: str, *, skip: _Sink | None = None) -> MetricFamily:
    series = 0
    buckets: set[float] = set()
    quantiles: set[float] = set()
    has_samples = False
    for sink in fam.sinks:
        if sink is skip:
            continue
        if sink.n:
            has_samples = True
            series = max(series, sink.n)
        if sink.bounds:
            has_samples = True
            per_bound: dict[float | str, int] = {}
            for text, count in sink.bounds.items():
                value = float(text)
                # NaN never equals itself: one key for all its spellings.
                key: float | str = "NaN" if math.isnan(value) else value
                per_bound[key] = per_bound.get(key, 0) + count
                (buckets if sink.role == _BUCKET else quantiles).add(value)
            series = max(series, *per_bound.values())
    labels = sorted(set(fam.values) | fam.hc)
    return MetricFamily(
        name=name,
        type=typ,
        unit=fam.unit or "",
        help=fam.help or "",
        labels=tuple(labels),
        label_values={k: tuple(sorted(v)) for k, v in sorted(fam.values.items())},
        high_cardinality=tuple(sorted(fam.hc)),
        buckets=tuple(sorted(buckets)),
        quantiles=tuple(sorted(quantiles)),
        series=series,
        has_samples=has_samples,
    )


def _parse_sample(
    text: str, openmetrics: bool, ts_re: re.Pattern[str]
) -> tuple[str, list[tuple[str, str]]]:
    """Tokenize one sample line exactly (the slow path). Returns the name and the labels.

    Raises :class:`ExpositionError` (without a line number; the caller adds it) naming what is
    wrong. ``text`` has no leading or trailing blanks.
    """
    n = len(text)
    pos = 0
    name = ""
    if text[0] != "{":
        m = _NAME_RE.match(text)
        if m is None or (m.end() < n and text[m.end()] not in " \t{"):
            token = re.match(r"[^ \t{]*", text)
            raise ExpositionError(
                f"invalid metric name `{_show(token.group() if token else text)}`"
            )
        name = m.group()
        pos = m.end()
    labels: list[tuple[str, str]] = []
    if pos < n and text[pos] == "{":
        pos += 1
        seen: set[str] = set()
        first = True
        while True:
            pos = _skip_ws(text, pos)
            if pos >= n:
                raise ExpositionError("unterminated label set (missing `}`)")
            c = text[pos]
            if c == "}":
                if not first and openmetrics and text[pos - 1] == ",":
                    raise ExpositionError(
                        "trailing comma in label set (not allowed in OpenMetrics)"
                    )
                pos += 1
                break
            if c == '"':
                m = _QUOTED_RE.match(text, pos)
                if m is None:
                    raise ExpositionError("unterminated quoted name")
                term = _unescape(m.group(1))
                pos = _skip_ws(text, m.end())
                if pos < n and text[pos] == "=":
                    key = term
                else:
                    # `{"my.metric",le="1"}`: a quoted metric name inside the braces.
                    if not first or name:
                        raise ExpositionError(f'quoted term "{_show(term)}" is not a label')
                    if not term:
                        raise ExpositionError("empty metric name")
                    name = term
                    first = False
                    pos = _after_label(text, pos, openmetrics)
                    continue
            else:
                m = _LABEL_RE.match(text, pos)
                if m is None:
                    raise ExpositionError(f"invalid label name at `{_show(text[pos : pos + 20])}`")
                key = m.group()
                pos = _skip_ws(text, m.end())
                if pos >= n or text[pos] != "=":
                    raise ExpositionError(f"expected `=` after label name `{_show(key)}`")
            pos = _skip_ws(text, pos + 1)
            if pos >= n or text[pos] != '"':
                raise ExpositionError(f"label value of `{_show(key)}` is not quoted")
            m = _QUOTED_RE.match(text, pos)
            if m is None:
                raise ExpositionError(f"unterminated label value of `{_show(key)}`")
            if key in seen:
                raise ExpositionError(f"duplicate label `{_show(key)}`")
            if key == "__name__":
                raise ExpositionError("label `__name__` is not allowed in a sample")
            seen.add(key)
            labels.append((key, _unescape(m.group(1))))
            first = False
            pos = _after_label(text, m.end(), openmetrics)
    if not name:
        raise ExpositionError("missing metric name")
    # Value, optional timestamp, optional exemplar (OpenMetrics).
    if pos >= n:
        raise ExpositionError(f"missing value for `{_show(name)}`")
    if text[pos] not in " \t":
        raise ExpositionError(f"expected whitespace before the value of `{_show(name)}`")
    pos = _skip_ws(text, pos)
    token = _TOKEN_RE.match(text, pos)
    value = token.group() if token else ""
    if not _is_number(value):
        raise ExpositionError(f"invalid value `{_show(value)}`")
    pos = _skip_ws(text, pos + len(value))
    if pos < n and text[pos] != "#":
        token = _TOKEN_RE.match(text, pos)
        stamp = token.group() if token else ""
        if ts_re.match(stamp) is None:
            raise ExpositionError(f"invalid timestamp `{_show(stamp)}`")
        pos = _skip_ws(text, pos + len(stamp))
    if pos < n:
        if not openmetrics:
            raise ExpositionError(
                f"unexpected text after the value: `{_show(text[pos:])}` "
                "(exemplars need OpenMetrics)"
            )
        _check_exemplar(text, pos, ts_re)
    return name, labels


def _skip_ws(text: str, pos: int) -> int:
    m = _WS_RE.match(text, pos)
    return m.end() if m else pos


def _after_label(text: str, pos: int, openmetrics: bool) -> int:
    """After one label (or a quoted name): a comma, or the closing brace (left in place)."""
    pos = _skip_ws(text, pos)
    if pos < len(text) and text[pos] == ",":
        return pos + 1
    if pos < len(text) and text[pos] == "}":
        return pos
    if pos >= len(text):
        raise ExpositionError("unterminated label set (missing `}`)")
    raise ExpositionError(f"expected `,` or `}}` in label set at `{_show(text[pos : pos + 20])}`")


def _check_exemplar(text: str, pos: int, ts_re: re.Pattern[str]) -> None:
    """``# {trace_id="abc"} 1.0 [timestamp]``: validated and dropped (not part of a schema)."""
    if not text.startswith("# {", pos):
        raise ExpositionError(f"unexpected text after the value: `{_show(text[pos:])}`")
    pos += 3
    n = len(text)
    while True:
        pos = _skip_ws(text, pos)
        if pos < n and text[pos] == "}":
            pos += 1
            break
        m = _LABEL_RE.match(text, pos) or _QUOTED_RE.match(text, pos)
        if m is None:
            raise ExpositionError("invalid exemplar label set")
        pos = _skip_ws(text, m.end())
        if pos >= n or text[pos] != "=":
            raise ExpositionError("invalid exemplar label set")
        pos = _skip_ws(text, pos + 1)
        m = _QUOTED_RE.match(text, pos)
        if m is None:
            raise ExpositionError("unterminated exemplar label value")
        pos = _skip_ws(text, m.end())
        if pos < n and text[pos] == ",":
            pos += 1
        elif pos >= n or text[pos] != "}":
            raise ExpositionError("invalid exemplar label set")
    rest = text[pos:].split()
    if not rest or not _is_number(rest[0]):
        raise ExpositionError("exemplar without a valid value")
    if len(rest) > 2 or (len(rest) == 2 and ts_re.match(rest[1]) is None):
        raise ExpositionError(f"invalid exemplar timestamp `{_show(' '.join(rest[1:]))}`")


# -- entry points ------------------------------------------------------------------------------


def _clean(block: str) -> str:
    if "\r" in block:
        block = block.replace("\r\n", "\n")
        if block.endswith("\r"):  # the \n was the cut point
            block = block[:-1]
    return block


def parse_text(text: str, *, content_type: str = "") -> MetricsSchema:
    """Read a whole exposition held in memory (blocks of it at a time, never split into lines).

    ``content_type`` is the negotiated Content-Type, if known; otherwise the format is sniffed
    (see :func:`is_openmetrics`). Raises :class:`ExpositionError` on the first invalid line.
    """
    return _parse_text(text, content_type, fast_path=True)


def _parse_text(text: str, content_type: str, fast_path: bool) -> MetricsSchema:
    openmetrics = is_openmetrics(content_type, text[:DETECT_BYTES] + "\n" + text[-512:])
    reader = _Reader(openmetrics, content_type or _canonical(openmetrics), fast_path)
    if not text:
        return reader.finish()
    # The lines are text.split("\n") less the empty piece after a final newline.
    stop = len(text) - 1 if text.endswith("\n") else len(text)
    start = 1 if text.startswith("\ufeff") else 0
    while start <= stop:
        end = start + BLOCK_CHARS
        cut = text.rfind("\n", start, end) if end < stop else stop
        if cut < 0:  # one line longer than a block: look no further than the longest allowed
            limit = start + MAX_LINE_BYTES + 1
            cut = text.find("\n", end, min(stop, limit))
            if cut < 0:
                cut = stop
            if cut - start > MAX_LINE_BYTES:
                raise _too_long(reader.lines + 1)
        reader.feed(_clean(text[start:cut]))
        start = cut + 1
    return reader.finish()


def _canonical(openmetrics: bool) -> str:
    return CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT


def parse_stream(chunks: Iterable[bytes], *, content_type: str = "") -> MetricsSchema:
    """Read an exposition from byte chunks (e.g. ``httpx.Response.iter_bytes()``) as they come.

    Chunks are gathered into blocks cut at a newline and each block is decoded on its own:
    a UTF-8 sequence never contains a newline byte, so a cut there never splits a character, and
    invalid UTF-8 is reported with the number of the line that holds it. Only one block and the
    schema are in memory at a time.
    """
    it = iter(chunks)
    head: list[bytes] = []
    size = 0
    for chunk in it:
        head.append(chunk)
        size += len(chunk)
        if size >= DETECT_BYTES:
            break
    first = b"".join(head)
    probe = first.decode("utf-8", "replace")
    openmetrics = is_openmetrics(content_type, probe)
    reader = _Reader(openmetrics, content_type or _canonical(openmetrics))
    _feed_bytes(reader, _prepend(first, it))
    return reader.finish()


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _too_long(line: int) -> ExpositionError:
    return ExpositionError(f"line longer than {MAX_LINE_BYTES >> 20} MiB", line)


def _feed_bytes(reader: _Reader, chunks: Iterable[bytes]) -> None:
    """Gather chunks into blocks of whole lines and feed them.

    Each byte is looked at once for a newline (only the new chunk is searched), so a very long
    line costs linear time; a line past :data:`MAX_LINE_BYTES` fails as soon as that many bytes
    of it have arrived, holding at most that much in memory.
    """
    pending: list[bytes] = []
    size = 0
    #: Bytes after the last newline in ``pending`` (the line being read); -1: no newline yet.
    tail = 0
    has_newline = False
    at_start = True
    for chunk in chunks:
        if not chunk:
            continue
        pending.append(chunk)
        size += len(chunk)
        nl = chunk.rfind(b"\n")
        if nl < 0:
            tail += len(chunk)
            if tail > MAX_LINE_BYTES:
                raise _too_long(reader.lines + sum(c.count(b"\n") for c in pending) + 1)
        else:
            tail = len(chunk) - nl - 1
            has_newline = True
        if size < BLOCK_CHARS or not has_newline:
            continue
        data = b"".join(pending)
        cut = len(data) - tail - 1
        _feed_block(reader, data[:cut], at_start)
        at_start = False
        rest = data[cut + 1 :]
        pending = [rest] if rest else []
        size = len(rest)
        has_newline = False
    data = b"".join(pending)
    if data.endswith(b"\n"):
        data = data[:-1]
    elif not data:
        return
    _feed_block(reader, data, at_start)


def _feed_block(reader: _Reader, data: bytes, at_start: bool) -> None:
    if at_start and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if len(data) > MAX_LINE_BYTES:  # only then can a line in it be too long (one scan)
        start = 0
        while start <= len(data):
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end
            if end - start > MAX_LINE_BYTES:
                raise _too_long(reader.lines + data.count(b"\n", 0, start) + 1)
            start = end + 1
    try:
        block = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = reader.lines + data.count(b"\n", 0, err.start) + 1
        bad = data[err.start : err.end].hex(" ")
        raise ExpositionError(f"invalid UTF-8 (bytes {bad})", line) from None
    reader.feed(_clean(block))


def read_exposition_file(path: str | Path) -> MetricsSchema:
    """Read an exposition file in chunks; the format is sniffed from its start and its end.

    A file that cannot be read raises :class:`InputError` with a one-line message naming it; an
    invalid exposition raises :class:`ExpositionError` (``.line``, ``.reason``), whose message the
    caller prefixes with the file name.
    """
    with reading(path, "exposition file") as p, open(p, "rb") as fh:
        head = fh.read(DETECT_BYTES)
        size = os.fstat(fh.fileno()).st_size
        tail = b""
        if size > len(head):
            fh.seek(max(len(head), size - 512))
            tail = fh.read()
            fh.seek(len(head))
        probe = (head + b"\n" + tail).decode("utf-8", "replace")
        openmetrics = is_openmetrics("", probe)
        reader = _Reader(openmetrics, _canonical(openmetrics))
        _feed_bytes(reader, _prepend(head, iter(lambda: fh.read(BLOCK_CHARS), b"")))
    return reader.finish()
