"""The hook's own Prometheus metrics, in a private registry.

A private :class:`~prometheus_client.CollectorRegistry` (not the global one) so that two apps in
one process (tests, an embedding service) never collide and ``/metrics`` shows only the hook.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Label value for paths the hook does not serve: unbounded paths must not become label values.
OTHER_ENDPOINT = "other"
ENDPOINTS = (
    "/healthz",
    "/metrics",
    "/v1/check",
    "/v1/verify",
    "/v1/checks",
    "/v1/checks/{id}",
    "/v1/flagger",
)


def endpoint_of(path: str) -> str:
    """The route template for ``path`` (bounded label cardinality)."""
    if path.startswith("/v1/checks/"):
        return "/v1/checks/{id}"
    return path if path in ENDPOINTS else OTHER_ENDPOINT


class HookMetrics:
    """The hook's metrics, all registered in the one private :attr:`registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = self._counter(
            "compatcheck_hook_requests",
            "HTTP requests answered by the policy hook, by endpoint and status code.",
            "endpoint",
            "code",
        )
        self.check_duration = Histogram(
            "compatcheck_hook_check_duration_seconds",
            "Time to judge one uncached check (loading, scraping, evaluating).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.verdicts = self._counter(
            "compatcheck_hook_verdicts",
            "Verdicts answered, cached or not: go, no-go, or unavailable (cannot tell).",
            "verdict",
        )
        self.cache_hits = self._counter(
            "compatcheck_hook_cache_hits", "Checks answered from the verdict cache."
        )
        self.shared = self._counter(
            "compatcheck_hook_checks_shared",
            "Checks answered by joining an identical evaluation already running.",
        )
        self.timeouts = self._counter(
            "compatcheck_hook_check_timeouts", "Checks that ran past --check-timeout."
        )
        self.in_progress = Gauge(
            "compatcheck_hook_checks_in_progress",
            "Evaluations holding a check slot right now (bounded by --max-concurrent).",
            registry=self.registry,
        )

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
