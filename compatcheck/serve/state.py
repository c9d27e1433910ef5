"""Shared state for hook replicas: ``compatcheck serve --state redis://HOST:PORT/DB``.

A hook deployed behind a Service runs as several replicas, and a caller's requests land on any of
them: Spinnaker submits ``/v1/checks`` to one replica and polls another. So with ``--state`` the
asynchronous checks, their results and the verdict cache live in Redis, not in one process:

- a check's id is derived from its inputs (the cache key of
  :meth:`~compatcheck.serve.checker.Checker.lookup`: service, both snapshot digests, policy and
  consumer digests, direction, fail-on), so identical requests on different replicas name the same
  check, and any replica answers a poll for it;
- the replica that evaluates a check holds its *lease* (``SET key token NX PX``), renewed while it
  evaluates; an identical request elsewhere finds the lease taken and joins instead of repeating
  the evaluation;
- a replica that dies mid-check stops renewing: once the lease expires, the next poll (on any
  replica) takes the check over and evaluates it again from the stored request, or, when it was
  already taken over :data:`MAX_TAKEOVERS` times, ends it TERMINAL with the reason.

Verdicts are cached in two levels: the replica's own LRU (no network on a hit), then Redis (shared).
A verdict is a pure function of its key, so neither level can be stale.

Why Redis and the ``redis`` client: the hook needs a shared store with atomic "set if absent,
with an expiry" and compare-and-delete (a lease), which Redis has natively; ``redis`` (redis-py)
is the client the Redis project maintains, with a sync client for the hook's worker threads and an
asyncio one for its event loop.

Trap: Redis being down must not look like a bug. Every Redis error becomes an
:class:`~compatcheck.errors.UnavailableError` naming the store (never its password), which the
web layer answers 503; work already finished is never lost to a failed write (the result stays in
the replica's own cache, and the lease expiring hands the check to another replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from compatcheck.errors import BusyError, CompatcheckError, UnavailableError, UsageError
from compatcheck.masking import mask_secrets

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from compatcheck.serve.checker import Checker, Outcome
    from compatcheck.serve.requests import CheckRequest
    from compatcheck.serve.settings import ServeSettings

log = logging.getLogger("compatcheck.serve")

#: A check whose evaluating replica died this many times ends TERMINAL instead of being retried.
MAX_TAKEOVERS = 1
#: How long finished checks stay pollable, and verdicts stay cached, in Redis (seconds).
CHECK_TTL = 24 * 3600
VERDICT_TTL = 7 * 24 * 3600
#: Default lease: a dead replica's check is taken over this long after its last renewal.
DEFAULT_LEASE = 10.0
#: Every Redis call's own timeout: an unreachable store answers 503 quickly, not at the deadline.
REDIS_TIMEOUT = 2.0
_OUR_QUERY = ("prefix", "lease")

# Compare-and-set on the lease: only its holder (its token) may renew or release it.
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end"
)


@dataclass(frozen=True)
class StateConfig:
    """``--state`` parsed: the URL the client connects to, how it is shown, and our options."""

    url: str
    #: ``redis://HOST:PORT/DB`` without credentials or query: what messages name.
    shown: str
    #: Every key starts with it (``?prefix=``; default ``compatcheck:``): several hooks, or test
    #: runs, can share one Redis.
    prefix: str
    #: Lease length in seconds (``?lease=``).
    lease: float


def parse_state_url(text: str) -> StateConfig:
    """``redis://[USER:PASSWORD@]HOST[:PORT][/DB][?prefix=P&lease=SECONDS]`` (or ``rediss://``,
    ``unix://``); :class:`UsageError` naming the problem otherwise. Other query keys are the
    client's own (``socket_timeout``...)."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"--state {mask_secrets(text)}: not a URL: {exc}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise UsageError(
            f"--state {mask_secrets(text)}: expected redis://HOST:PORT/DB (or rediss://, unix://)"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise UsageError(f"--state {mask_secrets(text)}: no host")
    db = parts.path.removeprefix("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        # Trap: the client ignores a database that is not a number and uses 0.
        raise UsageError(f"--state {mask_secrets(text)}: the database must be a number, got {db!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _OUR_QUERY}
    rest = [(k, v) for k, v in query if k not in _OUR_QUERY]
    prefix = ours.get("prefix", "compatcheck:")
    if not prefix or len(prefix) > 200:
        raise UsageError(f"--state: `prefix` must be 1-200 characters, got {prefix!r}")
    try:
        lease = float(ours.get("lease", DEFAULT_LEASE))
    except ValueError:
        raise UsageError(f"--state: `lease` must be seconds, got {ours['lease']!r}") from None
    if not 0.5 <= lease <= 3600:
        raise UsageError(f"--state: `lease` must be 0.5-3600 seconds, got {lease:g}")
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    where = f"{host}:{port}" if port else host
    shown = f"{parts.scheme}://{where}{parts.path}"
    try:
        import redis
    except ImportError:
        raise UsageError(
            "--state needs the `state` extra (redis is missing): pip install 'compatcheck[state]'"
        ) from None
    try:
        redis.ConnectionPool.from_url(url)  # the client's own checks (db number, options)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--state {shown}: {mask_secrets(exc)}") from None
    return StateConfig(url, shown, prefix, lease)


@dataclass(frozen=True)
class Record:
    """An asynchronous check as Redis holds it."""

    status: str  # RUNNING | SUCCEEDED | TERMINAL
    outcome: Outcome | None
    error: str | None
    #: The validated request, as JSON: what a replica taking the check over evaluates.
    request: str
    takeovers: int


def request_json(req: CheckRequest) -> str:
    """``req`` as the JSON body :func:`~compatcheck.serve.requests.parse_check_request` reads."""

    def target(t: Any) -> dict[str, str]:
        return {k: v for k, v in (("version", t.version), ("url", t.url), ("image", t.image)) if v}

    body = {
        "service": req.service,
        "old": target(req.old),
        "new": target(req.new),
        "direction": req.direction,
    }
    return json.dumps(body, separators=(",", ":"))


def _outcome_fields(outcome: Outcome) -> dict[str, bytes | str]:
    fields: dict[str, bytes | str] = {
        "go": "1" if outcome.go else "0",
        "verdict": outcome.verdict,
        "report": outcome.report_json,
        "summary": outcome.summary,
    }
    if outcome.unavailable is not None:
        fields["unavailable"] = outcome.unavailable
    return fields


#: A check's fields that hold its result: dropped when it is evaluated again or ends otherwise.
_RESULT_FIELDS = ("error", "report", "go", "verdict", "summary", "unavailable")


def _end_fields(
    status: str, error: str | None, request: str | None, **more: bytes | str
) -> dict[str, bytes | str]:
    """The fields a check ends with: its status, what else the ending holds, and the error and
    the request when there are."""
    fields: dict[str, bytes | str] = {"status": status, **more}
    if error is not None:
        fields["error"] = error
    if request is not None:
        fields["request"] = request
    return fields


def _as_bytes(raw: Any) -> dict[bytes, bytes]:
    """A hash as the client returns it (bytes: the client is not told to decode)."""
    return {bytes(k): bytes(v) for k, v in dict(raw).items()}


def _outcome_of(raw: dict[bytes, bytes]) -> Outcome | None:
    from compatcheck.serve.checker import Outcome

    if b"report" not in raw:
        return None
    unavailable = raw.get(b"unavailable")
    return Outcome(
        go=raw.get(b"go") == b"1",
        verdict=raw.get(b"verdict", b"").decode(),
        report_json=raw[b"report"],
        unavailable=None if unavailable is None else unavailable.decode(),
        summary=raw.get(b"summary", b"").decode(),
    )


class SharedState:
    """The Redis keys of one hook deployment: verdicts, checks and their leases.

    Two clients on one URL: a sync one for the checker's worker threads (verdict cache reads and
    writes happen inside a lookup or check slot, like every other read), an asyncio one for the
    event loop (checks and leases).
    """

    def __init__(self, config: StateConfig) -> None:
        import redis
        import redis.asyncio
        import redis.asyncio.retry
        import redis.backoff
        import redis.retry

        self.config = config
        options: dict[str, Any] = {
            "socket_timeout": REDIS_TIMEOUT,
            "socket_connect_timeout": REDIS_TIMEOUT,
        }
        # One try: a Redis outage is answered 503 at once; the caller (a controller) retries.
        self.sync: redis.Redis = redis.Redis.from_url(
            config.url, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0), **options
        )
        self.aio: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            config.url, retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0), **options
        )
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.lease_ms = int(config.lease * 1000)

    def key(self, kind: str, name: str) -> str:
        return f"{self.config.prefix}{kind}:{name}"

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: BaseException) -> UnavailableError:
        reason = mask_secrets(str(exc) or type(exc).__name__)
        return UnavailableError(f"state store {self.config.shown} unavailable: {reason}")

    # -- verdicts (worker threads) ------------------------------------------------------------

    def get_verdict(self, key: str) -> Outcome | None:
        with self._guard():
            raw = self.sync.hgetall(self.key("verdict", key))
        return _outcome_of(_as_bytes(raw)) if raw else None

    def put_verdict(self, key: str, outcome: Outcome) -> None:
        name = self.key("verdict", key)
        with self._guard():
            pipe = self.sync.pipeline()
            pipe.hset(name, mapping=_outcome_fields(outcome))  # type: ignore[arg-type]
            pipe.expire(name, VERDICT_TTL)
            pipe.execute()

    # -- checks and leases (event loop) ------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(self, name: str, ttl: int) -> AsyncIterator[redis.asyncio.client.Pipeline]:
        """A pipeline of writes to the key ``name``, sent as one with its new expiry: every
        write renews it, so a key in use never expires between two writes."""
        with self._guard():
            pipe = self.aio.pipeline()
            yield pipe
            pipe.expire(name, ttl)
            await pipe.execute()

    async def read(self, check_id: str) -> Record | None:
        with self._guard():
            raw = _as_bytes(await self.aio.hgetall(self.key("check", check_id)))
            if raw.get(b"cached_verdict") == b"1" and b"report" not in raw:
                # Answered from the cache: the report is the verdict's, kept once (its key is
                # the check id), not copied into every check that asked for it.
                verdict = await self.aio.hgetall(self.key("verdict", check_id))
                raw.update({k: v for k, v in _as_bytes(verdict).items() if k != b"status"})
        if not raw or b"status" not in raw:
            return None
        error = raw.get(b"error")
        return Record(
            status=raw[b"status"].decode(),
            outcome=_outcome_of(raw),
            error=None if error is None else error.decode(),
            request=raw.get(b"request", b"{}").decode(),
            takeovers=int(raw.get(b"takeovers", b"0")),
        )

    async def begin(self, check_id: str, request: str, owner: str, *, fresh: bool) -> None:
        """Mark the check RUNNING on ``owner``: a fresh evaluation drops a previous result."""
        name = self.key("check", check_id)
        async with self._writing(name, CHECK_TTL) as pipe:
            if fresh:
                pipe.delete(name)
            else:
                pipe.hdel(name, *_RESULT_FIELDS)
                pipe.hincrby(name, "takeovers", 1)
            pipe.hset(name, mapping={"status": "RUNNING", "request": request, "owner": owner})

    async def join(self, check_id: str, request: str) -> None:
        """Make sure the check another replica holds the lease of can be polled already."""
        name = self.key("check", check_id)
        async with self._writing(name, CHECK_TTL) as pipe:
            pipe.hsetnx(name, "status", "RUNNING")
            pipe.hsetnx(name, "request", request)

    async def finish(
        self,
        check_id: str,
        status: str,
        outcome: Outcome | None,
        error: str | None,
        request: str | None = None,
    ) -> None:
        name = self.key("check", check_id)
        result = _outcome_fields(outcome) if outcome is not None else {}
        fields = _end_fields(status, error, request, **result)
        async with self._writing(name, CHECK_TTL) as pipe:
            pipe.hdel(name, "error", "cached_verdict")
            pipe.hset(name, mapping=fields)  # type: ignore[arg-type]

    async def finish_cached(
        self,
        check_id: str,
        status: str,
        outcome: Outcome,
        error: str | None,
        request: str | None = None,
    ) -> None:
        """End a check answered from the verdict cache: the check refers to the verdict stored
        under its own id (whose expiry is renewed; written only if Redis no longer has it, e.g.
        when the verdict came from this replica's own cache) instead of a copy of the report."""
        verdict = self.key("verdict", check_id)
        name = self.key("check", check_id)
        with self._guard():
            renewed = await self.aio.expire(verdict, VERDICT_TTL)
        if not renewed:
            async with self._writing(verdict, VERDICT_TTL) as pipe:
                pipe.hset(verdict, mapping=_outcome_fields(outcome))  # type: ignore[arg-type]
        fields = _end_fields(status, error, request, cached_verdict="1")
        async with self._writing(name, CHECK_TTL) as pipe:
            pipe.hdel(name, *_RESULT_FIELDS)
            pipe.hset(name, mapping=fields)  # type: ignore[arg-type]

    async def acquire(self, check_id: str) -> str | None:
        """The lease's token when this replica got it, None when another replica holds it."""
        token = secrets.token_hex(16)
        with self._guard():
            got = await self.aio.set(self.key("lease", check_id), token, nx=True, px=self.lease_ms)
        return token if got else None

    async def leased(self, check_id: str) -> bool:
        with self._guard():
            return bool(await self.aio.exists(self.key("lease", check_id)))

    async def renew(self, check_id: str, token: str) -> bool:
        with self._guard():
            kept = await self.aio.eval(
                _RENEW, 1, self.key("lease", check_id), token, str(self.lease_ms)
            )  # type: ignore[misc]
        return bool(kept)

    async def release(self, check_id: str, token: str) -> None:
        with self._guard():
            await self.aio.eval(_RELEASE, 1, self.key("lease", check_id), token)  # type: ignore[misc]

    async def close(self) -> None:
        with contextlib.suppress(*self._errors):
            await self.aio.aclose()
        with contextlib.suppress(*self._errors):
            self.sync.close()


#: ``(status, outcome, error)`` of a check, as ``/v1/checks`` answers it.
Status = tuple[str, "Outcome | None", "str | None"]


class SharedChecks:
    """``/v1/checks`` across replicas: submit, poll, own (evaluate under a lease), take over."""

    def __init__(
        self,
        state: SharedState,
        checker: Checker,
        settings: ServeSettings,
        on_outcome: Callable[[Outcome], None],
    ) -> None:
        self.state = state
        self.checker = checker
        self.settings = settings
        self.on_outcome = on_outcome
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.tasks: set[asyncio.Task[None]] = set()

    async def submit(self, req: CheckRequest, deadline: float) -> tuple[str, Status]:
        """Start (or join, or answer from the cache) the check ``req``; its id and status."""
        lookup = await self.checker.look(req, deadline)
        # URL targets are not cacheable (a scrape is of "now"): such a check gets its own id.
        check_id = lookup.key or "u" + secrets.token_hex(16)
        body = request_json(req)
        if lookup.cached is not None:
            status = lookup.cached.job_status()
            self.on_outcome(lookup.cached)
            await self.state.finish_cached(check_id, status[0], lookup.cached, status[1], body)
            return check_id, (status[0], lookup.cached, status[1])
        token = await self.state.acquire(check_id)
        if token is None:  # another replica (or this one) is evaluating it
            await self.state.join(check_id, body)
            self.checker.metrics.shared.inc()
            return check_id, ("RUNNING", None, None)
        try:
            future = self.checker.run(lookup, deadline)
        except BusyError:
            await self._release(check_id, token)
            raise
        try:
            await self.state.begin(check_id, body, self.owner, fresh=True)
        finally:  # the evaluation runs now: `_own` ends it (and lets go) whatever happens
            self._spawn(self._own(check_id, token, future, deadline))
        return check_id, ("RUNNING", None, None)

    async def poll(self, check_id: str) -> Status | None:
        """The check's status; a RUNNING check whose lease expired is taken over (or ended)."""
        record = await self.state.read(check_id)
        if record is None:
            return None
        if record.status == "RUNNING" and not await self.state.leased(check_id):
            await self._take_over(check_id)
            record = await self.state.read(check_id) or record
        return record.status, record.outcome, record.error

    async def _take_over(self, check_id: str) -> None:
        token = await self.state.acquire(check_id)
        if token is None:
            return
        record = await self.state.read(check_id)
        if record is None or record.status != "RUNNING":  # finished meanwhile
            await self._release(check_id, token)
            return
        if record.takeovers >= MAX_TAKEOVERS:
            await self.state.finish(
                check_id,
                "TERMINAL",
                None,
                "abandoned: the replicas evaluating this check stopped "
                f"{record.takeovers + 1} times (lease expired); submit it again",
            )
            await self._release(check_id, token)
            return
        from compatcheck.serve.requests import parse_check_request

        deadline = time.monotonic() + self.settings.check_timeout
        try:
            req = parse_check_request(
                json.loads(record.request),
                allow_url=self.settings.allow_url_targets,
                allow_images=self.settings.allow_images,
            )
            lookup = await self.checker.look(req, deadline)
            if lookup.cached is not None:
                status, error = lookup.cached.job_status()
                self.on_outcome(lookup.cached)
                await self.state.finish_cached(check_id, status, lookup.cached, error)
                await self._release(check_id, token)
                return
            future = self.checker.run(lookup, deadline)
        except BusyError:  # no slot here now: the next poll tries again
            await self._release(check_id, token)
            return
        except (CompatcheckError, ValueError) as exc:
            await self.state.finish(check_id, "TERMINAL", None, f"taking the check over: {exc}")
            await self._release(check_id, token)
            return
        log.info("%s", f"taking over check {check_id} (its replica stopped renewing the lease)")
        try:
            await self.state.begin(check_id, record.request, self.owner, fresh=False)
        finally:  # the evaluation runs now: `_own` ends it (and lets go) whatever happens
            self._spawn(self._own(check_id, token, future, deadline))

    async def _own(
        self,
        check_id: str,
        token: str,
        future: asyncio.Future[Outcome],
        deadline: float,
    ) -> None:
        """Hold the lease while ``future`` evaluates; write the result, then let go.

        Trap: the result is written *before* the lease is released, so a poll that finds no
        lease also finds the result, never a RUNNING check nobody owns.
        """
        renewing = asyncio.create_task(self._renew(check_id, token))
        try:
            outcome: Outcome | None = None
            try:
                outcome = await self.checker.finish(future, deadline)
                status, error = outcome.job_status()
                self.on_outcome(outcome)
            except CompatcheckError as exc:
                status, error = "TERMINAL", str(exc)
            except Exception as exc:  # the check must end even on a bug, never stay RUNNING
                status, error = "TERMINAL", f"internal error: {type(exc).__name__}: {exc}"
                log.warning("%s", mask_secrets(f"check {check_id}: {error}"))
            await self.state.finish(check_id, status, outcome, error)
        except UnavailableError as exc:
            log.warning("%s", f"check {check_id}: result not stored: {exc}")
        finally:
            renewing.cancel()
            await self._release(check_id, token)

    async def _renew(self, check_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.state.config.lease / 3)
            try:
                if not await self.state.renew(check_id, token):
                    log.warning("%s", f"check {check_id}: lease lost to another replica")
                    return
            except UnavailableError as exc:
                log.warning("%s", f"check {check_id}: lease not renewed: {exc}")

    async def _release(self, check_id: str, token: str) -> None:
        try:
            await self.state.release(check_id, token)
        except UnavailableError as exc:  # it expires on its own
            log.warning("%s", f"check {check_id}: lease not released: {exc}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
