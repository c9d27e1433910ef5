"""Talking to a registry over the OCI distribution API: base URL, auth challenges, capped reads.

:class:`RegistrySource` is the registry side of :mod:`compatcheck.artifact.oci`'s source protocol
(``manifest(ref)``, ``blob(digest)``), plus the one authenticated ``request()`` that pushing a
contract (:mod:`compatcheck.artifact.contract`) uses. Every byte is verified against its digest
and capped, and every call of one source shares one deadline (see the ``oci`` module).
"""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import urlsplit

import httpx

from compatcheck.artifact.auth import ANONYMOUS, Credentials
from compatcheck.artifact.oci import (
    MANIFEST_ACCEPT,
    MANIFEST_MAX_BYTES,
    ArtifactUnavailable,
    Fetched,
    ImageInfo,
    json_object,
    resolve_image,
    sha256_digest,
    verify_digest,
)
from compatcheck.artifact.reference import DEFAULT_DOMAIN, DOCKER_HUB_API, ImageReference
from compatcheck.errors import UsageError
from compatcheck.masking import mask_secrets
from compatcheck.scrape import is_loopback


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
        doc = json_object(body, "token response")
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

    def manifest(self, reference: str) -> Fetched:
        what = (
            f"manifest `{self.repository}:{reference}`"
            if ":" not in reference
            else (f"manifest `{self.repository}@{reference}`")
        )
        body, headers = self._get(
            f"manifests/{reference}", MANIFEST_ACCEPT, MANIFEST_MAX_BYTES, what
        )
        digest = sha256_digest(body)
        if ":" in reference:
            verify_digest(body, reference, what)
            digest = reference
        else:
            # Trap: the registry's Docker-Content-Digest is a claim; the digest is that of the
            # exact bytes received (which is what a later pull by digest will get).
            claimed = headers.get("docker-content-digest")
            if claimed and claimed != digest:
                raise ArtifactUnavailable(
                    f"{what} has digest `{digest}` but the registry claims `{claimed}`"
                )
        return Fetched(body, digest, headers.get("content-type", ""))

    def blob(self, digest: str, max_bytes: int) -> bytes:
        what = f"blob `{digest}`"
        body, _ = self._get(f"blobs/{digest}", None, max_bytes, what)
        verify_digest(body, digest, f"{what} from {self.description}")
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
