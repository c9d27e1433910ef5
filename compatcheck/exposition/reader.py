"""The exposition reader's state machine: one pass over lines, a fast path and a slow path.

Speed comes from a fast path that handles the ordinary sample line
(``name{k="v",...,le="0.5"} 1.5 [ts]``) with C-level string operations and caches, and a slow
path (a careful tokenizer) for everything else: comments, escapes, quoted UTF-8 names, exemplars,
whitespace oddities, and every error. The fast path is *sound*: it accepts a line only when the
line is certainly valid and means what the fast path thinks; anything unusual goes to the slow
path, which decides exactly (and produces the error message with its line number).

Known gap: a label name repeated within one sample (``{a="1",a="2"}``) is reported only when the
line reaches the slow path (a label piece not seen before in its family); checking it on every
fast-path line would cost about a quarter of the throughput.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compatcheck.errors import ExpositionError
from compatcheck.exposition.families import (
    PLAIN,
    SUFFIXES_OM,
    SUFFIXES_TEXT,
    Family,
    Sink,
    assemble_schema,
)
from compatcheck.exposition.grammar import (
    LEGACY_NAME_RE,
    PIECE_RE,
    TAIL_OM_RE,
    TAIL_TEXT_RE,
    TS_OM_RE,
    TS_TEXT_RE,
    is_number,
    parse_comment,
    parse_sample,
    show,
)
from compatcheck.model import LABEL_VALUE_CAP, MetricsSchema

#: Longest ``# HELP`` text kept: help is stored in the schema and shown in reports.
MAX_HELP_CHARS = 1 << 16
# Trap: CPython 3.11 compiles `NAME.match(x)` to a bound-method lookup (LOAD_ATTR) instead of
# LOAD_METHOD when NAME was imported (it may be a module), one allocation per call. The pattern
# is imported from the grammar, so its method is bound once here for the per-piece hot path.
_match_piece = PIECE_RE.match


@dataclass
class Reader:
    """Incremental state of one exposition. Feed it blocks of whole lines, then ``finish``."""

    openmetrics: bool
    content_type: str
    #: Tests turn the fast path off to check that both paths build the same schema.
    fast_path: bool = True

    def __post_init__(self) -> None:
        #: Metadata name → the family its next HELP/TYPE/UNIT line describes (the latest block).
        self.families: dict[str, Family] = {}
        #: Every family block in order of appearance, including earlier blocks of a name.
        self.order: list[Family] = []
        #: Every sample name → its sink.
        self.sinks: dict[str, Sink] = {}
        #: Sample names usable by the fast path: legacy (unquoted) names only. Cleared at
        #: ``# EOF`` so that anything after it reaches the slow path and its error.
        self.fast: dict[str, Sink] = {}
        self.suffixes = SUFFIXES_OM if self.openmetrics else SUFFIXES_TEXT
        self.tail_re = TAIL_OM_RE if self.openmetrics else TAIL_TEXT_RE
        self.ts_re = TS_OM_RE if self.openmetrics else TS_TEXT_RE
        self.eof_line = 0
        self.lines = 0

    # -- fast path -------------------------------------------------------------------------

    def feed(self, block: str) -> None:
        """Read ``block``: whole lines joined by ``\\n`` (no trailing newline), CRLF removed.

        A line with labels is cut by two single-argument ``partition`` calls (``name{``,
        ``labels"}``, tail): in CPython 3.11 ``find``/``rfind``/``startswith`` parse their
        optional arguments generically, which cost more than the search itself.
        """
        fast = self.fast
        tail_at = self.tail_re.match
        lineno = self.lines
        # The name of the previous fast line and its sink: consecutive lines mostly share it.
        # Reset after every slow line, the only place where metadata (and so sinks) change.
        # "\n" never equals a name (a line holds none).
        prev, prev_sink = "\n", None
        for line in block.split("\n"):
            lineno += 1
            name, brace, rest = line.partition("{")
            if name == prev:
                sink = prev_sink
            else:
                sink = fast.get(name) if brace else None
                if sink is None:
                    if not brace:
                        sp = line.find(" ")
                        if sp > 0:
                            sink = fast.get(line[:sp])
                            if sink is not None and sink.role == PLAIN and tail_at(line, sp):
                                sink.n += 1
                                continue
                    self._slow(line, lineno)
                    prev = "\n"
                    continue
                prev, prev_sink = name, sink
            assert sink is not None
            # The tail is validated first: once it holds no `}` nor `"`, the last `"}` closes
            # the label set whatever the label values contain. `labels` is not empty: a valid
            # label set holds at least `k="`. The commonest tails, ` <digits>` and
            # ` <digits>.<digits>`, are checked by string methods at half the cost of the
            # pattern, which decides every other tail.
            labels, _, tail = rest.rpartition('"}')
            if labels and (
                (
                    ((digits := tail[1:]).isdigit() or digits.replace(".", "", 1).isdigit())
                    and tail[0] == " "
                    and tail.isascii()
                )
                or tail_at(tail) is not None
            ):
                fam = sink.fam
                if sink.role:
                    tag = sink.bound_tag
                    body, _, bound = labels.rpartition(tag)
                    if not body:  # the bound is the only label, or the line needs the slow path
                        bound = labels[len(tag) - 2 :] if labels.startswith(tag[2:]) else '"'
                    bounds = sink.bounds
                    seen = bounds.get(bound)
                    if seen is None and ('"' in bound or not is_number(bound)):
                        pass  # no bound, or an escaped or invalid one: the exact path decides
                    elif not body or body == fam.last:
                        bounds[bound] = (seen or 0) + 1
                        continue
                    else:
                        pieces = body.split('",')
                        if fam.pieces.issuperset(pieces) or self._add_pieces(fam, pieces):
                            fam.last = body
                            bounds[bound] = (seen or 0) + 1
                            continue
                    # Bound not last, missing, escaped or invalid, or labels need the exact path.
                elif labels == fam.last:
                    sink.n += 1
                    continue
                else:
                    pieces = labels.split('",')
                    if fam.pieces.issuperset(pieces) or self._add_pieces(fam, pieces):
                        fam.last = labels
                        sink.n += 1
                        continue
            self._slow(line, lineno)
            prev = "\n"
        self.lines = lineno

    def _add_pieces(self, fam: Family, pieces: list[str]) -> bool:
        """Fold the ``key="value`` pieces of a fast-path label body into ``fam``; False if one
        needs the slow path (whatever was folded before it is folded again there, harmlessly:
        values are sets)."""
        known = fam.pieces
        hc_fast = fam.hc_fast
        for piece in pieces:
            if piece in known:
                continue
            key, eq, value = piece.partition('="')
            if key in hc_fast and eq:
                # A high-cardinality key: its name is known valid, so the piece is valid when
                # the value holds no quote or backslash (a newline cannot occur inside a line).
                # Nothing is stored: only the key counts.
                if '"' in value or "\\" in value:
                    return False
                continue
            if _match_piece(piece) is None or key == "__name__":
                return False
            self._add_value(fam, key, value, piece)
        return True

    def _add_value(self, fam: Family, key: str, value: str, piece: str | None) -> None:
        if key in fam.hc:
            return
        values = fam.values.get(key)
        if values is None:
            values = fam.values[key] = set()
        values.add(value)
        if len(values) > LABEL_VALUE_CAP:
            fam.mark_high_cardinality(key)
        elif piece is not None:
            fam.pieces.add(piece)

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
        name, labels = parse_sample(text, self.openmetrics, self.ts_re)
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
            if bound is None or (bound not in sink.bounds and not is_number(bound)):
                sink.n += 1
            else:
                sink.bounds[bound] = sink.bounds.get(bound, 0) + 1
            labels = rest
        else:
            sink.n += 1
        for key, value in labels:
            self._add_value(fam, key, value, None)

    def _implicit(self, name: str, lineno: int) -> Sink:
        """A sample whose name no TYPE/HELP claimed: its own untyped family (what PromQL sees).

        Trap: the name may be a family's metadata name that its type does not use for samples
        (``c`` of an OpenMetrics counter ``c``, whose samples are ``c_total``). Prometheus stores
        such a sample all the same, so it is a family of its own, not an error; the metadata name
        keeps describing the declared family.
        """
        fam = Family(name, lineno, implicit=True)
        self.families.setdefault(name, fam)
        self.order.append(fam)
        return self._register(fam, name, PLAIN)

    def _register(self, fam: Family, name: str, role: int) -> Sink:
        sink = Sink(fam, name, role)
        fam.sinks.append(sink)
        self.sinks[name] = sink
        if self.fast_path and LEGACY_NAME_RE.match(name):
            self.fast[name] = sink
        return sink

    def _comment(self, text: str, lineno: int) -> None:
        comment = parse_comment(text, self.openmetrics)
        if comment is None:
            return
        word, name, value = comment
        if word == "EOF":
            self.eof_line = lineno
            self.fast.clear()
            return
        _METADATA[word](self, name, value, lineno)

    def _declared(self, name: str, lineno: int) -> Family:
        """The family a metadata line for ``name`` describes.

        Metadata after samples starts a new block of that name: client_golang's OpenMetrics
        output has a gauge ``go_memstats_alloc_bytes`` and, further down, a counter with the same
        metadata name (samples ``go_memstats_alloc_bytes_total``). Prometheus's parser takes
        each block as it comes; so does this reader. Blocks that end up with one PromQL name are
        merged in :meth:`finish`.
        """
        fam = self.families.get(name)
        if fam is None or fam.implicit or fam.has_samples():
            fam = Family(name, lineno, implicit=False)
            self.families[name] = fam
            self.order.append(fam)
            if name not in self.sinks:
                # Until a TYPE says otherwise, the family's samples are named like it.
                self._register(fam, name, PLAIN)
        return fam

    def _help(self, name: str, text: str, lineno: int) -> None:
        if len(text) > MAX_HELP_CHARS:
            raise ExpositionError(f"# HELP for `{name}` is longer than {MAX_HELP_CHARS} characters")
        fam = self._declared(name, lineno)
        if fam.help is None:  # a repeated HELP merges; the first one wins
            fam.help = text

    def _unit(self, name: str, unit: str, lineno: int) -> None:
        if unit and not LEGACY_NAME_RE.match(unit):
            raise ExpositionError(f"invalid unit `{show(unit)}` for `{name}`")
        # As Prometheus's OpenMetrics parser (and the specification): a unit is the suffix of
        # the family name, `_` included; a `# UNIT` that is not fails the whole scrape.
        if unit and not name.endswith("_" + unit):
            raise ExpositionError(f"unit `{show(unit)}` is not a suffix of metric `{show(name)}`")
        fam = self._declared(name, lineno)
        if fam.unit is None:  # a repeated UNIT merges; the first one wins, as HELP
            fam.unit = unit

    def _type(self, name: str, typ: str, lineno: int) -> None:
        if not typ:
            raise ExpositionError(f"# TYPE for `{name}` has no type")
        if typ not in self.suffixes:
            fmt = "OpenMetrics" if self.openmetrics else "text format 0.0.4"
            raise ExpositionError(f"unknown metric type `{show(typ)}` ({fmt})")
        # `_declared` starts a new block when the family already has samples, so `fam` has none.
        fam = self._declared(name, lineno)
        if fam.type == typ:
            return  # the same family again: merge
        suffixes = self.suffixes[typ]
        if suffixes == _PLAIN_ONLY and [(s.name, s.role) for s in fam.sinks] == [(name, PLAIN)]:
            # A counter or gauge after its HELP: the sample name HELP registered is the one this
            # type uses (dropping and registering it again, as below, would change nothing).
            fam.type = typ
            return
        # No samples yet: a later TYPE replaces an earlier one (Prometheus's metadata does the
        # same), dropping the sample names the earlier one (or HELP, provisionally) registered.
        for sink in fam.sinks:
            self.sinks.pop(sink.name, None)
            self.fast.pop(sink.name, None)
        fam.sinks = []
        fam.type = typ
        for suffix, role in suffixes:
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

    def _absorb(self, fam: Family, sink: Sink) -> None:
        """Move ``sink``'s untyped family (its samples, labels and help) into ``fam``."""
        other = sink.fam
        for key, values in other.values.items():
            for value in values:
                self._add_value(fam, key, value, None)
        for key in other.hc:
            fam.mark_high_cardinality(key)
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
        """The schema (see :func:`~compatcheck.exposition.families.assemble_schema`)."""
        if self.openmetrics and not self.eof_line:
            raise ExpositionError("truncated exposition: no # EOF", self.lines)
        return assemble_schema(self.order, self.families, self.openmetrics, self.content_type)


#: The sample names of a type whose samples carry the family's own name and nothing else.
_PLAIN_ONLY = (("", PLAIN),)

#: The handler of each metadata line (``# HELP``/``# TYPE``/``# UNIT``) by its word.
_METADATA: dict[str, Callable[[Reader, str, str, int], None]] = {
    "HELP": Reader._help,
    "TYPE": Reader._type,
    "UNIT": Reader._unit,
}
