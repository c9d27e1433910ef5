"""Reading an image's identity: OCI image layout directories and registries (OCI distribution API).

Both sources answer the same question — which manifest does this reference resolve to, and what
labels does its config carry — so both implement one small :class:`_Source` protocol
(``manifest(ref)``, ``blob(digest)``) and share the walk index → platform manifest → config.

Why every byte is verified and capped: the point of artifact pinning is that the rollback targets
exactly what was verified. A registry (or a copied layout directory) that returns content whose
sha256 is not the digest it was asked for is not trustworthy, and a registry that streams a
gigabyte "manifest" must not exhaust the checker. Manifests are capped at 4 MiB (the
distribution project's own limit), configs at 8 MiB, and every registry call shares one deadline.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from compatcheck.artifact.auth import ANONYMOUS, Credentials
from compatcheck.artifact.reference import (
    DEFAULT_DOMAIN,
    DOCKER_HUB_API,
    ImageReference,
    parse_digest,
)
from compatcheck.errors import UsageError
from compatcheck.jsondoc import JsonError, parse_json
from compatcheck.masking import mask_secrets
from compatcheck.scrape import is_loopback

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
class _Fetched:
    body: bytes
    digest: str
    media_type: str


class _Source(Protocol):
    description: str

    def manifest(self, reference: str) -> _Fetched: ...

    def blob(self, digest: str, max_bytes: int) -> bytes: ...


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _verify(data: bytes, digest: str, what: str) -> None:
    algorithm = digest.partition(":")[0]
    actual = algorithm + ":" + hashlib.new(algorithm, data).hexdigest()
    if actual != digest:
        raise ArtifactUnavailable(f"{what} has digest `{actual}`, not `{digest}` as addressed")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = parse_json(data)
    except JsonError as exc:
        raise ArtifactUnavailable(f"{what} is {exc}") from None
    if not isinstance(doc, dict):
        raise ArtifactUnavailable(f"{what} is not a JSON object")
    return doc


def _media_type(doc: Mapping[str, Any], declared: str) -> str:
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
        doc = _json_object(fetched.body, f"manifest `{fetched.digest}`")
        mtype = _media_type(doc, fetched.media_type)
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
        config = _json_object(
            source.blob(config_digest, CONFIG_MAX_BYTES), f"config `{config_digest}`"
        )
        inner = config.get("config")
        labels = _string_map(inner.get("Labels")) if isinstance(inner, dict) else {}
        return ImageInfo(
            digest=top.digest,
            media_type=_media_type(_json_object(top.body, "manifest"), top.media_type),
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
        self.index = _json_object(raw, f"`{index_path}`")

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
        _verify(data, digest, f"blob `{digest}` in {self.description}")
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

    def manifest(self, reference: str) -> _Fetched:
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
        return _Fetched(self.blob(digest, MANIFEST_MAX_BYTES), digest, declared)


def read_layout(root: Path, image: ImageReference | None) -> ImageInfo:
    """Resolve ``image`` (or the layout's only image when ``None``) in an OCI layout directory."""
    source = LayoutSource(root, image)
    if image is None:
        return resolve_image(source, "latest")
    return resolve_image(source, image.manifest_reference)


# --- Registry (OCI distribution API) ---------------------------------------------------------


def registry_base_url(image: ImageReference, override: str | None, insecure: bool) -> str:
    """``scheme://host[:port]`` to talk to. Plain HTTP only to loopback or when told ``insecure``.

    Raises :class:`UsageError` for a configured ``http://`` registry elsewhere: sending pulls in
    clear text across a network is a decision a person makes, not a default.
    """
    if override:
        text = override if "://" in override else f"https://{override}"
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"registry `{mask_secrets(override)}` is not an http(s) URL or host")
        if parts.scheme == "http" and not (insecure or is_loopback(parts.hostname)):
            raise UsageError(
                f"registry `{mask_secrets(override)}` uses plain http; allowed only for "
                "localhost or when told insecure"
            )
        return f"{parts.scheme}://{parts.netloc}".rstrip("/")
    host = DOCKER_HUB_API if image.domain == DEFAULT_DOMAIN else image.domain
    hostname = urlsplit(f"//{host}").hostname or host
    # Docker itself treats loopback registries as insecure (plain HTTP) by default.
    scheme = (
        "http"
        if (is_loopback(hostname) or insecure) and image.domain != DEFAULT_DOMAIN
        else "https"
    )
    return f"{scheme}://{host}"


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` → (``bearer``, params)."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_PARAM.findall(rest)}


def _transport_reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        return "connection refused" if "refused" in text else "connection failed"
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class RegistrySource:
    """Pulls (and, for attached contracts, pushes) over the OCI distribution API.

    Auth: a ``401`` with ``WWW-Authenticate: Bearer realm=...`` is answered by fetching a token
    from the realm (``service`` and ``scope`` as challenged) and retrying once, which is what
    Docker Hub, GHCR, Quay and a token-auth distribution registry expect. The token request is
    anonymous, or carries the user's credentials from a docker ``config.json``: basic auth on a
    GET, or an identity token as an OAuth2 ``refresh_token`` grant (POST), as the distribution
    token spec describes. A Basic challenge is answered with the user name and password; without
    them the registry is unavailable. Credentials never appear in a message.
    """

    def __init__(
        self,
        base_url: str,
        repository: str,
        *,
        timeout: float,
        insecure: bool,
        client: httpx.Client,
        credentials: Credentials = ANONYMOUS,
        push: bool = False,
    ) -> None:
        self.base_url = base_url
        self.repository = repository
        self.insecure = insecure
        self.client = client
        self.deadline = time.monotonic() + timeout
        self.token: str | None = None
        self.basic: str | None = None
        self.credentials = credentials
        self.push = push
        self.description = f"registry `{mask_secrets(base_url)}`"

    def _read(self, response: httpx.Response, max_bytes: int, what: str) -> bytes:
        """Stream a body under the byte cap and the shared deadline (httpx times reads only)."""
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise ArtifactUnavailable(f"{what} is {declared} bytes, over the {max_bytes} byte cap")
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > max_bytes:
                raise ArtifactUnavailable(f"{what} is larger than the {max_bytes} byte cap")
            if time.monotonic() > self.deadline:
                raise ArtifactUnavailable(f"{what} did not arrive within the time limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ArtifactUnavailable(f"{self.description} did not answer within the time limit")
        return left

    def _basic_header(self) -> str:
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _authenticate(self, challenge: str, what: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic" and self.credentials.username:
            self.basic = self._basic_header()
            return
        if scheme != "bearer" or "realm" not in params:
            raise ArtifactUnavailable(
                f"{self.description} requires credentials for {what} "
                f"({scheme or 'unknown'} auth); none are configured for it"
                " (--registry-config FILE)"
            )
        if self.credentials.registry_token:
            self.token = self.credentials.registry_token
            return
        realm = urlsplit(params["realm"])
        if realm.scheme not in ("http", "https") or not realm.hostname:
            raise ArtifactUnavailable(f"{self.description} sent an invalid token realm")
        if realm.scheme == "http" and not (self.insecure or is_loopback(realm.hostname)):
            raise ArtifactUnavailable(
                f"{self.description} sent a plain-http token realm `{params['realm']}`"
            )
        actions = "pull,push" if self.push else "pull"
        scope = params.get("scope") or f"repository:{self.repository}:pull"
        if self.push:
            scope = f"repository:{self.repository}:{actions}"
        query = {"scope": scope}
        if "service" in params:
            query["service"] = params["service"]
        creds = self.credentials
        try:
            if creds.identity_token:
                # OAuth2 refresh-token grant (distribution's token spec, "oauth.md").
                form = {
                    **query,
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "compatcheck",
                }
                request = self.client.build_request(
                    "POST", params["realm"], data=form, timeout=self._remaining()
                )
            else:
                headers = {"Authorization": self._basic_header()} if creds.username else {}
                request = self.client.build_request(
                    "GET", params["realm"], params=query, headers=headers, timeout=self._remaining()
                )
            resp = self.client.send(request, stream=True)
            try:
                body = self._read(resp, 1024 * 1024, "token response")
                status = resp.status_code
            finally:
                resp.close()
        except httpx.HTTPError as exc:
            raise ArtifactUnavailable(
                f"token realm `{params['realm']}` unreachable: {_transport_reason(exc)}"
            ) from None
        if status != 200:
            who = "" if creds.kind == "anonymous" else f" with the configured {creds.kind}"
            raise ArtifactUnavailable(
                f"token realm `{params['realm']}` answered {status} for {what}{who}"
            )
        doc = _json_object(body, "token response")
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise ArtifactUnavailable(f"token realm `{params['realm']}` returned no token")
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        accept: str | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        max_bytes: int = MANIFEST_MAX_BYTES,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, bytes, httpx.Headers]:
        """One authenticated call: ``path`` under ``/v2/<repository>/`` or an absolute URL (an
        upload ``Location``). Statuses in ``ok`` are returned; 404 and any other is unavailable."""
        url = path if "://" in path else f"{self.base_url}/v2/{self.repository}/{path}"
        for attempt in range(2):
            headers = {"User-Agent": "compatcheck"}
            if accept:
                headers["Accept"] = accept
            if content_type:
                headers["Content-Type"] = content_type
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            elif self.basic:
                headers["Authorization"] = self.basic
            try:
                # Blobs are commonly served by a redirect to object storage; httpx drops the
                # Authorization header when a redirect leaves the origin, as it should.
                request = self.client.build_request(
                    method, url, headers=headers, content=content, timeout=self._remaining()
                )
                resp = self.client.send(request, stream=True, follow_redirects=method == "GET")
                try:
                    if resp.status_code == 401 and attempt == 0:
                        challenge = resp.headers.get("www-authenticate", "")
                        resp.close()
                        self._authenticate(challenge, what)
                        continue
                    if resp.status_code in ok:
                        body = b"" if method == "HEAD" else self._read(resp, max_bytes, what)
                        return resp.status_code, body, resp.headers
                    if resp.status_code == 404:
                        raise ArtifactUnavailable(f"{self.description} has no {what}")
                    if resp.status_code in (401, 403):
                        raise ArtifactUnavailable(
                            f"{self.description} refused access to {what} ({resp.status_code})"
                        )
                    raise ArtifactUnavailable(
                        f"{self.description} answered {resp.status_code} for {what}"
                    )
                finally:
                    resp.close()
            except httpx.HTTPError as exc:
                raise ArtifactUnavailable(
                    f"{self.description} unreachable: {_transport_reason(exc)}"
                ) from None
        raise ArtifactUnavailable(
            f"{self.description} refused access to {what}"
        )  # pragma: no cover

    def _get(
        self, path: str, accept: str | None, max_bytes: int, what: str
    ) -> tuple[bytes, httpx.Headers]:
        _, body, headers = self.request("GET", path, what, accept=accept, max_bytes=max_bytes)
        return body, headers

    def manifest(self, reference: str) -> _Fetched:
        what = (
            f"manifest `{self.repository}:{reference}`"
            if ":" not in reference
            else (f"manifest `{self.repository}@{reference}`")
        )
        body, headers = self._get(
            f"manifests/{reference}", MANIFEST_ACCEPT, MANIFEST_MAX_BYTES, what
        )
        digest = _sha256(body)
        if ":" in reference:
            _verify(body, reference, what)
            digest = reference
        else:
            # Trap: the registry's Docker-Content-Digest is a claim; the digest is that of the
            # exact bytes received (which is what a later pull by digest will get).
            claimed = headers.get("docker-content-digest")
            if claimed and claimed != digest:
                raise ArtifactUnavailable(
                    f"{what} has digest `{digest}` but the registry claims `{claimed}`"
                )
        return _Fetched(body, digest, headers.get("content-type", ""))

    def blob(self, digest: str, max_bytes: int) -> bytes:
        what = f"blob `{digest}`"
        body, _ = self._get(f"blobs/{digest}", None, max_bytes, what)
        _verify(body, digest, f"{what} from {self.description}")
        return body


def read_registry(
    image: ImageReference,
    *,
    registry: str | None = None,
    timeout: float = 10.0,
    insecure: bool = False,
    client: httpx.Client | None = None,
) -> ImageInfo:
    """Resolve ``image`` over the OCI distribution API; failures raise ArtifactUnavailable."""
    base = registry_base_url(image, registry, insecure)
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
    try:
        source = RegistrySource(base, image.path, timeout=timeout, insecure=insecure, client=http)
        return resolve_image(source, image.manifest_reference)
    finally:
        if own:
            http.close()
