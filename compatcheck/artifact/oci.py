"""Reading an image's identity: OCI image layout directories and registries (OCI distribution API).

Both sources answer the same question — which manifest does this reference resolve to, and what
labels does its config carry — so both implement one small :class:`_Source` protocol
(``manifest(ref)``, ``blob(digest)``) and share the walk index → platform manifest → config.
The layout source and the walk are here; the registry source (HTTP, auth) is
:mod:`compatcheck.artifact.registry`.

Why every byte is verified and capped: the point of artifact pinning is that the rollback targets
exactly what was verified. A registry (or a copied layout directory) that returns content whose
sha256 is not the digest it was asked for is not trustworthy, and a registry that streams a
gigabyte "manifest" must not exhaust the checker. Manifests are capped at 4 MiB (the
distribution project's own limit), configs at 8 MiB, and every registry call shares one deadline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compatcheck.artifact.reference import (
    ImageReference,
    parse_digest,
)
from compatcheck.jsondoc import JsonError, parse_json, parse_object

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
#: Everything we can read, indexes first; without an Accept header a registry may answer with a
#: schema 1 manifest (no config blob, hence no labels) or refuse an OCI index.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

MANIFEST_MAX_BYTES = 4 * 1024 * 1024
CONFIG_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_PLATFORM = ("linux", "amd64")

REF_NAME = "org.opencontainers.image.ref.name"
#: Docker buildx stores provenance/SBOM attestations as index entries with an unknown platform.
_ATTESTATION = "vnd.docker.reference.type"


class ArtifactUnavailable(Exception):
    """The image could not be read; ``str(exc)`` is one sentence for a ``check/unavailable``."""


@dataclass(frozen=True)
class ImageInfo:
    """What a reference resolved to. ``digest`` is the top-level one (an index for multi-arch)."""

    digest: str
    media_type: str
    manifest_digest: str
    config_digest: str
    #: ``linux/amd64`` when picked from an index, ``None`` for a single-platform manifest.
    platform: str | None
    labels: Mapping[str, str]
    #: Platform manifest annotations overlaid on the index's (the manifest is more specific).
    annotations: Mapping[str, str]
    source: str
    #: Tag → digest resolutions seen (``{"v1": "sha256:..."}``), for the report.
    resolved: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fetched:
    body: bytes
    digest: str
    media_type: str


class _Source(Protocol):
    description: str

    def manifest(self, reference: str) -> Fetched: ...

    def blob(self, digest: str, max_bytes: int) -> bytes: ...


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_digest(data: bytes, digest: str, what: str) -> None:
    algorithm = digest.partition(":")[0]
    actual = algorithm + ":" + hashlib.new(algorithm, data).hexdigest()
    if actual != digest:
        raise ArtifactUnavailable(f"{what} has digest `{actual}`, not `{digest}` as addressed")


def json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        return parse_object(data)
    except JsonError as exc:
        raise ArtifactUnavailable(f"{what} is {exc}") from None


def media_type(doc: Mapping[str, Any], declared: str) -> str:
    """The manifest's type: its own ``mediaType`` field, else the declared one, else its shape.

    Trap: ``mediaType`` is optional in OCI manifests and registries answer ``Content-Type`` with
    parameters (``; charset=utf-8``), so the shape (``manifests`` vs ``config``) is the last resort.
    """
    own = doc.get("mediaType")
    if isinstance(own, str) and own:
        return own
    declared = declared.split(";")[0].strip()
    if declared in INDEX_TYPES or declared in MANIFEST_TYPES or declared in DOCKER_SCHEMA1:
        return declared
    if isinstance(doc.get("manifests"), list):
        return OCI_INDEX
    if isinstance(doc.get("config"), dict):
        return OCI_MANIFEST
    return declared


def _string_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}


def _descriptor_digest(desc: Mapping[str, Any], what: str) -> str:
    try:
        return parse_digest(str(desc.get("digest", "")))
    except ValueError as exc:
        raise ArtifactUnavailable(f"{what}: {exc}") from None


def _platform_of(desc: Mapping[str, Any]) -> str:
    p = desc.get("platform")
    if not isinstance(p, dict):
        return "unknown"
    out = f"{p.get('os', 'unknown')}/{p.get('architecture', 'unknown')}"
    if p.get("variant"):
        out += f"/{p['variant']}"
    return out


def _pick_platform(index: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """The linux/amd64 entry of an index; a lone entry without a platform is taken as is."""
    entries = [d for d in index.get("manifests") or [] if isinstance(d, dict)]
    entries = [d for d in entries if _string_map(d.get("annotations")).get(_ATTESTATION) is None]
    want_os, want_arch = DEFAULT_PLATFORM
    matches = [
        d
        for d in entries
        if isinstance(d.get("platform"), dict)
        and d["platform"].get("os") == want_os
        and d["platform"].get("architecture") == want_arch
    ]
    if matches:
        return matches[0]
    if len(entries) == 1 and not isinstance(entries[0].get("platform"), dict):
        return entries[0]
    seen = ", ".join(sorted({_platform_of(d) for d in entries})) or "none"
    raise ArtifactUnavailable(f"{what} has no `{want_os}/{want_arch}` image (platforms: {seen})")


def resolve_image(source: _Source, reference: str) -> ImageInfo:
    """Walk reference → (index → linux/amd64) → manifest → config; verify every digest."""
    top = source.manifest(reference)
    resolved = {} if reference.startswith("sha256:") else {reference: top.digest}
    fetched = top
    index_annotations: dict[str, str] = {}
    platform: str | None = None
    for _depth in range(3):  # an index may nest one more index (rare); never loop forever
        doc = json_object(fetched.body, f"manifest `{fetched.digest}`")
        mtype = media_type(doc, fetched.media_type)
        if mtype in DOCKER_SCHEMA1:
            raise ArtifactUnavailable(
                f"manifest `{fetched.digest}` is Docker schema 1, which has no image config"
            )
        if mtype in INDEX_TYPES:
            index_annotations.update(_string_map(doc.get("annotations")))
            chosen = _pick_platform(doc, f"index `{fetched.digest}`")
            platform = _platform_of(chosen)
            fetched = source.manifest(_descriptor_digest(chosen, f"index `{fetched.digest}`"))
            continue
        if mtype not in MANIFEST_TYPES:
            raise ArtifactUnavailable(
                f"manifest `{fetched.digest}` has unsupported media type `{mtype or 'none'}`"
            )
        config_desc = doc.get("config")
        if not isinstance(config_desc, dict):
            raise ArtifactUnavailable(f"manifest `{fetched.digest}` has no config descriptor")
        config_digest = _descriptor_digest(config_desc, f"manifest `{fetched.digest}`")
        size = config_desc.get("size")
        if isinstance(size, int) and size > CONFIG_MAX_BYTES:
            raise ArtifactUnavailable(
                f"config `{config_digest}` declares {size} bytes, over the "
                f"{CONFIG_MAX_BYTES // (1024 * 1024)} MiB cap"
            )
        config = json_object(
            source.blob(config_digest, CONFIG_MAX_BYTES), f"config `{config_digest}`"
        )
        inner = config.get("config")
        labels = _string_map(inner.get("Labels")) if isinstance(inner, dict) else {}
        return ImageInfo(
            digest=top.digest,
            media_type=media_type(json_object(top.body, "manifest"), top.media_type),
            manifest_digest=fetched.digest,
            config_digest=config_digest,
            platform=platform,
            labels=labels,
            annotations={**index_annotations, **_string_map(doc.get("annotations"))},
            source=source.description,
            resolved=resolved,
        )
    raise ArtifactUnavailable(f"manifest `{top.digest}` nests indexes more than two deep")


# --- OCI image layout -------------------------------------------------------------------------


class LayoutSource:
    """An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``).

    A tag is looked up by the ``org.opencontainers.image.ref.name`` annotation of ``index.json``
    entries (skopeo and ``oras`` write the bare tag, BuildKit may write the full reference, so
    both are accepted); a digest is read from ``blobs/`` directly.
    """

    def __init__(self, root: Path, image: ImageReference | None) -> None:
        self.root = root
        self.image = image
        self.description = f"OCI layout `{root}`"
        marker = root / "oci-layout"
        try:
            layout = parse_json(marker.read_bytes())
        except FileNotFoundError:
            raise ArtifactUnavailable(
                f"`{root}` is not an OCI image layout (no `oci-layout` file)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ArtifactUnavailable(
                f"`{marker}` is unreadable ({exc.__class__.__name__})"
            ) from None
        if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
            raise ArtifactUnavailable(f"`{marker}` has no `imageLayoutVersion`")
        index_path = root / "index.json"
        try:
            raw = index_path.read_bytes()
        except OSError as exc:
            raise ArtifactUnavailable(
                f"`{index_path}` is unreadable ({exc.strerror or exc.__class__.__name__})"
            ) from None
        if len(raw) > MANIFEST_MAX_BYTES:
            raise ArtifactUnavailable(f"`{index_path}` is larger than 4 MiB")
        self.index = json_object(raw, f"`{index_path}`")

    def _blob_path(self, digest: str) -> Path:
        algorithm, _, encoded = parse_digest(digest).partition(":")
        return self.root / "blobs" / algorithm / encoded

    def blob(self, digest: str, max_bytes: int) -> bytes:
        path = self._blob_path(digest)
        try:
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError:
            raise ArtifactUnavailable(f"{self.description} has no blob `{digest}`") from None
        except OSError as exc:
            raise ArtifactUnavailable(
                f"blob `{digest}` in {self.description} is unreadable "
                f"({exc.strerror or exc.__class__.__name__})"
            ) from None
        if len(data) > max_bytes:
            raise ArtifactUnavailable(f"blob `{digest}` is larger than {max_bytes} bytes")
        verify_digest(data, digest, f"blob `{digest}` in {self.description}")
        return data

    def _entry_for_tag(self, tag: str) -> Mapping[str, Any]:
        entries = [d for d in self.index.get("manifests") or [] if isinstance(d, dict)]
        names = {tag}
        if self.image is not None:
            names |= {
                self.image.written,
                self.image.canonical,
                f"{self.image.written_repository}:{tag}",
            }
        for d in entries:
            if _string_map(d.get("annotations")).get(REF_NAME) in names:
                return d
        unnamed = [d for d in entries if REF_NAME not in _string_map(d.get("annotations"))]
        if self.image is None and len(entries) == 1:
            return entries[0]
        if len(entries) == 1 and unnamed:
            return entries[0]
        known = sorted(n for d in entries if (n := _string_map(d.get("annotations")).get(REF_NAME)))
        raise ArtifactUnavailable(
            f"{self.description} has no image tagged `{tag}` "
            f"(tags: {', '.join(f'`{k}`' for k in known) or 'none'})"
        )

    def manifest(self, reference: str) -> Fetched:
        declared = ""
        if reference.startswith(("sha256:", "sha512:")):
            digest = reference
            for d in self.index.get("manifests") or []:
                if isinstance(d, dict) and d.get("digest") == digest:
                    declared = str(d.get("mediaType", ""))
        else:
            entry = self._entry_for_tag(reference)
            digest = _descriptor_digest(entry, f"`{self.root / 'index.json'}`")
            declared = str(entry.get("mediaType", ""))
        return Fetched(self.blob(digest, MANIFEST_MAX_BYTES), digest, declared)


def read_layout(root: Path, image: ImageReference | None) -> ImageInfo:
    """Resolve ``image`` (or the layout's only image when ``None``) in an OCI layout directory."""
    source = LayoutSource(root, image)
    if image is None:
        return resolve_image(source, "latest")
    return resolve_image(source, image.manifest_reference)
