"""What a target's readiness and health probes are recorded as (:class:`ProbeRecord`).

Each endpoint is probed twice: when the readiness wait ends, and again after the warm-up and the
scrapes. The second answer is recorded; where the two JSON bodies differ (a timestamp, an uptime)
the pointers are recorded as ``volatile``, which the readiness checks ignore. The probes' client
verifies TLS with one context shared by every capture (:func:`verifying_tls`).
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import replace
from typing import Any

import httpx

from compatcheck.checks.readiness import pointer
from compatcheck.config import ReadinessConfig
from compatcheck.scrape import ProbeResult
from compatcheck.snapshot import ProbeRecord, ReadinessExpectation


def volatile(first: Any, second: Any) -> tuple[str, ...]:
    """JSON pointers whose value differs between two calls of the same endpoint."""
    if first is None or second is None:
        return ()
    # Local import: deepdiff takes ~0.15 s to import, and only a JSON probe body needs it.
    from deepdiff import DeepDiff

    diff = DeepDiff(first, second, view="tree")
    out = set()
    for kind in ("values_changed", "type_changes"):
        for item in diff.get(kind, []):
            out.add(pointer(item.path(output_format="list")))
    return tuple(sorted(out))


def expectation(rc: ReadinessConfig) -> ReadinessExpectation | None:
    """The readiness contract the config declares (None: it declares none)."""
    return ReadinessExpectation.from_json(
        {"status": list(rc.expect_status), "json": rc.expect_json}, "readiness"
    )


def _seen(role: str, first: ProbeResult | None, second: ProbeResult) -> ProbeRecord:
    """What two probes of one endpoint saw: the second answer, and what changed since the first."""
    return ProbeRecord(
        role=role,
        status=second.status,
        error=second.error,
        json=second.json,
        volatile=volatile(first.json if first else None, second.json),
    )


def health_record(first: ProbeResult | None, second: ProbeResult) -> ProbeRecord:
    """The health endpoint (a livenessProbe's path), probed before and after."""
    return _seen("health", first, second)


def readiness_record(
    first: ProbeResult | None,
    second: ProbeResult,
    *,
    ready: bool,
    waited: float,
    expect: ReadinessExpectation | None,
) -> ProbeRecord:
    """The readiness endpoint of a target that came up: ``first`` ended the wait (``ready``:
    with a 2xx), ``second`` came after the warm-up and scrapes."""
    return replace(
        _seen("readiness", first, second),
        ready=ready and second.ok,
        time_to_ready=round(waited, 3) if ready else None,
        waited=round(waited, 3),
        expect=expect,
    )


def never_ready_record(
    last: ProbeResult | None, reason: str | None, waited: float, expect: ReadinessExpectation | None
) -> ProbeRecord:
    """The readiness endpoint of a target that never became ready (nothing else is captured)."""
    return ProbeRecord(
        role="readiness",
        status=last.status if last else None,
        error=reason,
        json=last.json if last else None,
        ready=False,
        waited=round(waited, 3),
        expect=expect,
    )


_TLS_LOCK = threading.Lock()
_TLS_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def verifying_tls() -> ssl.SSLContext:
    """The verifying TLS context every capture's client shares (what ``httpx.Client()`` would
    build, per ``SSL_CERT_FILE``/``SSL_CERT_DIR`` setting).

    Building one loads the whole CA bundle: 20-60 ms of CPU, and a check made three (OLD, NEW,
    the code-only trial) right when NEW's scratch database is being migrated and the releases
    start, on the critical path of the run. Sharing is safe: an ``SSLContext`` is not changed by
    the connections made with it.
    """
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _TLS_LOCK:
        context = _TLS_CONTEXTS.get(key)
        if context is None:
            context = _TLS_CONTEXTS[key] = httpx.create_ssl_context()
        return context
