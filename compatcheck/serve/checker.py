"""The hook's work, without HTTP: validate a request, load snapshots, judge them, cache the verdict.

Failures are the library's domain errors (:mod:`compatcheck.errors`: not found, refused, busy,
deadline exceeded, unavailable, internal); :mod:`compatcheck.serve.app` alone maps them to HTTP.

The verdict itself comes from :func:`compatcheck.engine.evaluate` (the one path to a verdict);
this module only decides *when* it runs and what it may cost. A check has two phases, each in a
worker thread holding a slot taken *before* any work starts (busy at once when none is free),
both under the one per-check deadline (deadline exceeded when it passes):

1. lookup (a *lookup slot*): read both stored snapshots and the operator's policy and consumer
   files, hash them into the cache key, answer from the cache on a hit;
2. evaluation (a *check slot*, ``--max-concurrent``): parse and validate the snapshots (or scrape
   URL targets), evaluate, cache. An identical evaluation already running is joined, not repeated.

So a burst of cached requests is not stuck behind slow evaluations, and nothing a request makes
the server do (reading, hashing, parsing, validating) happens outside a slot or a deadline.

Traps:
- A Python thread cannot be killed. When a check times out the caller gets its answer (a timeout
  / TERMINAL) at once, but the thread keeps its slot until it really ends, so the slots still bound
  what runs. Every I/O inside has its own deadline (scrapes, store reads) and each phase checks the
  check's deadline before it starts, so it does end.
- The cache key covers everything the verdict depends on, as the exact bytes evaluated: both
  snapshots, the policy and consumer files, the direction and the names shown in the report. The
  evaluation parses those same bytes (never the files again), so a file changed during a check
  cannot make a verdict that its key does not describe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from compatcheck.errors import (
    BusyError,
    CompatcheckError,
    DeadlineExceeded,
    InputError,
    InternalError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from compatcheck.interrupts import pause_point
from compatcheck.masking import mask_secrets
from compatcheck.report import Report
from compatcheck.serve.inputs import InputFiles, Inputs, validate_consumers
from compatcheck.serve.metrics import HookMetrics
from compatcheck.serve.parsed import ParsedSnapshots, give_back_big_buffers
from compatcheck.serve.requests import CheckRequest, Target
from compatcheck.serve.settings import ServeSettings
from compatcheck.snapshot import Snapshot
from compatcheck.store import SnapshotStore

if TYPE_CHECKING:
    from compatcheck.serve.state import SharedState

log = logging.getLogger("compatcheck.serve")
#: Lookups (read, hash, answer from the cache: about a millisecond) allowed per check slot, so
#: that cached verdicts keep flowing while slow evaluations hold every check slot.
LOOKUPS_PER_CHECK = 8
T = TypeVar("T")


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

    def job_status(self) -> tuple[str, str | None]:
        """``(status, error)`` of an asynchronous check that ended with this outcome: SUCCEEDED
        for go, TERMINAL with the reason for no-go and for "cannot tell"."""
        if self.unavailable is not None:
            return "TERMINAL", f"cannot tell: {self.unavailable}"
        if self.go:
            return "SUCCEEDED", None
        return "TERMINAL", self.summary


@dataclass(frozen=True)
class Lookup:
    """A request after its lookup: the bytes read, the inputs, the cache key, a cached answer."""

    request: CheckRequest
    raw: Mapping[str, bytes]
    inputs: Inputs
    #: None: not cacheable (a URL target).
    key: str | None
    cached: Outcome | None
    #: Where each ``image`` side's contract came from (the report's source), by role.
    contracts: Mapping[str, str] = field(default_factory=dict)
    #: sha256 (hex) of ``raw``, by role: the parsed snapshots are cached by it.
    digests: Mapping[str, str] = field(default_factory=dict)


class _Slots:
    """A bounded number of slots, taken at once or not at all."""

    def __init__(self, n: int) -> None:
        self.limit = n
        self._sem = threading.BoundedSemaphore(n)
        self._lock = threading.Lock()
        self.taken = 0

    def take(self) -> Callable[[], None] | None:
        """A release function (idempotent), or None when every slot is taken."""
        if not self._sem.acquire(blocking=False):
            return None
        with self._lock:
            self.taken += 1
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
                self.taken -= 1
            self._sem.release()

        return release


class Checker:
    """Everything a check needs that outlives one request: store, inputs, cache, slots, threads."""

    def __init__(
        self, settings: ServeSettings, metrics: HookMetrics, shared: SharedState | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        #: With ``--state``: the verdict cache replicas share, behind this replica's own LRU.
        self.shared = shared
        self.store = (
            SnapshotStore(settings.snapshot_dir, timeout=min(10.0, settings.check_timeout))
            if settings.snapshot_dir
            else None
        )
        from compatcheck.policy import load_policy

        load_policy(settings.policy)  # a broken policy stops the server starting, in its words
        validate_consumers(settings.consumers)
        from compatcheck.artifact.auth import load_registry_config

        self.registry_config = load_registry_config(settings.registry_config)
        from compatcheck.artifact.cache import ContentCache

        #: Contract manifests and snapshots already fetched and verified, by digest: a lookup
        #: asks the registry only for the list of referrers unless the contract is new to it.
        self.contract_content = ContentCache()
        #: One HTTP client for every contract lookup (thread-safe; its CA bundle loaded once).
        self._registry_http: Any = None
        if settings.allow_images:
            import httpx

            self._registry_http = httpx.Client(timeout=10.0)
        self._inputs = InputFiles(settings)
        #: Parsed snapshots by the digest of their bytes (a side two checks share, once).
        self.parsed = ParsedSnapshots()
        give_back_big_buffers()  # a cold verdict's peak must not stay the hook's size
        self._cache: OrderedDict[str, Outcome] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._lookups = _Slots(LOOKUPS_PER_CHECK * settings.max_concurrent)
        self._checks = _Slots(settings.max_concurrent)
        #: Evaluations running, by cache key (event-loop side only: no lock).
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}
        # One thread per slot: a task is never queued behind another.
        self._pool = ThreadPoolExecutor(
            max_workers=(LOOKUPS_PER_CHECK + 1) * settings.max_concurrent,
            thread_name_prefix="compatcheck-check",
        )

    # -- the cache ------------------------------------------------------------------------

    def _cache_get(self, key: str) -> Outcome | None:
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _cache_hit(self, outcome: Outcome) -> Outcome:
        """``outcome``, found in a cache, as the answer: marked cached and counted as a hit."""
        self.metrics.cache_hits.inc()
        return replace(outcome, cached=True)

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
        """Evaluations holding a check slot (threads still running past their deadline too)."""
        return self._checks.taken

    # -- phase 1: lookup (worker thread, lookup slot) ------------------------------------------

    def _read(self, req: CheckRequest, version: str, deadline: float) -> bytes:
        assert self.store is not None
        try:
            return self.store.read_bytes(req.service, version, deadline=deadline)
        except NotFoundError:
            raise
        except UnavailableError as exc:
            if time.monotonic() >= deadline:
                # The store gave up because the check's deadline passed: one answer for that,
                # whichever thread notices first (this one or the request's wait).
                raise _timed_out(self.settings.check_timeout) from None
            raise UnavailableError(f"snapshot store unavailable: {exc}") from None
        except InputError as exc:  # the caller's names were valid: the stored file is bad
            raise InternalError(f"stored snapshot is unusable: {exc}") from None

    def _contract(self, image: str, deadline: float) -> tuple[bytes, str]:
        """The newest contract attached to ``image`` (bytes verified against their digest)."""
        from compatcheck.artifact.contract import ContractMissing, resolve_contract
        from compatcheck.artifact.oci import ArtifactUnavailable

        budget = min(10.0, max(0.001, deadline - time.monotonic()))
        try:
            found = resolve_contract(
                f"oci:{image}",
                registry_config=self.registry_config,
                timeout=budget,
                cache=self.contract_content,
                client=self._registry_http,
            )
        except ContractMissing as exc:
            raise NotFoundError(f"{image}: {exc}") from None
        except ArtifactUnavailable as exc:
            raise UnavailableError(f"{image}: contract unavailable: {exc}") from None
        return found.snapshot, found.description

    def lookup(self, req: CheckRequest, deadline: float) -> Lookup:
        """Read and hash everything the verdict depends on; answer from the cache on a hit."""
        raw: dict[str, bytes] = {}
        contracts: dict[str, str] = {}
        for role, target in (("old", req.old), ("new", req.new)):
            if target.image is not None:
                _check_deadline(deadline, self.settings.check_timeout)
                raw[role], contracts[role] = self._contract(target.image, deadline)
                continue
            if target.version is None:
                continue
            if self.store is None:
                raise UsageError("this server has no snapshot store; give `url` targets")
            _check_deadline(deadline, self.settings.check_timeout)
            raw[role] = self._read(req, target.version, deadline)
        inputs = self._inputs.current()
        digests = {role: hashlib.sha256(data).hexdigest() for role, data in raw.items()}
        if req.old.url is not None or req.new.url is not None:
            return Lookup(req, raw, inputs, None, None, contracts, digests)
        parts = [
            req.service,
            req.old.version or contracts.get("old"),
            digests["old"],
            req.new.version or contracts.get("new"),
            digests["new"],
            req.direction,
            self.settings.fail_on,
            inputs.digest,
        ]
        key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        cached = self._cache_get(key)
        if cached is None and self.shared is not None:
            cached = self.shared.get_verdict(key)  # UnavailableError when Redis is down
            if cached is not None:
                self._cache_put(key, cached)
        if cached is not None:
            cached = self._cache_hit(cached)
        return Lookup(req, raw, inputs, key, cached, contracts, digests)

    # -- phase 2: evaluation (worker thread, check slot) -----------------------------------

    def _scrape(self, target: Target, deadline: float) -> Snapshot:
        from compatcheck.sources import load_source

        assert target.url is not None
        _check_deadline(deadline, self.settings.check_timeout)
        budget = min(self.settings.scrape_timeout, max(0.001, deadline - time.monotonic()))
        return load_source(target.url, label=mask_secrets(target.url), timeout=budget)

    @staticmethod
    def _parsed_key(lookup: Lookup, role: str) -> tuple[str, str] | None:
        """What a stored side is kept by: its bytes' digest and how it is read (the service and
        version name the file in errors and label an unlabelled snapshot). None: not stored."""
        req = lookup.request
        if role in lookup.contracts:
            return lookup.digests[role], f"contract {lookup.contracts[role]}"
        version = req.old.version if role == "old" else req.new.version
        if version is None:
            return None
        return lookup.digests[role], f"store {req.service} {version}"

    def _stored(self, lookup: Lookup, role: str) -> Snapshot | None:
        req = lookup.request
        key = self._parsed_key(lookup, role)
        if key is None:
            return None
        if role in lookup.contracts:
            return self.parsed.get(key, lambda: self._contract_snapshot(lookup, role))
        version = req.old.version if role == "old" else req.new.version
        assert version is not None
        store = self.store
        assert store is not None

        def parse() -> Snapshot:
            try:
                return store.parse(req.service, version, lookup.raw[role])
            except InputError as exc:
                raise InternalError(f"stored snapshot is unusable: {exc}") from None

        return self.parsed.get(key, parse)

    def _contract_snapshot(self, lookup: Lookup, role: str) -> Snapshot:
        from compatcheck.artifact.contract import parse_contract_snapshot

        try:
            snap: Snapshot = parse_contract_snapshot(lookup.raw[role], lookup.contracts[role])
        except InputError as exc:
            raise InternalError(f"attached contract is unusable: {exc}") from None
        return snap

    def evaluate(self, lookup: Lookup, deadline: float) -> Outcome:
        """Parse (exactly the bytes looked up), evaluate, cache.

        Once the snapshots are parsed (the costly part) the verdict is finished and cached even
        if the caller has had its timeout meanwhile: the caller's retry is then answered at once.
        """
        from compatcheck.engine import EvaluateOptions, evaluate

        req = lookup.request
        _check_deadline(deadline, self.settings.check_timeout)
        pause_point("serve-evaluate")  # tests: a slow evaluation, to stop a replica mid-check
        started = time.perf_counter()
        keys = (self._parsed_key(lookup, role) for role in ("old", "new"))
        self.parsed.retain({key for key in keys if key is not None})
        try:
            old = self._stored(lookup, "old") or self._scrape(req.old, deadline)
            new = self._stored(lookup, "new") or self._scrape(req.new, deadline)
            options = EvaluateOptions(
                direction=req.direction,
                policy=lookup.inputs.policy,
                consumers=lookup.inputs.consumers or (),
                fail_on=self.settings.fail_on,
            )
            try:
                report = evaluate(old, new, options)
            except CompatcheckError as exc:
                raise InternalError(f"check failed: {exc}") from None
            outcome = outcome_of(report)
        finally:
            self.metrics.check_duration.observe(time.perf_counter() - started)
        if lookup.key is not None and outcome.unavailable is None:
            self._cache_put(lookup.key, outcome)
            if self.shared is not None:
                try:
                    self.shared.put_verdict(lookup.key, outcome)
                except UnavailableError as exc:  # the verdict stands; only sharing it failed
                    log.warning("%s", f"verdict not shared: {exc}")
        return outcome

    # -- the asynchronous side (event loop) -------------------------------------------------

    def _start(
        self, slots: _Slots, what: str, fn: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """Take a slot now (busy when none is free) and run ``fn`` in a worker thread; the slot is
        given back when the thread ends, not when a caller stops waiting."""
        release = slots.take()
        if release is None:
            raise BusyError(f"too many {what} running (limit {slots.limit})")
        counts = slots is self._checks
        if counts:
            self.metrics.in_progress.inc()

        def done(_: Future[T]) -> None:
            if counts:
                self.metrics.in_progress.dec()
            release()

        future = self._pool.submit(fn, *args)
        future.add_done_callback(done)
        return asyncio.wrap_future(future)

    async def _wait(self, future: asyncio.Future[T], deadline: float) -> T:
        """``future``'s result, or :class:`DeadlineExceeded` when the check's deadline passes
        first. Shielded: a caller giving up does not cancel work that other callers (or the
        cache) still want."""
        try:
            return await asyncio.wait_for(
                asyncio.shield(future), timeout=max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            self.metrics.timeouts.inc()
            raise _timed_out(self.settings.check_timeout) from None

    async def start(
        self, req: CheckRequest, deadline: float
    ) -> tuple[Outcome | None, asyncio.Future[Outcome]]:
        """Look ``req`` up (waiting for it) and start its evaluation unless cached.

        Returns the cached outcome, or ``None`` and the evaluation to await with :meth:`finish`.
        Spinnaker's stage answers "accepted" between the two; the other endpoints wait. Both
        phases share ``deadline`` (``time.monotonic()``).
        """
        lookup = await self.look(req, deadline)
        if lookup.cached is not None:
            return lookup.cached, _done(lookup.cached)
        return None, self.run(lookup, deadline)

    async def look(self, req: CheckRequest, deadline: float) -> Lookup:
        """Phase 1 (a lookup slot, waited for): everything read and hashed, the cached answer."""
        return await self._wait(
            self._start(self._lookups, "lookups", self.lookup, req, deadline), deadline
        )

    def run(self, lookup: Lookup, deadline: float) -> asyncio.Future[Outcome]:
        """Phase 2 started (a check slot taken now, busy when none is free): the evaluation of
        ``lookup``, or the identical one already running here, joined."""
        if lookup.key is not None and lookup.key in self._inflight:
            self.metrics.shared.inc()
            return self._inflight[lookup.key]
        if lookup.key is not None and (cached := self._cache_get(lookup.key)) is not None:
            # The identical evaluation ended between this lookup (a miss) and now: it cached its
            # verdict before leaving ``_inflight``, so the verdict is here, not worth a second run.
            return _done(self._cache_hit(cached))
        future = self._start(self._checks, "checks", self.evaluate, lookup, deadline)
        if lookup.key is not None:
            key = lookup.key
            self._inflight[key] = future
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        return future

    async def finish(self, future: asyncio.Future[Outcome], deadline: float) -> Outcome:
        return await self._wait(future, deadline)

    async def check(self, req: CheckRequest) -> Outcome:
        """The whole path: cached verdict, or a judged report (busy, or deadline exceeded)."""
        deadline = time.monotonic() + self.settings.check_timeout
        cached, future = await self.start(req, deadline)
        if cached is not None:
            return cached
        return await self.finish(future, deadline)

    async def verify(self, args: Any) -> Outcome:
        """A post-rollback verification (``verify`` options ``args``) on a check slot, within
        the check deadline; judged with the consumers the hook keeps loaded."""
        deadline = time.monotonic() + self.settings.check_timeout
        return await self._wait(self._start(self._checks, "checks", self._verify, args), deadline)

    def _verify(self, args: Any) -> Outcome:
        from compatcheck.verify.cli import verify_report

        inputs = self._inputs.current()  # the operator's policy and consumers, parsed once
        report = verify_report(args, inputs.consumers, policy=inputs.policy, store=self.store)
        return outcome_of(report)

    def close(self) -> None:
        # Trap: waiting here would hang shutdown behind a stuck thread; running checks were
        # already given their deadline by the caller.
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._registry_http is not None:
            self._registry_http.close()


def _timed_out(seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(f"check timed out after {seconds:g}s")


def _check_deadline(deadline: float, seconds: float) -> None:
    """Stop a thread whose caller already had its timeout: free the slot for work someone awaits."""
    if time.monotonic() > deadline:
        raise _timed_out(seconds)


def _done(outcome: Outcome) -> asyncio.Future[Outcome]:
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    future.set_result(outcome)
    return future


def outcome_of(report: Report) -> Outcome:
    """The bytes and one-line summary every endpoint answers with."""
    data = report.to_json()
    cannot_tell = report.cannot_tell()
    unavailable = cannot_tell[0].finding.message if cannot_tell else None
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
    # What the JSON reporter guarantees for `--format json`, the hook guarantees for its answers.
    text = mask_secrets(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    unavailable = None if unavailable is None else mask_secrets(unavailable)
    return Outcome(report.go, report.verdict, text.encode(), unavailable, mask_secrets(summary))
