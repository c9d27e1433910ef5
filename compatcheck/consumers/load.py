"""Read consumers: Prometheus rule files, Grafana dashboards and plain PromQL lists.

Every expression keeps the file and line it came from, because a finding an SRE cannot locate is a
finding they cannot act on. One reader per input format, chosen by the file's suffix (sniffed from
its content for a file named explicitly with another suffix):

* :mod:`~compatcheck.consumers.rulefile` — Prometheus rule files and ``PrometheusRule`` objects;
* :mod:`~compatcheck.consumers.grafana` — Grafana dashboards (current and legacy schema, exports);
* :mod:`~compatcheck.consumers.textlist` — one expression per line;
* :mod:`~compatcheck.consumers.live` — ``prometheus:URL``: the rules a running Prometheus loaded.

Unreadable content becomes a ``consumers/parse-error`` finding (the run goes on); a path that does
not exist is an :class:`~compatcheck.errors.InputError` (the user mistyped something).

Subjects (the public, stable id of a consumer, used by waivers) are::

    alert:<alertname>            record:<record name>
    panel:<dashboard title>/<panel title>     (``#<id>`` appended when the title is empty or
                                               repeated in the dashboard)
    variable:<dashboard title>/<variable name>
    query:<file>:<line>          (text files: an expression has no other name)

A subject that two consumers would share (the same alert name in two groups, a per-job record
defined twice) gets ``@<file>`` (the path relative to the folder given, or the file name), then
``#<n>`` in document order if still shared.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from compatcheck.checks.consumers import PARSE_ERROR
from compatcheck.consumers.collector import Collector, Source, gc_paused
from compatcheck.consumers.grafana import read_dashboard
from compatcheck.consumers.live import add_live_rules, check_live, is_live, read_live_rules
from compatcheck.consumers.promql import Node, PromQLError, parse_consumer
from compatcheck.consumers.rulefile import read_rule_file
from compatcheck.consumers.textlist import read_text_list
from compatcheck.errors import InputError
from compatcheck.model import Consumer, Finding

if TYPE_CHECKING:
    from compatcheck.verify.client import Rule


@dataclass(frozen=True)
class Expression:
    """One PromQL expression of one consumer (a panel has one per target)."""

    subject: str
    consumer: Consumer
    text: str
    line: int | None
    #: The name a recording rule writes, so that its readers can be judged through it.
    record: str | None = None
    node: Node | None = None
    error: str | None = None
    #: Where in the consumer: ``expr``, ``target A``, ``query``...
    where: str = "expr"
    #: Its value is an instant vector (see :attr:`~compatcheck.consumers.promql.Parsed.vector`).
    vector: bool = False


@dataclass(frozen=True)
class ConsumerSet:
    """Everything loaded from ``--consumers``: expressions, and the files that could not be read."""

    expressions: tuple[Expression, ...] = ()
    findings: tuple[Finding, ...] = ()
    consumers: dict[str, Consumer] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsumerFile:
    """One file :func:`load_consumers` reads: ``rel`` names it in subjects; an ``explicit`` file
    (named, not found in a folder) that is not a consumer is a parse error."""

    path: Path
    rel: str
    explicit: bool


@dataclass(frozen=True)
class _Format:
    """One input format: its reader (False: the file is not of this format) and its name."""

    read: Callable[[Source, str], bool]
    what: str


_RULES = _Format(read_rule_file, "a Prometheus rule file or PrometheusRule")
_DASHBOARD = _Format(read_dashboard, "a Grafana dashboard")
_TEXT = _Format(read_text_list, "a list of PromQL expressions")
#: The reader of each suffix a folder's files are read for.
_FORMATS: dict[str, _Format] = {
    ".yml": _RULES,
    ".yaml": _RULES,
    ".json": _DASHBOARD,
    ".promql": _TEXT,
    ".txt": _TEXT,
}


def load_consumers(paths: Sequence[str | Path]) -> ConsumerSet:
    """Load rule files, dashboards and expression lists from files and folders (recursively),
    and the rules loaded in each Prometheus named ``prometheus:URL``, in the order given.

    Folders contribute their ``.yml``/``.yaml`` (rules), ``.json`` (dashboards) and
    ``.promql``/``.txt`` (expressions) files, skipping hidden ones; YAML or JSON in a folder that is
    neither a rule file nor a dashboard is ignored. A file named explicitly is read whatever its
    suffix. Every path and URL is checked before anything is read or asked.
    """
    # Every path and URL checked first: a typo after a live source must not wait for its answer.
    plan = [str(p) if is_live(p) else list_consumer_files([p]) for p in paths]
    for p in plan:
        if isinstance(p, str):
            check_live(p)
    collector = Collector()
    with gc_paused():
        for p in plan:
            if isinstance(p, str):
                read_live_rules(collector, p)
                continue
            for f in p:
                _read_file(Source(str(f.path), f.rel, collector), f.path, f.explicit, None)
        return _finish(collector)


@dataclass(frozen=True)
class LiveRules:
    """The rules one ``prometheus:URL`` answered with, read beforehand by the caller (the hook
    keeps them for a short while: see :mod:`compatcheck.serve.inputs`)."""

    spec: str
    rules: tuple[Rule, ...]


def read_consumer_files(
    files: Sequence[ConsumerFile | LiveRules], read: Callable[[Path], bytes] | None = None
) -> ConsumerSet:
    """Load ``files`` (and live rules already read), in order; ``read`` supplies the files'
    bytes (default: read them from disk now)."""
    collector = Collector()
    with gc_paused():
        for f in files:
            if isinstance(f, LiveRules):
                add_live_rules(collector, f.rules)
            else:
                _read_file(Source(str(f.path), f.rel, collector), f.path, f.explicit, read)
        return _finish(collector)


def list_consumer_files(paths: Sequence[str | Path]) -> list[ConsumerFile]:
    """The files :func:`load_consumers` reads for ``paths``, in order; a missing path is an
    :class:`InputError`."""
    out: list[ConsumerFile] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(
                f
                for f in path.rglob("*")
                if f.is_file()
                and f.suffix.lower() in _FORMATS
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
            out += [ConsumerFile(f, f.relative_to(path).as_posix(), False) for f in files]
        elif path.is_file():
            out.append(ConsumerFile(path, path.name, True))
        elif path.exists():
            raise InputError(f"{p}: not a file or folder")
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


def _read_file(
    source: Source, path: Path, explicit: bool, read: Callable[[Path], bytes] | None
) -> None:
    try:
        text = (read or Path.read_bytes)(path).decode("utf-8")
    except UnicodeDecodeError:
        source.parse_error(None, "not UTF-8 text")
        return
    except OSError as exc:
        source.parse_error(None, f"cannot read: {exc.strerror}")
        return
    fmt = _FORMATS.get(path.suffix.lower()) or _sniff(text)
    if not fmt.read(source, text) and explicit:
        source.parse_error(None, f"not {fmt.what}")


def _sniff(text: str) -> _Format:
    """The format of a file named explicitly with a suffix of no format."""
    if text.lstrip().startswith("{"):
        return _DASHBOARD
    if re.search(r"^\s*(groups|spec)\s*:", text, re.M):
        return _RULES
    return _TEXT


# ---------------------------------------------------------------------------------------------
# Subjects and parsing
# ---------------------------------------------------------------------------------------------


def _finish(collector: Collector) -> ConsumerSet:
    # One consumer may own several raws (a panel's targets): identity is the Consumer object.
    owners: dict[str, list[Consumer]] = {}
    for raw in collector.raws:
        lst = owners.setdefault(raw.base, [])
        if not any(c is raw.consumer for c in lst):
            lst.append(raw.consumer)
    rel_of = {id(r.consumer): r.rel for r in collector.raws}
    subject_of: dict[int, str] = {}
    for base, owned in owners.items():
        if len(owned) == 1:
            subject_of[id(owned[0])] = base
            continue
        qualified = [f"{base}@{rel_of[id(c)]}" for c in owned]
        counts = Counter(qualified)
        seen: Counter[str] = Counter()
        for c, q in zip(owned, qualified, strict=True):
            if counts[q] > 1:
                seen[q] += 1
                q = f"{q}#{seen[q]}"
            subject_of[id(c)] = q

    expressions: list[Expression] = []
    findings = collector.error_findings()
    consumers: dict[str, Consumer] = {}
    errored: set[str] = set()
    for raw in collector.raws:
        subject = subject_of[id(raw.consumer)]
        consumers[subject] = raw.consumer
        try:
            parsed = parse_consumer(raw.text, raw.grafana, raw.root_needs)
        except PromQLError as exc:
            expr = Expression(
                subject, raw.consumer, raw.text, raw.line, raw.record, None, str(exc), raw.where
            )
            expressions.append(expr)
            if subject not in errored:  # one finding per consumer: the subject is its identity
                errored.add(subject)
                findings.append(_expression_error(expr, str(exc)))
            continue
        # Built once, positionally (dataclasses.replace costs several times a construction).
        node, vector = parsed.node, parsed.vector
        expressions.append(
            Expression(
                subject, raw.consumer, raw.text, raw.line, raw.record, node, None, raw.where, vector
            )
        )
    return ConsumerSet(tuple(expressions), tuple(findings), consumers)


def _expression_error(expr: Expression, reason: str) -> Finding:
    c = expr.consumer
    where = f"{c.file}:{expr.line}" if expr.line else c.file
    return Finding(
        PARSE_ERROR,
        expr.subject,
        f"{c.type} `{c.name}` ({where}) has a PromQL expression that does not parse: {reason}.",
        {"consumer": c.to_json(), "expr": expr.text, "line": expr.line, "error": reason},
        consumers=(c,),
    )
