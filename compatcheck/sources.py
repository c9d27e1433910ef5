"""Turn what a user names on the command line (URL, exposition file, snapshot) into a Snapshot.

``compatcheck diff OLD NEW`` accepts any mix of the three; this module decides which one an
argument is, without the user saying so: an ``http(s)://`` URL is scraped as
``compatcheck snapshot URL`` scrapes it (:func:`compatcheck.capture.url.snapshot_from_url`), a
JSON document with the snapshot schema id is a snapshot, anything else is read as an exposition.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from compatcheck.checks.build import read_build_info
from compatcheck.errors import ExpositionError, InputError, UsageError
from compatcheck.files import read_text, reading
from compatcheck.masking import mask_secrets
from compatcheck.model import MetricsSchema
from compatcheck.snapshot import (
    Snapshot,
    capture_time,
    claims_to_be_snapshot,
    decode_json,
    snapshot_from_document,
)

_SNIFF_BYTES = 4096


#: ``ftp://...``, ``s3://...``: a scheme compatcheck does not read (``C:\\x`` is no scheme).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


#: What starts a contract attached to an image digest: a registry's, or an OCI layout folder's
#: (:mod:`compatcheck.artifact.contract` reads them). Here, not there, because every command
#: tells sources apart and must not import the registry client to do so.
CONTRACT_PREFIXES = ("oci:", "oci-layout:")


def is_contract_ref(arg: str) -> bool:
    """Whether ``arg`` names the contract attached to an image (``oci:…``, ``oci-layout:…``)."""
    return arg.startswith(CONTRACT_PREFIXES)


def is_url(arg: str) -> bool:
    return arg.startswith(("http://", "https://"))


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
        captured_at=capture_time(),
        metrics=schema,
        build=read_build_info(schema, service=service, family=build_info),
    )


def _looks_like_json(path: Path) -> bool:
    with reading(path), path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES).lstrip()
    return head.startswith(b"{")


def load_source(
    arg: str,
    *,
    label: str = "",
    timeout: float = 10.0,
    service: str = "",
    registry_config: str | None = None,
) -> Snapshot:
    """Resolve one ``diff`` argument; a missing file or directory is an :class:`InputError`.

    ``service`` names the service whose ``<service>_build_info`` carries the build identity.
    A URL is a release that runs now, its metrics recorded as ``compatcheck snapshot URL``
    records them (``timeout`` for each scrape); what could not be read is recorded in the
    snapshot (the report says it, exit 3); its source is the metrics URL scraped.
    ``oci:IMAGE@sha256:…`` and ``oci-layout:DIR@sha256:…`` are the contract attached to that
    image digest (:mod:`compatcheck.artifact.contract`), with the credentials of the docker
    ``config.json`` ``registry_config``; a tag is refused (``artifact/not-pinned``, exit 2).
    """
    if is_contract_ref(arg):
        from compatcheck.artifact.auth import load_registry_config
        from compatcheck.artifact.contract import load_contract

        config = load_registry_config(registry_config)
        snap: Snapshot = load_contract(arg, label=label, registry_config=config, timeout=timeout)
        return snap
    scheme = _SCHEME.match(arg)
    if scheme and not is_url(arg):
        raise UsageError(
            f"{mask_secrets(arg)}: unsupported URL scheme `{scheme.group(1)}` "
            "(expected http:// or https://, a file, or oci:IMAGE@sha256:…)"
        )
    if is_url(arg):
        # Local import: capture (HTTP, processes, the artifact inspector) takes ~0.3 s to import,
        # and only a URL needs it; a diff of two files must not pay for it.
        from compatcheck.capture.url import metrics_url, snapshot_from_url
        from compatcheck.config import MetricsConfig

        # Trap: the metrics only. Probing `/readyz` first would put the probe itself into the
        # metrics being compared (`route="/readyz"`, `status="404"` on a request counter) and
        # make a release differ from its own exposition file or an earlier scrape.
        return snapshot_from_url(
            metrics_url(arg),
            label=label or mask_secrets(arg),
            service=service,
            readiness=None,
            metrics=MetricsConfig(timeout=timeout),
            strict=False,
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
