"""Consumers: the alerts, recording rules, dashboards and queries that read a service's metrics.

``load_consumers`` reads them (with file and line), ``check_consumers`` names the ones a
transition breaks and attaches them to the metrics findings that explain why, and
``render_bridge_rules`` writes the recording rules that keep them working across a rename.

Where it sits: in the checks step (capture → compare → checks → policy → report → reporters):
the engine reads the files given with ``--consumers`` (the hook keeps them loaded) and judges them
against both metrics schemas. The modules:

* :mod:`~compatcheck.consumers.load` — entry points, the format of each file, subjects, parsing;
* one reader per input format: :mod:`~compatcheck.consumers.rulefile` (Prometheus rule files,
  ``PrometheusRule``), :mod:`~compatcheck.consumers.grafana` (dashboards) and
  :mod:`~compatcheck.consumers.textlist` (one expression per line), which add what they find to a
  :mod:`~compatcheck.consumers.collector`;
* :mod:`~compatcheck.consumers.promql` — parsing and what each selector needs;
* :mod:`~compatcheck.consumers.judge` — the findings; :mod:`~compatcheck.consumers.bridge` —
  renames and bridging recording rules.
"""

from compatcheck.checks.consumers import BUCKET_DEPENDENT, PARSE_ERROR, QUERY_BROKEN
from compatcheck.consumers.bridge import render_bridge_rules, rewrite_query
from compatcheck.consumers.judge import check_consumers
from compatcheck.consumers.load import (
    ConsumerFile,
    ConsumerSet,
    Expression,
    LiveRules,
    list_consumer_files,
    load_consumers,
    read_consumer_files,
)

__all__ = [
    "BUCKET_DEPENDENT",
    "PARSE_ERROR",
    "QUERY_BROKEN",
    "ConsumerFile",
    "ConsumerSet",
    "Expression",
    "LiveRules",
    "check_consumers",
    "list_consumer_files",
    "load_consumers",
    "read_consumer_files",
    "render_bridge_rules",
    "rewrite_query",
]
