"""Recording a release that already runs, from its URL (``compatcheck snapshot URL``)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from compatcheck.capture.target import TargetCapture, base_of
from compatcheck.config import Config, MetricsConfig, ReadinessConfig, TargetConfig
from compatcheck.errors import UnavailableError, UsageError
from compatcheck.masking import mask_secrets
from compatcheck.progress import Progress
from compatcheck.snapshot import Snapshot


def snapshot_from_url(
    url: str,
    *,
    label: str = "",
    readiness: ReadinessConfig | None = None,
    metrics: MetricsConfig | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    """Record a running release: ``url`` is its base URL or its metrics URL.

    ``http://host:9000`` scrapes ``/metrics``; ``http://host:9000/custom/metrics`` scrapes that
    path. Readiness (default ``/readyz``) is probed on the same host; ``readiness.timeout`` bounds
    the wait for it (default 10 s here: the release is supposed to be running already).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{mask_secrets(url)}: not an http(s) URL")
    mc = metrics or MetricsConfig()
    if parts.path not in ("", "/"):
        mc = replace(mc, path=parts.path + (f"?{parts.query}" if parts.query else ""))
    rc = readiness or ReadinessConfig(timeout=10.0)
    target = TargetConfig(role="new", label=label or mask_secrets(url), url=base_of(url))
    config = Config(
        path=Path.cwd() / "compatcheck.yaml",
        service="",
        old=target,
        new=target,
        readiness=rc,
        metrics=mc,
    )
    outcome = TargetCapture(
        config, target, None, progress or Progress(quiet=True), threading.Event()
    ).run()
    problems = outcome.problems
    if problems:
        raise UnavailableError(f"{mask_secrets(url)}: {problems[0].evidence.get('reason')}")
    return replace(outcome.snapshot, source=mask_secrets(url))
