"""The policy hook's HTTP face: routes, auth, body cap, and the status codes each caller expects.

Contracts of the callers, as they document them (and as the recipes' tests replay them):

- Argo Rollouts' web metric provider treats any non-2xx as an *error* (not a failure) and reads
  the verdict with ``jsonPath: "{$.go}"``: so ``/v1/check`` answers 200 with ``go`` for both go and
  no-go, and a non-2xx only when it cannot tell (503), cannot accept (429) or the request is bad.
- Flagger passes a webhook only on 200-202 and retries 429 and 5xx: so ``/v1/flagger`` answers 200
  for go, 412 for no-go (a final "no"), and 503 only for "cannot tell yet".
- Spinnaker's webhook stage retries 429 and 5xx and treats other 4xx as terminal: so
  ``/v1/checks`` validates synchronously (400/404 end the stage with a reason) and the polled
  status is RUNNING until SUCCEEDED (go) or TERMINAL (anything else).

Whatever a client sends, the answer is one JSON line and the log gets one line, masked: a body
that is not JSON, nests too deeply, repeats a key, holds a 5,000-digit number or a lone surrogate
is a 400; a body that does not arrive in time is a 408; a client that goes away is a 400 nobody
reads; a bug is a 500 without a traceback (``COMPATCHECK_DEBUG=1`` logs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from compatcheck.errors import (
    BusyError,
    CompatcheckError,
    DeadlineExceeded,
    InternalError,
    NotFoundError,
    RefusedError,
    UnavailableError,
    UsageError,
)
from compatcheck.jsondoc import JsonError, parse_json
from compatcheck.masking import mask_secrets
from compatcheck.serve.checker import Checker, Outcome
from compatcheck.serve.metrics import HookMetrics, endpoint_of
from compatcheck.serve.requests import CheckRequest, parse_check_request, parse_flagger_request
from compatcheck.serve.settings import ServeSettings

if TYPE_CHECKING:
    from compatcheck.serve.state import SharedChecks

_OPEN_PATHS = frozenset({"/healthz", "/metrics"})
FLAGGER_PATH = "/v1/flagger"
#: Request state flag: the caller sent no Authorization header and must carry the token in the body.
BODY_TOKEN_STATE = "compatcheck_body_token"
#: A Flagger body carrying its token is read before the token is checked (Flagger's webhooks
#: cannot send headers), so anyone can make the hook read it: no Flagger payload comes near this.
UNAUTHENTICATED_MAX_BODY = 16 * 1024
#: Ids of shared checks (``--state``): a cache key, or ``u`` and a random one for URL targets.
_SHARED_ID = re.compile(r"u?[0-9a-f]{32,64}")
#: Requests are two levels deep; anything deeper is not a request.
REQUEST_MAX_DEPTH = 8

log = logging.getLogger("compatcheck.serve")


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


JSON_TYPE = "application/json"


def json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON that encodes whatever a message holds: a lone surrogate a caller sent
    (``"\\ud800"``) is written as its escape instead of failing the response."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


def _error(status: int, message: str, **extra: Any) -> Response:
    headers = {}
    if "retry_after" in extra:
        retry = extra.pop("retry_after")
        if retry is not None:
            headers["Retry-After"] = str(retry)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="compatcheck"'
    body = json_bytes({"error": mask_secrets(message), **extra})
    return Response(body, status_code=status, headers=headers, media_type=JSON_TYPE)


def _log(status: int, scope: Scope, message: str) -> None:
    """One line per refused or failed request, masked, control characters escaped."""
    line = f"{status} {scope.get('method', '?')} {scope.get('path', '?')}: {message}"
    line = mask_secrets(line).encode("unicode_escape", "backslashreplace").decode("ascii")
    (log.warning if status >= 500 else log.info)("%s", line[:2000])


class HookError(Exception):
    """A request the hook answers with ``status`` and the one-line ``message``."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


#: The library's domain errors as HTTP: (error, status, Retry-After seconds), the most specific
#: first. The one place where a condition of the library becomes a status.
_STATUSES: tuple[tuple[type[CompatcheckError], int, int | None], ...] = (
    (NotFoundError, 404, None),
    (RefusedError, 403, None),
    (UsageError, 400, None),
    (BusyError, 429, 1),
    (DeadlineExceeded, 503, 5),
    (UnavailableError, 503, None),
    (InternalError, 500, None),
)


def http_error(exc: HookError | CompatcheckError) -> HookError:
    """``exc`` as the status, message and Retry-After the hook answers with."""
    if isinstance(exc, HookError):
        return exc
    status, retry = next(((s, r) for cls, s, r in _STATUSES if isinstance(exc, cls)), (500, None))
    return HookError(status, str(exc), retry_after=retry)


def _reject(request: Request, exc: HookError | CompatcheckError) -> Response:
    err = http_error(exc)
    _log(err.status, request.scope, err.message)
    return _error(err.status, err.message, retry_after=err.retry_after)


class _Guard:
    """Pure ASGI middleware: bearer-token auth and per-endpoint request counting.

    Pure ASGI rather than ``BaseHTTPMiddleware`` so that a rejected request is answered before any
    of its body is read, and nothing buffers a response.
    """

    def __init__(self, app: ASGIApp, token: str | None, metrics: HookMetrics) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None
        self.metrics = metrics

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None or scope["path"] in _OPEN_PATHS:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                # Trap: compare_digest is constant-time only for equal lengths, which is fine:
                # the length of a token is not the secret.
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    given.strip(), self.token
                )
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope["path"])
        status = {"code": 500, "started": 0}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], 1
            await send(message)

        try:
            if self._authorized(scope):
                await self.app(scope, receive, counting_send)
            elif scope["path"] == FLAGGER_PATH and not _has_authorization(scope):
                # Flagger's webhooks cannot send headers: the handler checks `metadata.token`.
                scope.setdefault("state", {})[BODY_TOKEN_STATE] = True
                await self.app(scope, receive, counting_send)
            else:
                reason = "missing or wrong bearer token"
                _log(401, scope, reason)
                await _error(401, reason)(scope, receive, counting_send)
        except Exception as exc:  # a bug: one line, never a traceback on the wire or in the log
            if os.environ.get("COMPATCHECK_DEBUG"):
                log.exception("internal error")
            _log(500, scope, f"internal error: {type(exc).__name__}: {exc}")
            if not status["started"]:
                await _error(500, "internal error")(scope, receive, counting_send)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()


async def read_json(request: Request, max_body: int, timeout: float) -> object:
    """The request body as JSON, capped at ``max_body`` bytes (413) both by the declared length
    and by the bytes actually streamed (a lying or absent Content-Length is caught too), and
    complete within ``timeout`` seconds (408: a client trickling its body must not hold a
    connection and a handler for as long as it likes)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 18:
            raise HookError(400, "invalid Content-Length header")
        if int(declared) > max_body:
            raise HookError(
                413, f"request body of {declared} bytes is over the {max_body} byte cap"
            )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body:
                    raise HookError(413, f"request body is over the {max_body} byte cap")
                chunks.append(chunk)
    except TimeoutError:
        raise HookError(408, f"request body not received within {timeout:g}s") from None
    except ClientDisconnect:
        raise HookError(400, "client disconnected before sending the whole body") from None
    if not size:
        raise HookError(400, "request body is empty (expected a JSON object)")
    try:
        return parse_json(b"".join(chunks), max_depth=REQUEST_MAX_DEPTH, unique_keys=True)
    except JsonError as exc:
        raise HookError(400, f"request body is {exc}") from None


@dataclass
class Job:
    """An asynchronous check, polled by Spinnaker's monitored webhook stage."""

    status: str = "RUNNING"  # RUNNING | SUCCEEDED | TERMINAL
    outcome: Outcome | None = None
    error: str | None = None
    created: float = field(default_factory=time.monotonic)

    def body(self) -> bytes:
        go = "null" if self.outcome is None else json.dumps(self.outcome.go)
        report = b"null" if self.outcome is None else self.outcome.report_json
        head = f'{{"status":{json.dumps(self.status)},"go":{go},'.encode()
        if self.error is not None:
            head += b'"error":' + json_bytes(mask_secrets(self.error)) + b","
        return head + b'"report":' + report + b"}"


def _argo_answer(outcome: Outcome) -> Response:
    """Argo's web metric: 200 with the report (``go`` read by ``jsonPath``) for a verdict, 503
    (an Error measurement, retried) only when it cannot tell yet."""
    if outcome.unavailable is not None:
        body = (
            f'{{"error":{json.dumps("cannot tell yet: " + outcome.unavailable)},'
            f'"go":false,"report":'.encode()
            + outcome.report_json
            + b"}"
        )
        return Response(body, status_code=503, media_type=JSON_TYPE, headers={"Retry-After": "30"})
    return Response(outcome.report_json, media_type=JSON_TYPE)


class Hook:
    """State shared by the routes of one app: settings, the checker, the jobs."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = HookMetrics()
        #: With ``--state``: checks and verdicts shared by replicas (:mod:`.state`).
        self.shared: SharedChecks | None = None
        state = None
        if settings.state is not None:
            from compatcheck.serve.state import SharedChecks, SharedState, parse_state_url

            state = SharedState(parse_state_url(settings.state))
        self.checker = Checker(settings, self.metrics, state)
        if state is not None:
            self.shared = SharedChecks(state, self.checker, settings, self.count_verdict)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.tasks: set[asyncio.Task[None]] = set()

    def count_verdict(self, outcome: Outcome) -> None:
        self.metrics.verdicts.labels(
            "unavailable" if outcome.unavailable else outcome.verdict
        ).inc()

    # -- routes ------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "checks_running": self.checker.running})

    async def metrics_endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def _request(
        self, request: Request, parse: Callable[[object], CheckRequest], max_body: int | None = None
    ) -> CheckRequest:
        cap = self.settings.max_body if max_body is None else max_body
        return parse(await read_json(request, cap, self.settings.body_timeout))

    def _check_body(self, body: object) -> CheckRequest:
        return parse_check_request(
            body,
            allow_url=self.settings.allow_url_targets,
            allow_images=self.settings.allow_images,
        )

    async def check(self, request: Request) -> Response:
        try:
            req = await self._request(request, self._check_body)
            outcome = await self.checker.check(req)
        except (HookError, CompatcheckError) as exc:
            return _reject(request, exc)
        self.count_verdict(outcome)
        return _argo_answer(outcome)

    async def verify(self, request: Request) -> Response:
        """``/v1/verify``: one post-rollback verification, answered like ``/v1/check``."""
        from compatcheck.serve.verify import parse_verify_request

        try:
            body = await read_json(request, self.settings.max_body, self.settings.body_timeout)
            req = parse_verify_request(
                body,
                allow=self.settings.allow_prometheus,
                snapshot_dir=self.settings.snapshot_dir,
                fail_on=self.settings.fail_on,
                allow_images=self.settings.allow_images,
                registry_config=self.settings.registry_config,
            )
            if req.window >= self.settings.check_timeout:
                raise UsageError(
                    f"`window` must be shorter than this hook's check timeout "
                    f"({self.settings.check_timeout:g}s): let the AnalysisTemplate repeat it"
                )
            outcome = await self.checker.verify(req.args)
        except (HookError, CompatcheckError) as exc:
            return _reject(request, exc)
        self.count_verdict(outcome)
        return _argo_answer(outcome)

    def _flagger_body(self, request: Request) -> Callable[[object], CheckRequest]:
        needs_token = bool(getattr(request.state, BODY_TOKEN_STATE, False))

        def parse(body: object) -> CheckRequest:
            if needs_token:
                meta = body.get("metadata") if isinstance(body, dict) else None
                given = meta.pop("token", None) if isinstance(meta, dict) else None
                expected = self.settings.token or ""
                # Trap: a lone surrogate ("\ud800", valid JSON) cannot be encoded strictly.
                if not isinstance(given, str) or not hmac.compare_digest(
                    given.encode("utf-8", "surrogatepass"), expected.encode()
                ):
                    raise HookError(401, "missing or wrong bearer token (or `metadata.token`)")
            return parse_flagger_request(body, allow_images=self.settings.allow_images)

        return parse

    async def flagger(self, request: Request) -> Response:
        needs_token = bool(getattr(request.state, BODY_TOKEN_STATE, False))
        cap = min(self.settings.max_body, UNAUTHENTICATED_MAX_BODY) if needs_token else None
        try:
            req = await self._request(request, self._flagger_body(request), cap)
            outcome = await self.checker.check(req)
        except (HookError, CompatcheckError) as exc:
            return _reject(request, exc)
        self.count_verdict(outcome)
        if outcome.unavailable is not None:
            return _error(503, f"cannot tell yet: {outcome.unavailable}", retry_after=30)
        if not outcome.go:
            return _error(412, outcome.summary, go=False)
        return JSONResponse({"go": True, "message": outcome.summary})

    def _new_job(self, job: Job) -> str:
        job_id = secrets.token_urlsafe(12)
        self.jobs[job_id] = job
        # Keep the newest; drop finished ones first (running ones are bounded by the slots).
        while len(self.jobs) > self.settings.max_jobs:
            victim = next((k for k, j in self.jobs.items() if j.status != "RUNNING"), None)
            if victim is None:
                break
            del self.jobs[victim]
        return job_id

    def _finish(self, job: Job, outcome: Outcome) -> None:
        self.count_verdict(outcome)
        job.outcome = outcome
        job.status, job.error = outcome.job_status()

    async def _run_job(self, job: Job, future: asyncio.Future[Outcome], deadline: float) -> None:
        try:
            self._finish(job, await self.checker.finish(future, deadline))
        except (HookError, CompatcheckError) as exc:
            job.status, job.error = "TERMINAL", http_error(exc).message
        except Exception as exc:  # the job must end even on a bug, never stay RUNNING
            message = f"internal error: {type(exc).__name__}: {exc}"
            _log(500, {"method": "POST", "path": "/v1/checks"}, message)
            job.status, job.error = "TERMINAL", mask_secrets(message)

    async def start_check(self, request: Request) -> Response:
        if self.shared is not None:
            return await self._start_shared(request, self.shared)
        try:
            req = await self._request(request, self._check_body)
            deadline = time.monotonic() + self.settings.check_timeout
            cached, future = await self.checker.start(req, deadline)
        except (HookError, CompatcheckError) as exc:
            return _reject(request, exc)
        job = Job()
        if cached is not None:
            self._finish(job, cached)
        job_id = self._new_job(job)
        if cached is None:
            task = asyncio.create_task(self._run_job(job, future, deadline))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        location = f"/v1/checks/{job_id}"
        return JSONResponse(
            {"id": job_id, "status": job.status, "location": location},
            status_code=202,
            headers={"Location": location},
        )

    async def _start_shared(self, request: Request, shared: SharedChecks) -> Response:
        """``/v1/checks`` with ``--state``: the check lives in Redis, any replica answers polls."""
        try:
            req = await self._request(request, self._check_body)
            deadline = time.monotonic() + self.settings.check_timeout
            check_id, (status, _, _) = await shared.submit(req, deadline)
        except (HookError, CompatcheckError) as exc:
            return _reject(request, exc)
        location = f"/v1/checks/{check_id}"
        return JSONResponse(
            {"id": check_id, "status": status, "location": location},
            status_code=202,
            headers={"Location": location},
        )

    async def get_check(self, request: Request) -> Response:
        if self.shared is not None:
            check_id = request.path_params["id"]
            try:
                found = await self.shared.poll(check_id) if _SHARED_ID.fullmatch(check_id) else None
            except CompatcheckError as exc:
                return _reject(request, exc)
            if found is None:
                return _error(404, "no such check (finished checks are kept for a day)")
            return Response(Job(*found).body(), media_type=JSON_TYPE)
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return _error(404, "no such check (finished checks are kept for a while, then dropped)")
        return Response(job.body(), media_type=JSON_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # Graceful shutdown: uvicorn has already drained in-flight requests; let background
            # checks finish or reach their deadline, then drop the threads.
            tasks = set(self.tasks) | (self.shared.tasks if self.shared else set())
            if tasks:
                await asyncio.wait(tasks, timeout=self.settings.check_timeout + 1)
            self.checker.close()
            if self.shared is not None:
                await self.shared.state.close()


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as the same one-line JSON as every other error."""
    assert isinstance(exc, HTTPException)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    _log(exc.status_code, request.scope, str(exc.detail))
    return _error(exc.status_code, message)


def _route(path: str, endpoint: Callable[[Request], Awaitable[Response]], method: str) -> Route:
    return Route(path, endpoint, methods=[method])


def create_app(settings: ServeSettings) -> Starlette:
    """The ASGI app for ``settings``; serve it with uvicorn (``cmd_serve``) or a TestClient."""
    hook = Hook(settings)
    routes = [
        _route("/healthz", hook.healthz, "GET"),
        _route("/metrics", hook.metrics_endpoint, "GET"),
        _route("/v1/check", hook.check, "POST"),
        _route("/v1/verify", hook.verify, "POST"),
        _route("/v1/checks", hook.start_check, "POST"),
        _route("/v1/checks/{id}", hook.get_check, "GET"),
        _route("/v1/flagger", hook.flagger, "POST"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=hook.lifespan,
        exception_handlers={HTTPException: _http_exception},
    )
    app.state.hook = hook
    app.add_middleware(_Guard, token=settings.token, metrics=hook.metrics)
    return app
