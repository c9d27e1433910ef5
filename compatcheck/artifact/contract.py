"""Release contracts that travel with the image: snapshots attached to an image digest.

A rollback targets an image digest, so the contract recorded for that release is stored *on* the
digest, as an OCI artifact whose ``subject`` is the image's manifest (OCI image spec 1.1,
artifact type :data:`ARTIFACT_TYPE`): any rollback path that knows the digest (a controller, a CI
job, a person with ``kubectl``) finds the contract without a shared folder.

Where it is stored and found, as the OCI distribution spec 1.1 prescribes:

- a registry that supports the referrers API answers the manifest push with ``OCI-Subject`` and
  lists the artifact under ``GET /v2/<name>/referrers/<digest>``;
- a registry that does not (distribution 2.8, most registries before 2023) gets the *referrers tag
  schema*: an image index tagged ``sha256-<hex of the subject>`` that lists the artifact, read
  and updated by the client. Reading falls back to that tag when the referrers API answers 404;
- an OCI image layout has no API: the artifact's manifest is listed in ``index.json`` (as ``oras``
  and oras-go's layout store do) and found by its ``subject``; a ``sha256-<hex>`` tag there is
  read too (a layout copied from a registry that used the tag schema).

Pushing twice is idempotent: the manifest is built from the snapshot's bytes and its
``captured_at`` only, so the same snapshot gives the same manifest digest, and neither the layout
index nor the fallback tag lists a digest twice.

Why everything read is checked: a contract decides whether a rollback proceeds. Every manifest and
blob is verified against the digest it was addressed by, capped in size (manifests 4 MiB,
snapshots 16 MiB), and the snapshot is validated against its schema before use. When several
contracts are attached to one digest (a release re-recorded), the newest by its ``created``
annotation wins, and the report names it and says how many there were.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from compatcheck.artifact.auth import RegistryConfig
from compatcheck.artifact.cache import CachedContent, ContentCache
from compatcheck.artifact.oci import (
    INDEX_TYPES,
    MANIFEST_ACCEPT,
    MANIFEST_MAX_BYTES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    REF_NAME,
    ArtifactUnavailable,
    LayoutSource,
    json_object,
    media_type,
    sha256_digest,
    verify_digest,
)
from compatcheck.artifact.reference import ImageReference, parse_digest, parse_reference
from compatcheck.artifact.registry import RegistrySource, registry_base_url
from compatcheck.errors import InputError
from compatcheck.sources import CONTRACT_PREFIXES

ARTIFACT_TYPE = "application/vnd.compatcheck.snapshot.v1+json"
#: The snapshot itself, the artifact's one layer.
SNAPSHOT_LAYER_TYPE = ARTIFACT_TYPE
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
CREATED = "org.opencontainers.image.created"
TITLE = "org.opencontainers.image.title"
SNAPSHOT_MAX_BYTES = 16 * 1024 * 1024
#: Referrers looked at for one digest: signatures, SBOMs and attestations share the list, but a
#: subject with more than this many is a registry being abused, not a release.
MAX_REFERRERS = 256
REGISTRY_PREFIX, LAYOUT_PREFIX = CONTRACT_PREFIXES


class ContractMissing(ArtifactUnavailable):
    """The image is there but carries no usable compatcheck contract."""


@dataclass(frozen=True)
class ContractRef:
    """``oci:IMAGE@sha256:…`` (a registry) or ``oci-layout:DIR@sha256:…`` (a layout folder)."""

    written: str
    digest: str
    image: ImageReference | None = None
    root: Path | None = None


def _not_pinned(arg: str, repo: str) -> InputError:
    return InputError(
        f"{arg}: artifact/not-pinned: a tag can be moved to another image, so it names no "
        f"contract; give the image digest (`{repo}@sha256:…`)"
    )


def parse_contract_ref(arg: str) -> ContractRef:
    """Parse a contract reference; a tag (no ``@sha256:``) is refused as ``artifact/not-pinned``."""
    if arg.startswith(LAYOUT_PREFIX):
        rest = arg[len(LAYOUT_PREFIX) :]
        root, at, digest = rest.rpartition("@")
        if not at:
            raise _not_pinned(arg, f"{LAYOUT_PREFIX}{rest.rsplit(':', 1)[0] or 'DIR'}")
        if not root:
            raise InputError(f"{arg}: no layout folder before `@`")
        try:
            return ContractRef(arg, parse_digest(digest), root=Path(root))
        except ValueError as exc:
            raise InputError(f"{arg}: {exc}") from None
    if not arg.startswith(REGISTRY_PREFIX):
        raise InputError(f"{arg}: expected `oci:IMAGE@sha256:…` or `oci-layout:DIR@sha256:…`")
    image = parse_reference(arg[len(REGISTRY_PREFIX) :])
    if image.digest is None:
        raise _not_pinned(arg, image.written_repository)
    return ContractRef(arg, image.digest, image=image)


def image_contract_ref(image: str) -> ContractRef:
    """The hook's ``{"image": "reg/shop@sha256:…"}``: a registry reference without the prefix."""
    return parse_contract_ref(REGISTRY_PREFIX + image)


def referrers_tag(digest: str) -> str:
    """The referrers tag schema: ``sha256:abc…`` → ``sha256-abc…``."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}-{encoded}"


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def build_artifact(snapshot: bytes, subject: Mapping[str, Any], created: str) -> bytes:
    """The artifact manifest (image spec 1.1 "artifact" guidance: empty config, one layer)."""
    return _canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": EMPTY_TYPE,
                "digest": sha256_digest(EMPTY_BLOB),
                "size": len(EMPTY_BLOB),
                "data": "e30=",
            },
            "layers": [
                {
                    "mediaType": SNAPSHOT_LAYER_TYPE,
                    "digest": sha256_digest(snapshot),
                    "size": len(snapshot),
                    "annotations": {TITLE: "snapshot.json"},
                }
            ],
            "subject": dict(subject),
            "annotations": {CREATED: created},
        }
    )


def _descriptor(body: bytes, digest: str) -> dict[str, Any]:
    return {
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "digest": digest,
        "size": len(body),
    }


def _parse_created(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


# --- backends ---------------------------------------------------------------------------------


class _Backend(Protocol):
    description: str

    def subject(self, digest: str) -> dict[str, Any]: ...

    def manifest(self, digest: str) -> bytes: ...

    def blob(self, digest: str, max_bytes: int) -> bytes: ...

    def referrers(self, digest: str) -> tuple[list[Mapping[str, Any]], str]: ...

    def push(self, subject: str, snapshot: bytes, manifest: bytes) -> tuple[bool, str]: ...


def _index_entries(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = doc.get("manifests")
    return [d for d in entries if isinstance(d, dict)] if isinstance(entries, list) else []


class _Registry:
    def __init__(self, source: RegistrySource) -> None:
        self.source = source
        self.description = source.description

    def subject(self, digest: str) -> dict[str, Any]:
        fetched = self.source.manifest(digest)
        mtype = media_type(json_object(fetched.body, f"manifest `{digest}`"), fetched.media_type)
        if mtype not in INDEX_TYPES + MANIFEST_TYPES:
            raise ArtifactUnavailable(f"manifest `{digest}` has unsupported media type `{mtype}`")
        return {"mediaType": mtype, "digest": digest, "size": len(fetched.body)}

    def manifest(self, digest: str) -> bytes:
        return self.source.manifest(digest).body

    def blob(self, digest: str, max_bytes: int) -> bytes:
        return self.source.blob(digest, max_bytes)

    def _index(self, path: str, what: str) -> Mapping[str, Any] | None:
        status, body, _ = self.source.request(
            "GET", path, what, accept=OCI_INDEX, ok=(200, 404), max_bytes=MANIFEST_MAX_BYTES
        )
        if status == 404:
            return None
        return json_object(body, what)

    def referrers(self, digest: str) -> tuple[list[Mapping[str, Any]], str]:
        # Trap: the `+` of the media type is a space in a query string unless encoded.
        query = urlencode({"artifactType": ARTIFACT_TYPE})
        listed = self._index(f"referrers/{digest}?{query}", f"referrers of `{digest}`")
        if listed is not None:
            return _index_entries(listed), "referrers API"
        tag = referrers_tag(digest)
        fallback = self._index(f"manifests/{tag}", f"referrers tag `{tag}`")
        return ([] if fallback is None else _index_entries(fallback)), "referrers tag schema"

    def _has(self, kind: str, digest: str) -> bool:
        # Trap: distribution answers 404 for an OCI manifest the Accept header does not list.
        accept = MANIFEST_ACCEPT if kind == "manifests" else None
        status, _, _ = self.source.request(
            "HEAD", f"{kind}/{digest}", f"{kind[:-1]} `{digest}`", accept=accept, ok=(200, 404)
        )
        return status == 200

    def _upload(self, data: bytes) -> None:
        digest = sha256_digest(data)
        if self._has("blobs", digest):
            return
        what = f"blob upload `{digest}`"
        _, _, headers = self.source.request("POST", "blobs/uploads/", what, ok=(202,))
        location = headers.get("location", "")
        if not location:
            raise ArtifactUnavailable(f"{self.description} gave no upload location for {what}")
        url = httpx.URL(self.source.base_url + "/").join(location)
        url = url.copy_merge_params({"digest": digest})
        self.source.request(
            "PUT",
            str(url),
            what,
            content=data,
            content_type="application/octet-stream",
            ok=(201, 204),
        )

    def push(self, subject: str, snapshot: bytes, manifest: bytes) -> tuple[bool, str]:
        digest = sha256_digest(manifest)
        existed = self._has("manifests", digest)
        self._upload(EMPTY_BLOB)
        self._upload(snapshot)
        _, _, headers = self.source.request(
            "PUT",
            f"manifests/{digest}",
            f"manifest `{digest}`",
            content=manifest,
            content_type=OCI_MANIFEST,
            ok=(201,),
        )
        if headers.get("oci-subject") == subject:
            return existed, "referrers API"
        # No OCI-Subject: the registry does not index referrers; keep the tag schema index.
        tag = referrers_tag(subject)
        current = self._index(f"manifests/{tag}", f"referrers tag `{tag}`")
        entries = [] if current is None else _index_entries(current)
        if any(e.get("digest") == digest for e in entries):
            return existed, "referrers tag schema"
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [*entries, _descriptor(manifest, digest)],
        }
        self.source.request(
            "PUT",
            f"manifests/{tag}",
            f"referrers tag `{tag}`",
            content=_canonical(doc),
            content_type=OCI_INDEX,
            ok=(201,),
        )
        return existed, "referrers tag schema"


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = LayoutSource(root, None)
        self.description = self.source.description

    def subject(self, digest: str) -> dict[str, Any]:
        body = self.source.blob(digest, MANIFEST_MAX_BYTES)
        declared = next(
            (
                str(e.get("mediaType", ""))
                for e in _index_entries(self.source.index)
                if e.get("digest") == digest
            ),
            "",
        )
        mtype = media_type(json_object(body, f"manifest `{digest}`"), declared)
        if mtype not in INDEX_TYPES + MANIFEST_TYPES:
            raise ArtifactUnavailable(f"manifest `{digest}` has unsupported media type `{mtype}`")
        return {"mediaType": mtype, "digest": digest, "size": len(body)}

    def manifest(self, digest: str) -> bytes:
        return self.source.blob(digest, MANIFEST_MAX_BYTES)

    def blob(self, digest: str, max_bytes: int) -> bytes:
        return self.source.blob(digest, max_bytes)

    def referrers(self, digest: str) -> tuple[list[Mapping[str, Any]], str]:
        tag = referrers_tag(digest)
        out: list[Mapping[str, Any]] = []
        for entry in _index_entries(self.source.index):
            annotations = entry.get("annotations")
            name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
            if name == tag and entry.get("mediaType") in INDEX_TYPES:
                listed = json_object(
                    self.source.blob(str(entry.get("digest", "")), MANIFEST_MAX_BYTES),
                    f"referrers tag `{tag}`",
                )
                out.extend(_index_entries(listed))
            elif entry.get("artifactType") == ARTIFACT_TYPE:
                out.append(entry)
        return out, "layout index"

    def _write_blob(self, data: bytes) -> None:
        path = self.root / "blobs" / "sha256" / sha256_digest(data).partition(":")[2]
        if path.exists():
            verify_digest(path.read_bytes(), sha256_digest(data), f"blob `{path}`")
            return
        self._atomic(path, data)

    @staticmethod
    def _atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".compatcheck-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def push(self, subject: str, snapshot: bytes, manifest: bytes) -> tuple[bool, str]:
        digest = sha256_digest(manifest)
        for data in (EMPTY_BLOB, snapshot, manifest):
            self._write_blob(data)
        # Re-read index.json just before writing it: keep whatever was added meanwhile.
        index = dict(LayoutSource(self.root, None).index)
        entries = _index_entries(index)
        if any(e.get("digest") == digest for e in entries):
            return True, "layout index"
        index["manifests"] = [*entries, _descriptor(manifest, digest)]
        self._atomic(self.root / "index.json", json.dumps(index, indent=2).encode() + b"\n")
        return False, "layout index"


def _backend(
    ref: ContractRef, config: RegistryConfig, timeout: float, client: httpx.Client, *, push: bool
) -> _Backend:
    if ref.root is not None:
        return _Layout(ref.root)
    assert ref.image is not None
    base = registry_base_url(ref.image, None, False)
    source = RegistrySource(
        base,
        ref.image.path,
        timeout=timeout,
        insecure=False,
        client=client,
        credentials=config.credentials(ref.image.domain),
        push=push,
    )
    return _Registry(source)


def _client(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))


# --- attach -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attached:
    digest: str
    subject: str
    #: ``referrers API``, ``referrers tag schema`` or ``layout index``.
    how: str
    #: The same artifact was already there (pushing again changed nothing).
    already: bool
    where: str


def attach_contract(
    target: str,
    snapshot: bytes,
    created: str,
    *,
    registry_config: RegistryConfig | None = None,
    timeout: float = 30.0,
) -> Attached:
    """Store ``snapshot`` (its exact bytes) as an artifact whose subject is ``target``'s digest."""
    ref = parse_contract_ref(target)
    if len(snapshot) > SNAPSHOT_MAX_BYTES:
        raise InputError(f"{target}: the snapshot is larger than 16 MiB")
    with _client(timeout) as client:
        backend = _backend(ref, registry_config or RegistryConfig(), timeout, client, push=True)
        subject = backend.subject(ref.digest)
        manifest = build_artifact(snapshot, subject, created)
        already, how = backend.push(ref.digest, snapshot, manifest)
    return Attached(sha256_digest(manifest), ref.digest, how, already, backend.description)


# --- resolve ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """The contract a digest resolved to: the snapshot's exact bytes and where they came from."""

    snapshot: bytes
    digest: str
    created: str
    #: Valid compatcheck contracts attached to the digest (the newest is this one).
    count: int
    how: str
    written: str

    @property
    def description(self) -> str:
        more = f", newest of {self.count}" if self.count > 1 else ""
        return f"{self.written} (contract {self.digest}, created {self.created}{more})"


def _candidate(
    backend: _Backend, desc: Mapping[str, Any], subject: str
) -> tuple[dt.datetime, str, str, Mapping[str, Any]]:
    """Check one listed referrer; ``ArtifactUnavailable`` says why it is not a usable contract."""
    try:
        digest = parse_digest(str(desc.get("digest", "")))
    except ValueError as exc:
        raise ArtifactUnavailable(f"a listed referrer: {exc}") from None
    size = desc.get("size")
    if isinstance(size, int) and size > MANIFEST_MAX_BYTES:
        raise ArtifactUnavailable(f"manifest `{digest}` declares {size} bytes, over the cap")
    doc = json_object(backend.manifest(digest), f"manifest `{digest}`")
    if doc.get("artifactType") != ARTIFACT_TYPE:
        raise ArtifactUnavailable(f"manifest `{digest}` is not a compatcheck contract")
    own_subject = doc.get("subject")
    if not isinstance(own_subject, dict) or own_subject.get("digest") != subject:
        raise ArtifactUnavailable(f"contract `{digest}` is attached to another image")
    layers = [d for d in doc.get("layers") or [] if isinstance(d, dict)]
    if len(layers) != 1 or layers[0].get("mediaType") != SNAPSHOT_LAYER_TYPE:
        raise ArtifactUnavailable(f"contract `{digest}` does not hold exactly one snapshot")
    layer = layers[0]
    lsize = layer.get("size")
    if not isinstance(lsize, int) or isinstance(lsize, bool) or not 0 < lsize <= SNAPSHOT_MAX_BYTES:
        raise ArtifactUnavailable(
            f"contract `{digest}` declares a snapshot of {lsize!r} bytes (limit 16 MiB)"
        )
    annotations = doc.get("annotations")
    created = annotations.get(CREATED) if isinstance(annotations, dict) else None
    when = _parse_created(created)
    if when is None:
        raise ArtifactUnavailable(f"contract `{digest}` has no valid `{CREATED}` annotation")
    return when, digest, str(created), layer


def resolve_contract(
    arg: str,
    *,
    registry_config: RegistryConfig | None = None,
    timeout: float = 10.0,
    cache: ContentCache | None = None,
    client: httpx.Client | None = None,
) -> Contract:
    """The newest contract attached to ``arg``'s digest, verified; raises ``ArtifactUnavailable``
    (``ContractMissing`` when the image carries none) and ``InputError`` for a bad reference.
    With ``cache``, manifests and the snapshot are fetched only when their digest is not in it
    (the list of referrers always is: :mod:`compatcheck.artifact.cache`). ``client``: an HTTP
    client to reuse (the hook's: creating one loads the CA bundle, tens of milliseconds); each
    request still has its own deadline within ``timeout``."""
    ref = parse_contract_ref(arg)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(_client(timeout))
        backend = _backend(ref, registry_config or RegistryConfig(), timeout, client, push=False)
        if cache is not None:
            backend = CachedContent(backend, cache)
        listed, how = backend.referrers(ref.digest)
        ours = [
            d
            for d in listed
            if d.get("artifactType") in (ARTIFACT_TYPE, None)
            and d.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST
        ]
        seen: dict[str, tuple[dt.datetime, str, str, Mapping[str, Any]]] = {}
        rejected: list[str] = []
        for desc in ours[:MAX_REFERRERS]:
            try:
                found = _candidate(backend, desc, ref.digest)
            except ArtifactUnavailable as exc:
                rejected.append(str(exc))
                continue
            seen[found[1]] = found
        if not seen:
            why = f" ({len(rejected)} unusable: {rejected[0]})" if rejected else ""
            raise ContractMissing(
                f"{backend.description} has no compatcheck contract attached to "
                f"`{ref.digest}` (looked up by {how}){why}"
            )
        _, digest, created, layer = max(seen.values(), key=lambda c: (c[0], c[1]))
        layer_digest = str(layer.get("digest", ""))
        try:
            parse_digest(layer_digest)
        except ValueError as exc:
            raise ArtifactUnavailable(f"contract `{digest}`: {exc}") from None
        body = backend.blob(layer_digest, int(layer["size"]))
        if len(body) != layer["size"]:
            raise ArtifactUnavailable(
                f"snapshot `{layer_digest}` is {len(body)} bytes, not {layer['size']} as declared"
            )
    return Contract(body, digest, created, len(seen), how, arg)


def load_contract(
    arg: str,
    *,
    label: str = "",
    registry_config: RegistryConfig | None = None,
    timeout: float = 10.0,
) -> Any:
    """``resolve_contract`` as a validated :class:`~compatcheck.snapshot.Snapshot` whose source
    names the contract chosen (``UnavailableError`` when it cannot be had, exit 3)."""
    from dataclasses import replace

    from compatcheck.errors import UnavailableError

    try:
        contract = resolve_contract(arg, registry_config=registry_config, timeout=timeout)
    except ArtifactUnavailable as exc:
        raise UnavailableError(f"{arg}: {exc}") from None
    snap = parse_contract_snapshot(contract.snapshot, contract.description)
    return replace(snap, label=label) if label else snap


def parse_contract_snapshot(snapshot: bytes, description: str) -> Any:
    """Validate a contract's bytes as a snapshot whose source is ``description`` (the contract's
    :attr:`Contract.description`); ``InputError`` naming the contract. The one parser of attached
    contracts: the CLI's sources and the hook's image targets both use it."""
    from dataclasses import replace

    from compatcheck.snapshot import parse_snapshot

    try:
        text = snapshot.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{description}: the snapshot is not UTF-8 text") from None
    snap = parse_snapshot(text, description)
    return replace(snap, source=description)
