"""HTTP access to a running release: scrape ``/metrics`` the way Prometheus does, probe endpoints.

Why not a plain ``httpx.get``: a rollback check talks to services that are, by assumption, possibly
broken. A ``/metrics`` handler that streams forever, hangs after the headers, or trickles bytes
must end the scrape within its budget with one line naming the URL, and memory must stay bounded
no matter what the server sends. So every call here has an overall deadline (httpx timeouts are
per read, a trickling body never trips them) and a byte cap on the *decoded* body (a gzip bomb is
capped too).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from compatcheck.errors import UnavailableError
from compatcheck.jsondoc import JsonError, parse_json
from compatcheck.masking import mask_secrets
from compatcheck.model import MetricsSchema

#: The Accept header Prometheus 2.49+ sends with its default ``scrape_protocols``
#: (OpenMetrics 1.0.0, OpenMetrics 0.0.1, text 0.0.4; weights from ``scrape/scrape.go``'s
#: ``acceptHeader``). Prometheus 3 adds ``escaping=allow-utf-8`` and text 1.0.0, which would invite
#: UTF-8 metric names our consumers' PromQL cannot select; the 2.x header is what most fleets send.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,"
    "*/*;q=0.2"
)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Content types that are a page for a person, never an exposition.
_PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: Probe and warm-up bodies are small JSON documents; a megabyte is generous.
PROBE_MAX_BYTES = 1024 * 1024
USER_AGENT = "compatcheck"


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (brackets allowed): traffic that stays here."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Budget:
    """Counts bytes and wall time across a streamed body; remembers why it stopped."""

    def __init__(self, deadline: float, max_bytes: int) -> None:
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.read = 0
        self.exceeded: str | None = None

    def stream(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.read += len(chunk)
            if self.read > self.max_bytes:
                self.exceeded = f"body larger than {_human(self.max_bytes)}"
                raise _Stop(self.exceeded)
            if time.monotonic() > self.deadline:
                self.exceeded = "response not complete within the time limit"
                raise _Stop(self.exceeded)
            yield chunk


class _Stop(Exception):
    """Raised inside the body iterator; never escapes this module."""


def _human(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def _transport_reason(exc: Exception) -> str:
    """One short phrase for an httpx failure (no stack, no URL: the caller adds it)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return "timed out waiting for the response"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc) or "connection failed"
        if "refused" in text.lower():
            return "connection refused"
        return text.splitlines()[0]
    if isinstance(exc, httpx.RemoteProtocolError):
        return "server closed the connection: " + (str(exc).splitlines() or ["protocol error"])[0]
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return "invalid URL"
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _timeout(timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=min(timeout, 5.0))


def scrape_metrics(
    url: str,
    *,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    client: httpx.Client | None = None,
) -> MetricsSchema:
    """Scrape one ``/metrics`` URL with Prometheus's Accept header and parse it while streaming.

    The returned schema records the Content-Type the server negotiated. Transport failures,
    non-2xx answers, bodies over ``max_bytes`` and scrapes over ``timeout`` (wall time, whole
    response) raise :class:`UnavailableError` with one line naming the (masked) URL. A malformed
    exposition raises :class:`compatcheck.errors.ExpositionError`, as reading a file does.
    """
    from compatcheck.exposition import parse_stream

    shown = mask_secrets(url)
    deadline = time.monotonic() + timeout
    headers = {"Accept": PROMETHEUS_ACCEPT, "User-Agent": USER_AGENT}
    own = client is None
    http = client or httpx.Client(timeout=_timeout(timeout))
    try:
        try:
            with http.stream("GET", url, headers=headers, timeout=_timeout(timeout)) as resp:
                if not 200 <= resp.status_code < 300:
                    raise UnavailableError(
                        f"{shown}: scrape failed: HTTP {resp.status_code} {resp.reason_phrase}"
                    )
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise UnavailableError(
                        f"{shown}: scrape failed: body of {declared} bytes is over the "
                        f"{_human(max_bytes)} cap"
                    )
                content_type = resp.headers.get("content-type", "")
                media = content_type.split(";", 1)[0].strip().lower()
                if media in _PAGE_TYPES:
                    # A login page, an SSO redirect target or a proxy's error page answered
                    # with 200: no exposition at all, whatever its text would parse as.
                    raise UnavailableError(
                        f"{shown}: scrape failed: the answer is a web page (`{media}`), "
                        "not a metrics exposition (a login or error page?)"
                    )
                budget = _Budget(deadline, max_bytes)
                try:
                    schema = parse_stream(
                        budget.stream(resp.iter_bytes()), content_type=content_type
                    )
                except Exception as exc:
                    # Trap: the parser may wrap what the body iterator raised; the budget's own
                    # record decides that the body was cut, not the exception's type.
                    if budget.exceeded:
                        raise UnavailableError(
                            f"{shown}: scrape failed: {budget.exceeded}"
                        ) from None
                    cause = exc.__cause__ or exc.__context__
                    if isinstance(cause, httpx.HTTPError):
                        raise UnavailableError(
                            f"{shown}: scrape failed: {_transport_reason(cause)}"
                        ) from None
                    raise
        except httpx.HTTPError as exc:
            raise UnavailableError(f"{shown}: scrape failed: {_transport_reason(exc)}") from None
    finally:
        if own:
            http.close()
    if not schema.content_type and content_type:
        schema = replace(schema, content_type=content_type)
    return schema


@dataclass(frozen=True)
class ProbeResult:
    """One HTTP exchange with a release; failures are data here, not exceptions.

    ``status`` is ``None`` when no HTTP answer came (``error`` says why); ``json`` is the decoded
    body when it was JSON, else ``None``; ``text`` is at most the first 2000 characters.
    """

    url: str
    status: int | None = None
    json: Any = None
    text: str = ""
    content_type: str = ""
    error: str | None = None
    elapsed: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def probe(
    url: str,
    *,
    method: str = "GET",
    timeout: float = 5.0,
    max_bytes: int = PROBE_MAX_BYTES,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    client: httpx.Client | None = None,
) -> ProbeResult:
    """Send one request (readiness probe, health check, warm-up call) with a deadline and a cap.

    Never raises for network or HTTP problems: readiness polling needs "not yet" as a value.
    """
    shown = mask_secrets(url)
    start = time.monotonic()
    budget = _Budget(start + timeout, max_bytes)
    own = client is None
    http = client or httpx.Client(timeout=_timeout(timeout))
    req_headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*;q=0.5"}
    req_headers.update(headers or {})
    kwargs: dict[str, Any] = {"headers": req_headers, "timeout": _timeout(timeout)}
    if json_body is not None:
        kwargs["json"] = json_body
    try:
        with http.stream(method, url, **kwargs) as resp:
            body = bytearray()
            try:
                for chunk in budget.stream(resp.iter_bytes()):
                    body.extend(chunk)
            except _Stop:
                return ProbeResult(
                    shown,
                    status=resp.status_code,
                    error=budget.exceeded,
                    elapsed=time.monotonic() - start,
                )
            ctype = resp.headers.get("content-type", "")
            text = body.decode("utf-8", errors="replace")
            decoded: Any = None
            if "json" in ctype.lower() or text.lstrip()[:1] in ("{", "["):
                try:
                    decoded = parse_json(text)
                except JsonError:  # not JSON a check can use (invalid, too deep): the text stays
                    decoded = None
            return ProbeResult(
                shown,
                status=resp.status_code,
                json=decoded,
                text=text[:2000],
                content_type=ctype,
                elapsed=time.monotonic() - start,
                headers=dict(resp.headers),
            )
    except httpx.HTTPError as exc:
        return ProbeResult(shown, error=_transport_reason(exc), elapsed=time.monotonic() - start)
    finally:
        if own:
            http.close()


def fetch_json(url: str, *, timeout: float = 5.0, max_bytes: int = PROBE_MAX_BYTES) -> Any:
    """GET a JSON document or raise :class:`UnavailableError` naming the (masked) URL."""
    result = probe(url, timeout=timeout, max_bytes=max_bytes)
    if result.error is not None:
        raise UnavailableError(f"{result.url}: {result.error}")
    if not result.ok:
        raise UnavailableError(f"{result.url}: HTTP {result.status}")
    if result.json is None:
        raise UnavailableError(f"{result.url}: response is not JSON")
    return result.json
