"""Small builders several test modules share, so that an expected value is one readable line
instead of the same keyword block written again per test."""

from __future__ import annotations

from typing import Any

from compatcheck.model import MetricFamily


def sampled(name: str, type_: str, **kw: Any) -> MetricFamily:
    """A family as the parser reports one that had samples: ``has_samples`` is what every
    expectation of a parsed exposition with samples holds, the rest is what the test decides."""
    return MetricFamily(name=name, type=type_, has_samples=True, **kw)
