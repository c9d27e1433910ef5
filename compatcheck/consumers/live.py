"""Consumers read live: the alerting and recording rules a running Prometheus has loaded.

``--consumers prometheus:URL`` asks that Prometheus (``/api/v1/rules``) instead of reading rule
files from a checkout, because during an incident what matters is what the monitoring evaluates
now, not what a repository says it should. Each rule becomes a consumer like one read from a file:
the same subjects (``alert:<name>``, ``record:<name>``, qualified with ``@<file>`` when shared),
its group, and the rule file as Prometheus reports it (no line: Prometheus does not report one).

A Prometheus that cannot be asked is an :class:`~compatcheck.errors.UnavailableError` (exit 3)
naming the masked URL: a run that silently judged no consumers would claim more than it knows.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from compatcheck.consumers.collector import Collector, Source
from compatcheck.consumers.promql import Need
from compatcheck.consumers.rulefile import template_labels
from compatcheck.errors import InputError
from compatcheck.masking import mask_secrets
from compatcheck.model import Consumer

if TYPE_CHECKING:
    from compatcheck.verify.client import Rule

#: The prefix that makes a ``--consumers`` value a live Prometheus, not a path.
PREFIX = "prometheus:"


def is_live(spec: object) -> bool:
    """Whether a ``--consumers`` value names a live Prometheus (``prometheus:URL``)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def check_live(spec: str) -> str:
    """The URL of ``prometheus:URL``; an :class:`InputError` when it is not an http(s) URL."""
    url = spec[len(PREFIX) :].strip()
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise InputError(
            f"--consumers {mask_secrets(spec)}: expected prometheus:http(s)://HOST:PORT"
        )
    return url


def fetch_live_rules(spec: str, *, timeout: float = 10.0) -> tuple[Rule, ...]:
    """Every alerting and recording rule loaded in the Prometheus of ``spec``, as it answers now
    (:class:`~compatcheck.verify.client.PrometheusUnavailable` when it cannot be asked)."""
    from compatcheck.verify.client import PrometheusClient

    with PrometheusClient(check_live(spec), timeout=timeout) as client:
        return tuple(client.rules())


def rules_digest(rules: tuple[Rule, ...]) -> str:
    """The sha256 of ``rules`` as judged (type, name, query, group, file, labels, annotations):
    what the hook's verdict cache keys a live source by, like a file by its bytes."""
    doc = [
        [r.type, r.name, r.query, r.group, r.file, sorted(r.labels.items()),
         sorted(r.annotations.items())]
        for r in rules
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def read_live_rules(collector: Collector, spec: str, *, timeout: float = 10.0) -> None:
    """Add every alerting and recording rule loaded in the Prometheus of ``spec``."""
    add_live_rules(collector, fetch_live_rules(spec, timeout=timeout))


def add_live_rules(collector: Collector, rules: tuple[Rule, ...]) -> None:
    """Add ``rules`` (as :func:`fetch_live_rules` read them) like rules read from files."""
    for rule in rules:
        if rule.type == "alerting":
            kind = "alert"
        elif rule.type == "recording":
            kind = "record"
        else:
            continue
        source = Source(rule.file, rule.file, collector)
        consumer = Consumer(type=kind, name=rule.name, file=rule.file, group=rule.group)
        root_needs: frozenset[Need] = frozenset()
        if kind == "alert":
            labels = [*rule.annotations.values(), *rule.labels.values()]
            root_needs = frozenset((label, "template") for label in template_labels(labels))
        source.add(
            f"{kind}:{rule.name}",
            consumer,
            rule.query,
            None,
            grafana=False,
            root_needs=root_needs,
            record=rule.name if kind == "record" else None,
        )
