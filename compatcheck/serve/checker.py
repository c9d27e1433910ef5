"""The hook's work, without HTTP: validate a request, load snapshots, judge them, cache the verdict.

The verdict itself comes from :func:`compatcheck.engine.evaluate` (the one path to a verdict);
this module only decides *when* it runs: a cached verdict is answered at once, a new one runs in a
worker thread with a slot from a bounded pool and a deadline.

Traps:
- A Python thread cannot be killed. When a check times out the caller gets its answer (503 /
  TERMINAL) at once, but the thread keeps its slot until it really ends, so the pool still bounds
  what runs. Every I/O inside has its own timeout (scrapes, store reads), so it does end.
- The cache key covers everything the verdict depends on: both snapshots' bytes, the policy files'
  and the consumer files' content, the direction and the names shown in the report. Policy and
  consumer files are re-hashed on every check (stat-cached), so editing them takes effect without
  a restart and never serves a stale verdict.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compatcheck.errors import CompatcheckError, InputError, UnavailableError
from compatcheck.masking import mask_secrets
from compatcheck.report import UNAVAILABLE_KINDS, Report
from compatcheck.serve.metrics import HookMetrics
from compatcheck.serve.settings import ServeSettings
from compatcheck.snapshot import Snapshot
from compatcheck.store import NotFound, SnapshotStore, validate_name

_REQUEST_KEYS = ("service", "old", "new", "direction")
_TARGET_KEYS = ("version", "url")


class HookError(Exception):
    """A request the hook answers with ``status`` and the one-line ``message``."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Target:
    """One side of a check: a stored version, or (when allowed) a metrics URL to scrape."""

    version: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class CheckRequest:
    service: str
    old: Target
    new: Target
    direction: str = "rollback"


@dataclass(frozen=True)
class Outcome:
    """A judged check: the report as JSON bytes (what every endpoint embeds) and its verdict."""

    go: bool
    verdict: str
    report_json: bytes
    #: Set when something could not be evaluated: the hook answers "cannot tell yet".
    unavailable: str | None
    #: One line naming the first blocking findings, for Flagger's 412 and logs.
    summary: str
    cached: bool = False


def _target(value: object, role: str, allow_url: bool) -> Target:
    if not isinstance(value, dict):
        raise HookError(400, f'`{role}` must be an object like {{"version": "v1"}}')
    unknown = sorted(set(value) - set(_TARGET_KEYS))
    if unknown:
        raise HookError(400, f"unknown key `{unknown[0]}` in `{role}` (expected version or url)")
    if ("version" in value) == ("url" in value):
        raise HookError(400, f"`{role}` needs exactly one of `version` or `url`")
    if "version" in value:
        try:
            return Target(version=validate_name(value["version"], f"{role} version"))
        except InputError as exc:
            raise HookError(400, str(exc)) from None
    url = value["url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise HookError(400, f"`{role}.url` must be an http(s) URL")
    if not allow_url:
        raise HookError(
            403,
            "url targets are disabled on this server (the operator can enable --allow-url-targets)",
        )
    return Target(url=url)


def parse_check_request(body: object, *, allow_url: bool) -> CheckRequest:
    """Validate a ``/v1/check`` body; unknown keys are errors (a typo must not pass silently)."""
    if not isinstance(body, dict):
        raise HookError(400, "request body must be a JSON object")
    unknown = sorted(set(body) - set(_REQUEST_KEYS))
    if unknown:
        raise HookError(
            400, f"unknown key `{unknown[0]}` in request (expected: {', '.join(_REQUEST_KEYS)})"
        )
    for key in ("service", "old", "new"):
        if key not in body:
            raise HookError(400, f"request needs `{key}`")
    try:
        service = validate_name(body["service"], "service")
    except InputError as exc:
        raise HookError(400, str(exc)) from None
    direction = body.get("direction", "rollback")
    if direction not in ("rollback", "deploy"):
        raise HookError(400, "`direction` must be rollback or deploy")
    return CheckRequest(
        service,
        _target(body["old"], "old", allow_url),
        _target(body["new"], "new", allow_url),
        direction,
    )


def parse_flagger_request(body: object) -> CheckRequest:
    """Flagger's webhook payload: ``name``, ``namespace``, ``phase``, ``metadata`` (strings).

    The service is ``metadata.service`` or else the canary's ``name``; ``metadata.old`` and
    ``metadata.new`` name the stored versions. Other keys Flagger sends (``checksum``, ``type``)
    are ignored: Flagger's payload grows between releases.
    """
    if not isinstance(body, dict):
        raise HookError(400, "request body must be a JSON object")
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise HookError(400, "flagger payload needs `metadata` with `old` and `new` versions")
    service = meta.get("service") or body.get("name")
    if not service:
        raise HookError(400, "flagger payload needs `name` (or `metadata.service`)")
    for key in ("old", "new"):
        if not meta.get(key):
            raise HookError(400, f"flagger payload needs `metadata.{key}` (a stored version)")
    check: dict[str, Any] = {
        "service": service,
        "old": {"version": meta["old"]},
        "new": {"version": meta["new"]},
    }
    if "direction" in meta:
        check["direction"] = meta["direction"]
    return parse_check_request(check, allow_url=False)


class _FileDigests:
    """sha256 of files' content, re-read only when size or mtime change (cheap per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[tuple[int, int], str]] = {}

    def _file(self, path: Path) -> str:
        st = path.stat()
        sig = (st.st_size, st.st_mtime_ns)
        key = str(path)
        with self._lock:
            hit = self._known.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with self._lock:
            self._known[key] = (sig, digest)
        return digest

    def of(self, paths: tuple[str, ...]) -> str:
        """One digest over every file named or found (recursively) under the given paths."""
        h = hashlib.sha256()
        for raw in paths:
            p = Path(raw)
            files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
            for f in files:
                try:
                    d = self._file(f)
                except OSError as exc:
                    raise UnavailableError(f"{f}: cannot read: {exc.strerror}") from None
                h.update(f"{f}\0{d}\n".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Prepared:
    """A request with its stored snapshots loaded and its cache key (None: not cacheable)."""

    request: CheckRequest
    stored: Mapping[str, Snapshot]
    key: str | None
    cached: Outcome | None


class Checker:
    """Everything a check needs that outlives one request: store, policy, cache, slots, threads."""

    def __init__(self, settings: ServeSettings, metrics: HookMetrics) -> None:
        from compatcheck.policy import load_policy

        self.settings = settings
        self.metrics = metrics
        self.store = (
            SnapshotStore(settings.snapshot_dir, timeout=min(10.0, settings.check_timeout))
            if settings.snapshot_dir
            else None
        )
        self._digests = _FileDigests()
        self._policy_lock = threading.Lock()
        self._policy = load_policy(settings.policy)  # a broken policy stops the server starting
        self._policy_digest = self._digests.of(settings.policy)
        self._cache: OrderedDict[str, Outcome] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.max_concurrent)
        self._running = 0
        self._running_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.max_concurrent, thread_name_prefix="compatcheck-check"
        )

    # -- the cache ------------------------------------------------------------------------

    def _cache_get(self, key: str) -> Outcome | None:
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _cache_put(self, key: str, outcome: Outcome) -> None:
        if self.settings.cache_size == 0:
            return
        with self._cache_lock:
            self._cache[key] = outcome
            self._cache.move_to_end(key)
            while len(self._cache) > self.settings.cache_size:
                self._cache.popitem(last=False)

    @property
    def cache_len(self) -> int:
        with self._cache_lock:
            return len(self._cache)

    @property
    def running(self) -> int:
        with self._running_lock:
            return self._running

    # -- preparing (worker thread, no slot: reading two small files is cheap) ---------------

    def _inputs_digest(self) -> str:
        """Digest of policy + consumers; reloads the policy when its files changed."""
        from compatcheck.policy import load_policy

        policy_digest = self._digests.of(self.settings.policy)
        with self._policy_lock:
            if policy_digest != self._policy_digest:
                try:
                    self._policy = load_policy(self.settings.policy)
                except CompatcheckError as exc:
                    raise HookError(500, f"server policy is broken: {exc}") from None
                self._policy_digest = policy_digest
        consumers_digest = self._digests.of(self.settings.consumers)
        return hashlib.sha256(f"{policy_digest}:{consumers_digest}".encode()).hexdigest()

    def _read(self, req: CheckRequest, role: str, version: str) -> bytes:
        assert self.store is not None
        try:
            return self.store.read_bytes(req.service, version)
        except NotFound as exc:
            raise HookError(404, str(exc)) from None
        except UnavailableError as exc:
            raise HookError(503, f"snapshot store unavailable: {exc}") from None
        except InputError as exc:  # the caller's names were valid: the stored file is bad
            raise HookError(500, f"stored snapshot is unusable: {exc}") from None

    def prepare_sync(self, req: CheckRequest) -> Prepared:
        """Read the stored snapshots and look the verdict up; parse them only on a cache miss.

        Parsing and schema-validating two snapshots costs more than everything else a cached
        answer does, so a hit never pays for it.
        """
        raw: dict[str, bytes] = {}
        for role, target in (("old", req.old), ("new", req.new)):
            if target.version is None:
                continue
            if self.store is None:
                raise HookError(400, "this server has no snapshot store; give `url` targets")
            raw[role] = self._read(req, role, target.version)
        try:
            inputs = self._inputs_digest()
        except UnavailableError as exc:
            raise HookError(500, f"server configuration unreadable: {exc}") from None
        key = None
        if req.old.url is None and req.new.url is None:
            parts = [
                req.service,
                req.old.version,
                hashlib.sha256(raw["old"]).hexdigest(),
                req.new.version,
                hashlib.sha256(raw["new"]).hexdigest(),
                req.direction,
                self.settings.fail_on,
                inputs,
            ]
            key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
            cached = self._cache_get(key)
            if cached is not None:
                self.metrics.cache_hits.inc()
                return Prepared(req, {}, key, replace(cached, cached=True))
        stored: dict[str, Snapshot] = {}
        for role, data in raw.items():
            version = req.old.version if role == "old" else req.new.version
            assert self.store is not None and version is not None
            try:
                stored[role] = self.store.parse(req.service, version, data)
            except InputError as exc:
                raise HookError(500, f"stored snapshot is unusable: {exc}") from None
        return Prepared(req, stored, key, None)

    async def prepare(self, req: CheckRequest) -> Prepared:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self.prepare_sync, req)

    # -- judging (worker thread, holds a slot) ------------------------------------------------

    def acquire(self) -> None:
        """Take a check slot now or answer 429: Argo, Flagger and Spinnaker all retry 429."""
        if not self._slots.acquire(blocking=False):
            raise HookError(
                429,
                f"too many checks running (limit {self.settings.max_concurrent})",
                retry_after=1,
            )
        with self._running_lock:
            self._running += 1
        self.metrics.in_progress.inc()

    def _release(self) -> None:
        with self._running_lock:
            self._running -= 1
        self.metrics.in_progress.dec()
        self._slots.release()

    def _scrape(self, target: Target, role: str) -> Snapshot:
        from compatcheck.sources import snapshot_from_metrics_url

        assert target.url is not None
        # The scrape's own budget bounds how long the thread (and its slot) lives; the check's
        # deadline, enforced by the caller, bounds how long the client waits.
        return snapshot_from_metrics_url(
            target.url, label=mask_secrets(target.url), timeout=self.settings.scrape_timeout
        )

    def _judge(self, prep: Prepared) -> Outcome:
        from compatcheck.engine import EvaluateOptions, evaluate

        started = time.perf_counter()
        try:
            req = prep.request
            old = prep.stored.get("old") or self._scrape(req.old, "old")
            new = prep.stored.get("new") or self._scrape(req.new, "new")
            with self._policy_lock:
                policy = self._policy
            options = EvaluateOptions(
                direction=req.direction,
                policy=policy,
                consumers=self.settings.consumers,
                fail_on=self.settings.fail_on,
            )
            try:
                report = evaluate(old, new, options)
            except CompatcheckError as exc:
                raise HookError(500, f"check failed: {exc}") from None
            outcome = outcome_of(report)
            if prep.key is not None and outcome.unavailable is None:
                self._cache_put(prep.key, outcome)
            return outcome
        finally:
            self.metrics.check_duration.observe(time.perf_counter() - started)
            self._release()

    async def run(self, prep: Prepared) -> Outcome:
        """Judge ``prep`` (a slot must be held) within the per-check deadline."""
        future = self._pool.submit(self._judge, prep)
        # Trap: a future cancelled before a worker picked it up never runs ``_judge``, whose
        # ``finally`` is what gives the slot back.
        future.add_done_callback(lambda f: self._release() if f.cancelled() else None)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=self.settings.check_timeout
            )
        except TimeoutError:
            self.metrics.timeouts.inc()
            raise HookError(
                503, f"check timed out after {self.settings.check_timeout:g}s", retry_after=5
            ) from None

    async def check(self, req: CheckRequest) -> Outcome:
        """The whole path: cached verdict, or a slot (429) and a judged report (503 on timeout)."""
        prep = await self.prepare(req)
        if prep.cached is not None:
            return prep.cached
        self.acquire()
        return await self.run(prep)

    def close(self) -> None:
        # Trap: waiting here would hang shutdown behind a stuck thread; running checks were
        # already given their deadline by the caller.
        self._pool.shutdown(wait=False, cancel_futures=True)


def outcome_of(report: Report) -> Outcome:
    """The bytes and one-line summary every endpoint answers with."""
    data = report.to_json()
    unavailable = None
    if report.unavailable:
        first = next(
            rf
            for rf in report.findings
            if rf.finding.kind in UNAVAILABLE_KINDS and not rf.waived and rf.severity != "off"
        )
        unavailable = first.finding.message
    blocking = [rf for rf in report.findings if rf.counts_against(report.fail_on)]
    if report.go:
        summary = f"go: rollback {report.new.label} → {report.old.label} is safe"
        if report.direction == "deploy":
            summary = f"go: deploy {report.old.label} → {report.new.label} is safe"
    else:
        shown = ", ".join(f"{rf.finding.kind} `{rf.finding.subject}`" for rf in blocking[:3])
        more = f" (+{len(blocking) - 3} more)" if len(blocking) > 3 else ""
        arrow = (
            f"{report.new.label} → {report.old.label}"
            if report.direction == "rollback"
            else f"{report.old.label} → {report.new.label}"
        )
        summary = f"no-go: {report.direction} {arrow}: {shown}{more}"
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Outcome(report.go, report.verdict, body, unavailable, summary)
