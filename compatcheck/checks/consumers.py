"""Consumers: the alerts, recording rules and panels a transition breaks, or cannot read.

The judgement itself (PromQL against both metrics schemas) is :mod:`compatcheck.consumers`; it is
made once per evaluation (:func:`compatcheck.checks.metrics.judged`), since the metrics check
attaches the same consumers to its findings.
"""

from __future__ import annotations

from compatcheck.checks.metrics import judged
from compatcheck.model import Finding
from compatcheck.rules import CheckContext, check

QUERY_BROKEN = "consumers/query-broken"
BUCKET_DEPENDENT = "consumers/bucket-dependent"
PARSE_ERROR = "consumers/parse-error"


@check(QUERY_BROKEN, BUCKET_DEPENDENT, PARSE_ERROR)
def consumers_broken(ctx: CheckContext) -> list[Finding]:
    """The consumers the transition breaks, and the consumer files that could not be read."""
    judgement = judged(ctx)
    return [] if judgement is None else judgement.consumers
