"""The one path from a URL to a snapshot: a release that already runs, recorded as it answers.

``compatcheck snapshot URL``, ``compatcheck diff URL`` (through
:func:`compatcheck.sources.load_source`) and the hook's url targets all call
:func:`snapshot_from_url`, which runs the lifecycle of a ``url`` target of ``compatcheck check``
(:class:`~compatcheck.capture.target.TargetCapture`): the same scrapes, merged the same way, the
same build info, the same source and label, failures named the same way.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from compatcheck.capture.target import TargetCapture, base_of
from compatcheck.config import Config, MetricsConfig, ReadinessConfig, UrlTarget
from compatcheck.errors import UnavailableError, UsageError
from compatcheck.masking import mask_secrets
from compatcheck.progress import Progress
from compatcheck.snapshot import Snapshot

#: A release that is supposed to run already gets 10 s to answer its readiness probe.
RUNNING_READINESS = ReadinessConfig(timeout=10.0)


def _names_a_path(url: str) -> bool:
    """Whether ``url`` names its metrics path; a bare base URL (no path, or ``/``) does not."""
    return urlsplit(url).path not in ("", "/")


def metrics_url(url: str) -> str:
    """``http://host:9000`` (or ``.../``) means the release's ``/metrics``; any other path is kept.

    A scrape of ``/`` itself answers 404 or an index page on almost every service, never the
    exposition that was meant.
    """
    try:
        if _names_a_path(url):
            return url
        return urlunsplit(urlsplit(url)._replace(path="/metrics"))
    except ValueError:
        return url  # the capture names the malformed URL


def snapshot_from_url(
    url: str,
    *,
    label: str = "",
    service: str = "",
    readiness: ReadinessConfig | None = RUNNING_READINESS,
    metrics: MetricsConfig | None = None,
    progress: Progress | None = None,
    strict: bool = True,
) -> Snapshot:
    """Record a running release: ``url`` is its base URL or its metrics URL.

    ``http://host:9000`` scrapes ``/metrics``; ``http://host:9000/custom/metrics`` scrapes that
    path. Readiness (default ``/readyz``) is probed on the same host; ``readiness.timeout`` bounds
    the wait for it. ``readiness=None``: the metrics only, and ``Snapshot.readiness`` stays None
    (not captured). ``service`` picks the ``<service>_build_info`` family that names the build.

    ``strict`` (``compatcheck snapshot``: a snapshot is stored and trusted later): a part that
    could not be captured raises :class:`UnavailableError`. Otherwise (a comparison, which must
    still render a report naming what it could not read) the reason is recorded in
    ``Snapshot.unavailable["metrics"]`` and becomes ``check/unavailable``.
    """
    shown = mask_secrets(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{shown}: not an http(s) URL")
    mc = metrics or MetricsConfig()
    if _names_a_path(url):
        mc = replace(mc, path=parts.path + (f"?{parts.query}" if parts.query else ""))
    target = UrlTarget(role="new", label=label or shown, url=base_of(url))
    config = Config(
        path=Path.cwd() / "compatcheck.yaml",
        service=service,
        old=target,
        new=target,
        readiness=readiness or RUNNING_READINESS,
        metrics=mc,
    )
    capture = TargetCapture(
        config,
        target,
        None,
        progress or Progress(quiet=True),
        threading.Event(),
        readiness=readiness is not None,
        who=label or shown,
    )
    outcome = capture.run()
    snap = replace(outcome.snapshot, source=shown)
    if not outcome.problems:
        return snap
    problem = outcome.problems[0]
    reason = str(problem.evidence.get("reason"))
    if strict:
        raise UnavailableError(f"{shown}: {reason}")
    # A failed scrape (subject ``new:/metrics``) names its URL already; the release as a whole
    # (subject ``new``: it never became ready) does not.
    named = reason if problem.subject != target.role else f"{shown}: {reason}"
    return replace(snap, unavailable={"metrics": named})
