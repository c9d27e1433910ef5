"""Consumers: the alerts, recording rules, dashboards and queries that read a service's metrics.

``load_consumers`` reads them (with file and line), ``check_consumers`` names the ones a
transition breaks and attaches them to the metrics findings that explain why, and
``render_bridge_rules`` writes the recording rules that keep them working across a rename.
"""

from compatcheck.consumers.bridge import render_bridge_rules, rewrite_query
from compatcheck.consumers.collector import PARSE_ERROR
from compatcheck.consumers.judge import BUCKET_DEPENDENT, QUERY_BROKEN, check_consumers
from compatcheck.consumers.load import (
    ConsumerFile,
    ConsumerSet,
    Expression,
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
    "check_consumers",
    "list_consumer_files",
    "load_consumers",
    "read_consumer_files",
    "render_bridge_rules",
    "rewrite_query",
]
