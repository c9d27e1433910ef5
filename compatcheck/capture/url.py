"""The one path from a URL to a snapshot: a release that already runs, recorded as it answers.

``compatcheck snapshot URL``, ``compatcheck diff URL`` (through
:func:`compatcheck.sources.load_source`) and the hook's url targets all call
:func:`snapshot_from_url`, which runs the same lifecycle as a ``url`` target of
``compatcheck check`` (:class:`~compatcheck.capture.target.TargetCapture`: readiness wait, scrapes
merged, readiness and health probes, build info), so each of them records the same contract.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from compatcheck.capture.target import TargetCapture, base_of
from compatcheck.config import Config, MetricsConfig, ReadinessConfig, TargetConfig
from compatcheck.errors import UnavailableError, UsageError
from compatcheck.masking import mask_secrets
from compatcheck.progress import Progress
from compatcheck.snapshot import Snapshot

#: How long a release that is supposed to run already gets to answer its readiness probe.
DEFAULT_TIMEOUT = 10.0


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
    readiness: ReadinessConfig | None = None,
    metrics: MetricsConfig | None = None,
    progress: Progress | None = None,
    strict: bool = True,
    wait: bool = True,
) -> Snapshot:
    """Record a running release: ``url`` is its base URL or its metrics URL.

    ``http://host:9000`` scrapes ``/metrics``; ``http://host:9000/custom/metrics`` scrapes that
    path. Readiness (default ``/readyz``) is probed on the same host; ``readiness.timeout`` bounds
    the wait for it (default 10 s here: the release is supposed to be running already).
    ``service`` picks the ``<service>_build_info`` family that names the build. Without
    ``wait``, the release is judged on one readiness probe: a comparison of what runs now
    (``diff``, the hook) does not wait for a release that does not answer, or answers not ready.

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
    rc = readiness or ReadinessConfig(timeout=DEFAULT_TIMEOUT)
    target = TargetConfig(role="new", label=label or shown, url=base_of(url))
    config = Config(
        path=Path.cwd() / "compatcheck.yaml",
        service=service,
        old=target,
        new=target,
        readiness=rc,
        metrics=mc,
    )
    outcome = TargetCapture(
        config, target, None, progress or Progress(quiet=True), threading.Event(), wait=wait
    ).run()
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
