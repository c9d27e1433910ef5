"""One target's capture, from start to recorded snapshot.

A ``command`` or ``url`` target goes through :class:`TargetCapture`'s lifecycle: (for a command
whose argv or env takes ``{database_url}``: a scratch database migrated to the release's own head)
→ launch → :meth:`~TargetCapture.wait_ready` (recording time-to-ready) →
:meth:`~TargetCapture.warmup` → scrape ``/metrics`` N times and merge → probe readiness (and
health) a second time, to spot values that change on every call → Alembic head and build info.
``snapshot``, ``stored`` and ``exposition`` targets are read, not run (:mod:`.read`). Every stage
records its time and turns failure into a ``check/unavailable`` finding, never an exception.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from compatcheck.capture.merge import merge_schemas
from compatcheck.capture.probes import (
    expectation,
    health_record,
    never_ready_record,
    readiness_record,
    verifying_tls,
)
from compatcheck.capture.read import read_target
from compatcheck.checks.availability import UNAVAILABLE
from compatcheck.checks.build import read_build_info
from compatcheck.config import (
    CommandTarget,
    Config,
    ContractTarget,
    ExpositionTarget,
    ReadinessConfig,
    SnapshotTarget,
    StoredTarget,
    Target,
    UrlTarget,
)
from compatcheck.errors import ExpositionError, UnavailableError
from compatcheck.masking import mask_secrets
from compatcheck.model import Finding, MetricsSchema
from compatcheck.progress import HEARTBEAT_S, Progress, heartbeat
from compatcheck.scrape import ProbeResult, probe, scrape_metrics
from compatcheck.snapshot import Snapshot, capture_time
from compatcheck.targets import RunningTarget, Workspace

if TYPE_CHECKING:
    # Trap: importing anything under compatcheck.migrations imports the whole package
    # (SQLAlchemy, Alembic: ~0.3 s); a check without migrations must not pay for it.
    from compatcheck.migrations.section import Exchange


@dataclass(frozen=True)
class Answer:
    """One warm-up request as sent and answered, plus what the target logged meanwhile."""

    method: str
    path: str
    result: ProbeResult
    #: The error line the target logged while serving it (only when asked for).
    log: str = ""

    def exchange(self) -> Exchange:
        # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note above).
        from compatcheck.migrations.section import Exchange

        return Exchange(self.method, self.path, self.result.status, self.result.error, self.log)


@dataclass(frozen=True)
class ReadyWait:
    """How :meth:`TargetCapture.wait_ready` ended.

    ``probe``: the last readiness probe that got an HTTP answer (else the first one; None if none
    was sent); ``ready``: it answered 2xx; ``reason``: why the target is not usable (None when it
    is ready, or up with no readiness endpoint: a definitive 404).
    """

    probe: ProbeResult | None
    ready: bool
    reason: str | None


@dataclass(frozen=True)
class Outcome:
    """One target captured: its snapshot, the findings only capture can make, stage timings."""

    snapshot: Snapshot
    findings: tuple[Finding, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def problems(self) -> list[Finding]:
        """The parts that could not be captured (``check/unavailable``)."""
        return [f for f in self.findings if f.kind == UNAVAILABLE]


#: A url target whose port refuses connections for this long is not starting: fail then.
REFUSED_S = 2.0


def answer_text(result: ProbeResult | None) -> str:
    """``HTTP 503 {"db_connected": false}`` or ``connection refused``: a probe's last answer."""
    if result is None:
        return "no answer yet"
    if result.status is None:
        return result.error or "no answer"
    body = " ".join(result.text.split())
    if len(body) > 120:
        body = body[:119] + "…"
    return f"HTTP {result.status}" + (f" {body}" if body else "")


def _refused(result: ProbeResult) -> bool:
    return result.status is None and "refused" in (result.error or "").lower()


def base_of(url: str) -> str:
    """``scheme://host:port`` of a URL: where a release's endpoints are probed."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")).rstrip("/")


def warmup_summary(answers: list[Answer]) -> str:
    """``warm-up: 3 requests, 1 not 2xx``: the progress line after a warm-up."""
    failed = sum(1 for a in answers if not a.result.ok)
    return f"warm-up: {len(answers)} requests" + (f", {failed} not 2xx" if failed else "")


@contextlib.contextmanager
def _tls_probes(rc: ReadinessConfig) -> Iterator[httpx.Client | None]:
    """A client for the probes a manifest declares ``scheme: HTTPS``; None when there are none.

    Trap: the kubelet does not verify an HTTPS probe's certificate (pods serve self-signed or
    cluster-internal ones), so neither does this client; verifying would call a ready release
    unready. Everything else (warm-up, scrapes) keeps the verifying client.
    """
    if "https" not in rc.schemes.values():
        yield None
        return
    with httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0), verify=False) as client:
        yield client


class TargetCapture:
    """Captures one target. Every stage records its time and turns failure into a finding.

    ``db_done`` is set once this target's scratch database is migrated (or will not be): the
    migrations inspection and the code-only trial wait for it (one Alembic run at a time).
    """

    def __init__(
        self,
        config: Config,
        target: Target,
        ws: Workspace | None,
        progress: Progress,
        db_done: threading.Event,
        *,
        readiness: bool = True,
        who: str | None = None,
    ) -> None:
        self.config = config
        self.target = target
        #: Wait for readiness and record the readiness and health probes; False: the metrics
        #: only, read as they are (see :func:`compatcheck.capture.url.snapshot_from_url`).
        self.readiness = readiness
        self.ws = ws
        self.progress = progress
        self.db_done = db_done
        #: How progress names the target: ``old v1`` in a check; a bare URL has no role.
        self.who = who or f"{target.role} {target.label}"
        self.timings: dict[str, float] = {}
        self.findings: list[Finding] = []
        self.running: RunningTarget | None = None
        self.db_url: str | None = None
        #: The warm-up as sent and answered; None until the target was up to receive it.
        self.answers: list[Answer] | None = None
        #: Called with the scratch SQLite URL once migrated, before the release starts on it.
        self.on_migrated: Callable[[str], None] | None = None
        #: The client for probes the manifest declares HTTPS (see :func:`_tls_probes`).
        self.tls_probes: httpx.Client | None = None
        #: The Alembic head the release's database records, once read (:meth:`_read_head`).
        self._recorded: tuple[str | None] | None = None

    def say(self, message: str) -> None:
        self.progress.step(self.who, message)

    def _time(self, stage: str, start: float) -> float:
        took = time.monotonic() - start
        self.timings[f"{self.target.role}.{stage}"] = took
        return took

    def _pause(self, seconds: float) -> bool:
        """Wait between two polls of the release; True when the run began closing meanwhile."""
        if self.ws is None:
            time.sleep(seconds)
            return False
        return self.ws.pause(seconds)

    def _unavailable(self, subject: str, reason: str, **evidence: Any) -> None:
        ev: dict[str, Any] = {"target": self.target.role, "label": self.target.label}
        ev["reason"] = reason
        message = f"{self.target.role.upper()} `{self.target.label}`: {reason}"
        if self.running is not None:
            ev["exit_code"] = self.running.exit_code()
            ev["log_tail"] = self.running.log_tail()
            if ev["exit_code"] is not None:
                # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
                from compatcheck.migrations.plans import error_line

                # The person reads this line first (and often only): it must say why it died.
                logged = error_line(ev["log_tail"])
                if logged:
                    message += f" (log: `{logged}`)"
        ev.update(evidence)
        self.findings.append(Finding(UNAVAILABLE, subject, f"{message}.", ev))
        self.say(f"unavailable: {reason}")

    def _probe(
        self, client: httpx.Client, base_url: str, role: str, timeout: float = 5.0
    ) -> ProbeResult:
        """Send the ``readiness`` or ``liveness`` probe as the manifest (or config) defines it:
        its scheme and headers included, so what is checked is what the kubelet sends."""
        rc = self.config.readiness
        https = rc.schemes.get(role) == "https" and self.tls_probes is not None
        return probe(
            rc.probe_url(base_url, role),
            client=self.tls_probes if https else client,
            timeout=timeout,
            headers=rc.headers.get(role),
        )

    def run(self) -> Outcome:
        """Capture the target; ``db_done`` is set on every path."""
        t = self.target
        if not isinstance(t, CommandTarget | UrlTarget):
            self.db_done.set()
            return Outcome(read_target(self.config, t, self.say))
        start = time.monotonic()
        base = Snapshot(label=self.target.label, source=self._source(), captured_at=capture_time())
        try:
            snap = self._live(t, base)
        finally:
            self.db_done.set()
        self._time("total", start)
        return Outcome(snap, tuple(self.findings), self.timings)

    def _source(self) -> str:
        """What the snapshot's ``source`` says the release was captured from (masked)."""
        match self.target:
            case CommandTarget(command=command, cwd=cwd):
                return f"command: {mask_secrets(' '.join(command))}" + (
                    f" (cwd {cwd})" if cwd else ""
                )
            case UrlTarget(url=url):
                return mask_secrets(url)
            case StoredTarget(stored=stored):
                return f"stored: {self.config.service}/{stored}"
            case SnapshotTarget(snapshot=path) | ExpositionTarget(exposition=path):
                return str(path)
            case ContractTarget(contract=contract):
                return contract

    @contextlib.contextmanager
    def session(self) -> Iterator[httpx.Client]:
        """The HTTP client for one run of the target (and, meanwhile, :attr:`tls_probes`)."""
        with (
            httpx.Client(
                timeout=httpx.Timeout(10.0, connect=2.0), verify=verifying_tls()
            ) as client,
            _tls_probes(self.config.readiness) as self.tls_probes,
        ):
            yield client

    # -- a live target (command or url) ---------------------------------------------------

    def _live(self, t: CommandTarget | UrlTarget, snap: Snapshot) -> Snapshot:
        alembic_head: str | None = None
        if isinstance(t, CommandTarget):
            assert self.ws is not None
            database_url = ""
            if t.uses_database:
                t0 = time.monotonic()
                try:
                    alembic_head = self._database()
                except UnavailableError as exc:
                    self._unavailable(f"{t.role}:database", str(exc))
                    return snap
                finally:
                    self.db_done.set()
                database_url = self.db_url or ""
                self._time("migrate", t0)
            self.db_done.set()
            try:
                self.running = self.ws.launch(t, database_url=database_url)
            except UnavailableError as exc:
                self._unavailable(t.role, str(exc))
                return snap
            shown = " ".join(
                ["python" if a == sys.executable else mask_secrets(a) for a in self.running.argv]
            )
            self.say(f"started `{shown}` (pid {self.running.process.pid})")
            # The header shows the command as it ran (placeholders expanded), not the template.
            snap = replace(snap, source=f"command: {shown}" + (f" (cwd {t.cwd})" if t.cwd else ""))
            base_url = self.running.base_url
            launched = self.running.started
        else:
            self.db_done.set()
            base_url = base_of(t.url)
            launched = time.monotonic()
            self.say(f"using {mask_secrets(base_url)}")
        with self.session() as client:
            if not self.readiness:
                t0 = time.monotonic()
                metrics = self._scrape(client, base_url)
                self._time("scrape", t0)
                return self._identify(replace(snap, metrics=metrics), alembic_head)
            return self._exercise(snap, client, base_url, launched, alembic_head)

    def _database(self) -> str | None:
        assert self.ws is not None
        mig = self.config.migrations
        db = self.ws.scratch_database(self.target.role, mig.database if mig else "sqlite")
        self.db_url = db.url
        # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
        from compatcheck.migrations.sources.alembic.project import release_project

        location = release_project(self.config, self.target)
        if location is None:
            return None
        if self.ws.closing():  # interrupted meanwhile: no migration nobody will look at
            raise UnavailableError("the run is shutting down")
        self.say(f"migrating scratch database ({db.kind}) to the release's head")
        # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
        from compatcheck.migrations.releases import migrate_release

        framework = mig.framework if mig else "auto"
        with heartbeat(self.say, "waiting for the scratch database's migration to the head"):
            head = migrate_release(location, db.url, framework)
        if self.on_migrated is not None and db.kind == "sqlite":
            self.on_migrated(db.url)
        return head

    def _exercise(
        self,
        snap: Snapshot,
        client: httpx.Client,
        base_url: str,
        launched: float,
        alembic_head: str | None,
    ) -> Snapshot:
        """Everything after the launch: wait, warm up, scrape, probe again, read what it is."""
        rc = self.config.readiness
        wait = self.wait_ready(client, base_url, launched)
        waited = self._time("ready", launched)
        expect = expectation(rc)
        if wait.probe is None or (not wait.ready and wait.probe.status != 404):
            entry = never_ready_record(wait.probe, wait.reason, waited, expect)
            self._unavailable(self.target.role, wait.reason or "never became ready")
            return replace(snap, readiness={rc.path: entry})
        self.say(
            f"ready in {waited:.2f} s"
            if wait.ready
            else f"up in {waited:.2f} s (`{rc.path}` answers 404)"
        )
        health_first = self._probe(client, base_url, "liveness") if rc.healthz else None

        t0 = time.monotonic()
        answers = self.warmup(client, base_url)
        self._time("warmup", t0)
        if answers:
            self.say(warmup_summary(answers))

        t0 = time.monotonic()
        metrics = self._scrape(client, base_url)
        self._time("scrape", t0)

        t0 = time.monotonic()
        ready_second = self._probe(client, base_url, "readiness")
        readiness = {
            rc.path: readiness_record(
                wait.probe, ready_second, ready=wait.ready, waited=waited, expect=expect
            )
        }
        if rc.healthz:
            readiness[rc.healthz] = health_record(
                health_first, self._probe(client, base_url, "liveness")
            )
        self._time("probe", t0)
        return self._identify(replace(snap, metrics=metrics, readiness=readiness), alembic_head)

    def _identify(self, snap: Snapshot, alembic_head: str | None) -> Snapshot:
        """Fill in what the release is (Alembic head, build info, image) once it was captured."""
        t = self.target
        self._read_head()
        if self._recorded is not None:
            alembic_head = self._recorded[0] or alembic_head
        if self.running is not None and self.running.exit_code() is not None:
            self._unavailable(
                t.role, f"exited with code {self.running.exit_code()} during the capture"
            )
        build = read_build_info(
            snap.metrics, service=self.config.service, family=self.config.build_info
        )
        if build:
            self.say(
                "build "
                + ", ".join(
                    f"{k}={v}" for k, v in sorted(build.items()) if k in ("version", "revision")
                )
            )
        # Trap: the config's `image` is a claim, not an observation; the snapshot records what
        # the release reported (the artifact is inspected, and reported, by the check).
        return replace(snap, build=build, alembic_head=alembic_head)

    def _read_head(self) -> None:
        """Read the Alembic head the release's database records (it may have migrated itself on
        start-up), once. Done in the pause between two scrapes, where it costs no time (a new
        engine and connection: milliseconds of CPU, more on a busy machine), else at the end."""
        if self._recorded is not None or self.db_url is None:
            return
        mig = self.config.migrations
        if mig is None or mig.framework in ("auto", "alembic"):
            # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
            from compatcheck.migrations.sources.alembic.runner import read_alembic_head

            self._recorded = (read_alembic_head(self.db_url),)

    def wait_ready(self, client: httpx.Client, base_url: str, launched: float) -> ReadyWait:
        """Poll the readiness path until 2xx, a definitive 404, exit, or the timeout.

        A 404 is definitive when ``/metrics`` answers: the release is up and simply has no such
        endpoint (``readiness/endpoint-missing``), which waiting will not change. ``launched``
        (a ``time.monotonic()`` value) starts the ``readiness.timeout`` clock.
        """
        rc, mc = self.config.readiness, self.config.metrics
        deadline = launched + rc.timeout
        last: ProbeResult | None = None
        beat = launched
        while True:
            if self.running is not None:
                code = self.running.exit_code()
                if code is not None:
                    return ReadyWait(last, False, f"exited with code {code} before it was ready")
            remaining = deadline - time.monotonic()
            result = self._probe(client, base_url, "readiness", max(0.2, min(2.0, remaining)))
            if result.status is not None or last is None:
                last = result
            if result.ok:
                return ReadyWait(result, True, None)
            refused = _refused(result) and last is not None and last.status is None
            if self.running is None and refused and time.monotonic() - launched >= REFUSED_S:
                # A release that runs already (a url target) and whose port stays closed will
                # not open it while we wait: say so now, not after the whole timeout. (A short
                # grace covers a release started just before, still binding its port.)
                return ReadyWait(
                    result, False, f"nothing listens on {mask_secrets(base_url)} ({result.error})"
                )
            if result.status == 404:
                m = probe(base_url + mc.path, client=client, timeout=max(0.2, min(2.0, remaining)))
                if m.ok:
                    return ReadyWait(result, False, None)
            if time.monotonic() >= deadline:
                seen = (
                    f"last answer {answer_text(last)}"
                    if last and last.status is not None
                    else f"last error: {last.error if last else 'none'}"
                )
                return ReadyWait(
                    last, False, f"`{rc.path}` not ready within {rc.timeout:g} s ({seen})"
                )
            now = time.monotonic()
            if now - launched > HEARTBEAT_S and now - beat >= HEARTBEAT_S:
                beat = now
                self.say(
                    f"waiting for {self.target.label} {rc.path}: {answer_text(last)} "
                    f"({now - launched:.0f} s of {rc.timeout:g} s)"
                )
            if self._pause(rc.interval):
                return ReadyWait(last, False, "the run is shutting down")

    def warmup(
        self, client: httpx.Client, base_url: str, *, with_log: bool = False
    ) -> list[Answer]:
        """Send the configured warm-up requests in order; every answer is kept (:attr:`answers`).

        ``with_log``: also keep the error line the target logged while serving each request
        (what it appended to its log in the meantime), for the code-only trial's evidence.
        """
        answers: list[Answer] = []
        total = sum(req.repeat for req in self.config.warmup)

        def last() -> str:
            if not answers:
                return "no answer yet"
            a = answers[-1]
            return (
                f"{len(answers)} of {total} answered, {a.method} {a.path}: {answer_text(a.result)}"
            )

        with heartbeat(self.say, "waiting for the warm-up requests", last):
            self._send_warmup(client, base_url, answers, with_log=with_log)
        self.answers = answers
        return answers

    def _send_warmup(
        self, client: httpx.Client, base_url: str, answers: list[Answer], *, with_log: bool
    ) -> None:
        for req in self.config.warmup:
            for _ in range(req.repeat):
                mark = self._log_size() if with_log else 0
                r = probe(
                    base_url + req.path,
                    method=req.method,
                    headers=req.headers,
                    json_body=req.json,
                    client=client,
                    timeout=5.0,
                )
                logged = ""
                if with_log and not r.ok:
                    # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
                    from compatcheck.migrations.plans import error_line

                    logged = error_line(self._log_since(mark))
                answers.append(Answer(req.method, req.path, r, logged))

    def _log_size(self) -> int:
        if self.running is None:
            return 0
        try:
            return self.running.log_path.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int, cap: int = 65536) -> str:
        """What the target wrote to its log after ``offset`` (at most the last ``cap`` bytes)."""
        if self.running is None:
            return ""
        try:
            with self.running.log_path.open("rb") as fh:
                fh.seek(0, 2)
                end = fh.tell()
                fh.seek(max(offset, end - cap))
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _scrape(self, client: httpx.Client, base_url: str) -> MetricsSchema | None:
        """Scrape ``metrics.scrapes`` times, ``metrics.interval`` apart, and merge."""
        mc = self.config.metrics
        url = base_url + mc.path
        scrapes: list[MetricsSchema] = []

        def last() -> str:
            if not scrapes:
                return f"0 of {mc.scrapes} scrapes answered"
            families = len(scrapes[-1].families)
            return f"{len(scrapes)} of {mc.scrapes} scrapes answered, the last: {families} families"

        with heartbeat(self.say, f"waiting for {mc.path}", last):
            return self._scrapes(client, url, scrapes)

    def _scrapes(
        self, client: httpx.Client, url: str, scrapes: list[MetricsSchema]
    ) -> MetricsSchema | None:
        mc = self.config.metrics
        for i in range(mc.scrapes):
            if i:
                began = time.monotonic()
                self._read_head()
                self._pause(max(0.0, mc.interval - (time.monotonic() - began)))
            try:
                scrapes.append(
                    scrape_metrics(url, timeout=mc.timeout, max_bytes=mc.max_bytes, client=client)
                )
            except UnavailableError as exc:
                self._unavailable(f"{self.target.role}:{mc.path}", str(exc), url=mask_secrets(url))
                return None
            except ExpositionError as exc:
                self.say(f"invalid exposition: {exc}")
                return MetricsSchema(errors=(str(exc),))
        merged = merge_schemas(scrapes)
        self.say(
            f"scraped {mc.path} {mc.scrapes}× ({len(merged.families)} families, "
            f"{merged.content_type.split(';')[0] or 'no content type'})"
        )
        return merged
