"""The Prometheus HTTP API, as far as verification and live consumers need it.

Why our own client: the answers are read during an incident, from a Prometheus that may itself be
overloaded. Every call goes through :func:`compatcheck.scrape.probe` (an overall deadline, a byte
cap on the decoded body, failures as values), and each way a call can fail ends in one of two
errors with one line naming the (masked) URL: :class:`PrometheusUnavailable` (not reachable, not a
Prometheus, an answer that is not ``success``: exit 3) and :class:`QueryRejected` (Prometheus
understood the request and refused the query: a bad ``--error-rate`` expression, exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from compatcheck.errors import InputError, UnavailableError
from compatcheck.masking import mask_secrets
from compatcheck.scrape import probe

#: Rule and alert lists of a large Prometheus reach a few MiB; query results here are small.
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class PrometheusUnavailable(UnavailableError):
    """Prometheus could not be asked (exit 3): unreachable, not a Prometheus, or failing."""


class QueryRejected(InputError):
    """Prometheus refused a query as malformed or not executable (``bad_data``, exit 2)."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and its value (NaN kept as NaN)."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Alert:
    """One alert as ``/api/v1/alerts`` reports it."""

    name: str
    state: str  # "firing" | "pending" | "inactive"
    labels: Mapping[str, str] = field(default_factory=dict)
    active_at: str = ""
    value: str = ""


@dataclass(frozen=True)
class Rule:
    """One alerting or recording rule as ``/api/v1/rules`` reports it."""

    type: str  # "alerting" | "recording"
    name: str
    query: str
    group: str
    file: str
    #: An alerting rule's labels and annotations (their templates name labels the alert needs).
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


class PrometheusClient:
    """A Prometheus server's HTTP API at ``base_url`` (``http://prometheus:9090``, a path prefix
    allowed). One client per run; ``timeout`` bounds each call from start to last byte."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        url = base_url.strip()
        if not url.startswith(("http://", "https://")):
            raise InputError(f"--prometheus {mask_secrets(url)}: expected an http(s) URL")
        self.base_url = url.rstrip("/")
        self.shown = mask_secrets(self.base_url)
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """``data`` of a ``success`` answer; the errors as the module docstring says."""
        url = str(httpx.URL(self.base_url + path, params=dict(params or {})))
        result = probe(url, timeout=self.timeout, max_bytes=MAX_ANSWER_BYTES, client=self._http)
        where = f"{self.shown}{path}"
        if result.error is not None:
            raise PrometheusUnavailable(f"{where}: cannot ask Prometheus: {result.error}")
        doc = result.json
        if not isinstance(doc, dict) or "status" not in doc:
            status = f"HTTP {result.status}" if not result.ok else "an answer"
            raise PrometheusUnavailable(
                f"{where}: cannot ask Prometheus: {status} that is not a Prometheus API response"
            )
        if doc.get("status") == "success":
            return doc.get("data")
        kind, error = str(doc.get("errorType", "")), str(doc.get("error", "")).splitlines()
        reason = error[0] if error else "no reason given"
        if kind in ("bad_data", "execution") and params and "query" in params:
            raise QueryRejected(f"Prometheus rejected the query `{params['query']}`: {reason}")
        raise PrometheusUnavailable(
            f"{where}: Prometheus answered HTTP {result.status} ({kind or 'error'}): {reason}"
        )

    def query(self, expr: str) -> list[Sample]:
        """An instant query, evaluated now; a scalar answer is one sample without labels."""
        data = self._get("/api/v1/query", {"query": expr})
        if not isinstance(data, dict):
            raise PrometheusUnavailable(f"{self.shown}: query answer without data")
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return [Sample({}, _number(result[1]))]
        if kind != "vector" or not isinstance(result, list):
            raise QueryRejected(
                f"the query `{expr}` gives a {kind or 'malformed answer'}, expected an instant "
                "vector"
            )
        out = []
        for item in _objects(data, "result"):
            metric, value = item.get("metric"), item.get("value")
            if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
                continue
            out.append(Sample(_strings(metric), _number(value[1])))
        return out

    def alerts(self) -> list[Alert]:
        """Every active alert (pending and firing) Prometheus holds."""
        out = []
        for item in _objects(self._get("/api/v1/alerts"), "alerts"):
            if not isinstance(item.get("labels"), dict):
                continue
            labels = _strings(item["labels"])
            out.append(
                Alert(
                    name=labels.get("alertname", ""),
                    state=str(item.get("state", "")),
                    labels=labels,
                    active_at=str(item.get("activeAt", "")),
                    value=str(item.get("value", "")),
                )
            )
        return out

    def rules(self) -> list[Rule]:
        """Every alerting and recording rule loaded, with its group and rule file."""
        out = []
        for group in _objects(self._get("/api/v1/rules"), "groups"):
            for rule in _objects(group, "rules"):
                out.append(
                    Rule(
                        type=str(rule.get("type", "")),
                        name=str(rule.get("name", "")),
                        query=str(rule.get("query", "")),
                        group=str(group.get("name", "")),
                        file=str(group.get("file", "")),
                        labels=_strings(rule.get("labels")),
                        annotations=_strings(rule.get("annotations")),
                    )
                )
        return out


def _objects(data: Any, key: str) -> list[dict[str, Any]]:
    """The JSON objects listed under ``key`` of an answer's object; anything else (a missing key,
    an item that is no object) is passed over: one odd entry must not hide the others."""
    items = data.get(key) if isinstance(data, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _strings(value: Any) -> dict[str, str]:
    """A label or annotation map as strings (empty when absent or not a map)."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _number(value: Any) -> float:
    """A sample value as Prometheus writes it (a string: ``"0.5"``, ``"NaN"``, ``"+Inf"``)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def matches(labels: Mapping[str, str], matchers: Sequence[tuple[str, str, str]]) -> bool:
    """PromQL matcher semantics over one label set: a missing label is the empty string, and
    regular expressions are anchored at both ends."""
    import re

    for label, op, value in matchers:
        have = labels.get(label, "")
        if op == "=":
            ok = have == value
        elif op == "!=":
            ok = have != value
        else:
            try:
                hit = re.fullmatch(value, have) is not None
            except re.error:
                hit = False
            ok = hit if op == "=~" else not hit
        if not ok:
            return False
    return True
