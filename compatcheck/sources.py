"""Turn what a user names on the command line (URL, exposition file, snapshot) into a Snapshot.

``compatcheck diff OLD NEW`` accepts any mix of the three; this module decides which one an
argument is, without the user saying so: an ``http(s)://`` URL is scraped, a JSON document with
the snapshot schema id is a snapshot, anything else is read as an exposition.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from compatcheck.checks.build import read_build_info
from compatcheck.errors import ExpositionError, InputError, UnavailableError
from compatcheck.files import read_text, reading
from compatcheck.masking import mask_secrets
from compatcheck.model import MetricsSchema
from compatcheck.snapshot import (
    Snapshot,
    claims_to_be_snapshot,
    decode_json,
    snapshot_from_document,
)

_SNIFF_BYTES = 4096


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def is_url(arg: str) -> bool:
    return arg.startswith(("http://", "https://"))


def metrics_url(url: str) -> str:
    """``http://host:9000`` (or ``.../``) means the release's ``/metrics``; any other path is kept.

    ``snapshot`` and ``check`` already read a bare base URL this way; a scrape of ``/`` itself
    answers 404 or an index page on almost every service, never the exposition that was meant.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # the scrape names the malformed URL
    if parts.path not in ("", "/"):
        return url
    return urlunsplit(parts._replace(path="/metrics"))


def snapshot_from_metrics_url(
    url: str,
    *,
    label: str = "",
    timeout: float = 10.0,
    max_bytes: int | None = None,
    service: str = "",
) -> Snapshot:
    """Scrape ``url`` into a snapshot; failures become data (``unavailable``/``errors``).

    A diff must still render a report (exit 3) naming what could not be read, rather than die.
    """
    from compatcheck.scrape import DEFAULT_MAX_BYTES, scrape_metrics

    url = metrics_url(url)
    shown = mask_secrets(url)
    try:
        schema = scrape_metrics(url, timeout=timeout, max_bytes=max_bytes or DEFAULT_MAX_BYTES)
    except UnavailableError as exc:
        return Snapshot(
            label=label, source=shown, captured_at=_now(), unavailable={"metrics": str(exc)}
        )
    except ExpositionError as exc:
        schema = MetricsSchema(errors=(str(exc),))
    return Snapshot(
        label=label,
        source=shown,
        captured_at=_now(),
        metrics=schema,
        build=read_build_info(schema, service=service),
    )


def snapshot_from_exposition_file(
    path: Path, *, label: str = "", service: str = "", build_info: str | None = None
) -> Snapshot:
    from compatcheck.exposition import read_exposition_file

    try:
        schema = read_exposition_file(path)
    except ExpositionError as exc:
        schema = MetricsSchema(errors=(str(exc),))
    return Snapshot(
        label=label or path.stem,
        source=str(path),
        captured_at=_now(),
        metrics=schema,
        build=read_build_info(schema, service=service, family=build_info),
    )


def _looks_like_json(path: Path) -> bool:
    with reading(path), path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES).lstrip()
    return head.startswith(b"{")


def load_source(arg: str, *, label: str = "", timeout: float = 10.0, service: str = "") -> Snapshot:
    """Resolve one ``diff`` argument; a missing file or directory is an :class:`InputError`.

    ``service`` names the service whose ``<service>_build_info`` carries the build identity.
    """
    if is_url(arg):
        return snapshot_from_metrics_url(
            arg, label=label or mask_secrets(arg), timeout=timeout, service=service
        )
    path = Path(arg)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an exposition or snapshot file")
    if _looks_like_json(path):
        doc = decode_json(read_text(path), str(path))
        if claims_to_be_snapshot(doc):  # a format this release cannot read is named as such
            snap = snapshot_from_document(doc, str(path))
            return replace(snap, label=label) if label else snap
        raise InputError(f"{path}: JSON but not a compatcheck snapshot")
    return snapshot_from_exposition_file(path, label=label, service=service)
