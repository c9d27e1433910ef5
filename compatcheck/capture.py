"""Capture: bring OLD and NEW up, exercise them identically, record what each exposes.

For every target, concurrently: (scratch database migrated to the release's own head) → launch →
wait for readiness (recording time-to-ready) → the same warm-up requests → scrape ``/metrics``
N times and merge → probe readiness and health twice (to spot values that change on every call)
→ build info and Alembic head. The result is one :class:`Snapshot` per target plus the findings
only capture can make (a target that never came up, a scrape that failed, a build that is not the
one the config expects, the migrations inspection).

Failures are findings, never silent passes: anything that stops a part of a target from being
captured becomes ``check/unavailable`` with the reason and the log tail. Subjects: ``old`` / ``new``
(the target as a whole: did not start, exited, never answered), ``old:/metrics`` (the scrape),
``old:database`` (scratch database or its migration), ``migrations`` (the inspection).

With migrations configured and OLD launched from a command, a third worker tries the *code-only*
rollback plan for real: OLD's code on a scratch database at NEW's head (with SQLite, a copy of
NEW's scratch database taken right after NEW's scripts migrated it; on a server, a database of its
own migrated with NEW's scripts), the readiness wait and the same warm-up, judged against OLD's
run on its own database (:mod:`compatcheck.migrations.plans`).

Merging several scrapes (``MetricFamily.intermittent``): a family absent from some scrapes gets
``__name__``; a label key absent from some of the scrapes that had the family gets the key; a label
value seen in only some of the scrapes that had the key gets ``key=value``. Checks ignore
differences on intermittent names, keys and values: they are noise (lazily created series), not
contract.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from compatcheck.artifact import inspect_artifact
from compatcheck.checks.build import check_expected_build, read_build_info
from compatcheck.config import (
    Config,
    MetricsConfig,
    ReadinessConfig,
    TargetConfig,
    target_script_location,
)
from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.errors import ExpositionError, UnavailableError, UsageError
from compatcheck.masking import mask_secrets
from compatcheck.model import LABEL_VALUE_CAP, Finding, MetricFamily, MetricsSchema
from compatcheck.progress import Progress
from compatcheck.report import Report
from compatcheck.scrape import ProbeResult, probe, scrape_metrics
from compatcheck.snapshot import Snapshot, load_snapshot
from compatcheck.targets import RunningTarget, Workspace

if TYPE_CHECKING:
    # Trap: importing anything under compatcheck.migrations imports the whole package
    # (SQLAlchemy, Alembic: ~0.3 s); a check without migrations must not pay for it. So every
    # use below imports it where it is needed.
    from compatcheck.migrations.plans import CodeOnlyTrial
    from compatcheck.migrations.scratch import ScratchDatabase
    from compatcheck.migrations.section import Exchange, MigrationsSection, TrialSetup

FAMILY_INTERMITTENT = "__name__"


@dataclass(frozen=True)
class Answer:
    """One warm-up request as sent and answered, plus what the target logged meanwhile."""

    method: str
    path: str
    result: ProbeResult
    #: The error line the target logged while serving it (only when asked for).
    log: str = ""

    def exchange(self) -> Exchange:
        from compatcheck.migrations.section import Exchange

        return Exchange(self.method, self.path, self.result.status, self.result.error, self.log)


@dataclass(frozen=True)
class CheckResult:
    """What ``compatcheck check`` hands to ``evaluate()``.

    ``findings`` go in as ``EvaluateOptions.extra_findings``, ``migrations`` as the report's
    migrations section, ``timings`` (seconds) into the report's timings.
    """

    old: Snapshot
    new: Snapshot
    findings: list[Finding]
    migrations: MigrationsSection | None
    timings: dict[str, float]
    #: Report sections beside the findings (``artifact``: reference, digest, rollback command).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def unavailable(self) -> bool:
        return any(f.kind == "check/unavailable" for f in self.findings)

    def evaluate(self, options: EvaluateOptions | None = None) -> Report:
        """Judge this run: the snapshots plus what capture found and measured, under ``options``.

        The one way a check run becomes a report, for the CLI, the tests and API users alike.
        """
        opts = options or EvaluateOptions()
        return evaluate(
            self.old,
            self.new,
            replace(
                opts,
                extra_findings=(*opts.extra_findings, *self.findings),
                migrations=self.migrations,
                timings={**opts.timings, **self.timings},
                extras={**opts.extras, **self.extras},
            ),
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


# --- merging scrapes ---------------------------------------------------------------------------


def merge_schemas(schemas: list[MetricsSchema]) -> MetricsSchema:
    """Union of several scrapes of one target, with what came and went marked intermittent."""
    if not schemas:
        return MetricsSchema()
    if len(schemas) == 1:
        return schemas[0]
    total = len(schemas)
    names = sorted({n for s in schemas for n in s.families})
    merged: dict[str, MetricFamily] = {}
    for name in names:
        fams = [s.families[name] for s in schemas if name in s.families]
        present = len(fams)
        intermittent: set[str] = set()
        for f in fams:
            intermittent.update(f.intermittent)
        if present < total:
            intermittent.add(FAMILY_INTERMITTENT)
        labels = sorted({k for f in fams for k in f.labels})
        for key in labels:
            if sum(1 for f in fams if key in f.labels) < present:
                intermittent.add(key)
        high = {k for f in fams for k in f.high_cardinality}
        values: dict[str, tuple[str, ...]] = {}
        for key in labels:
            if key in high:
                continue
            with_key = [f for f in fams if key in f.label_values]
            union = sorted({v for f in with_key for v in f.label_values[key]})
            if len(union) > LABEL_VALUE_CAP:
                high.add(key)
                continue
            if union:
                values[key] = tuple(union)
            for v in union:
                if sum(1 for f in with_key if v in f.label_values[key]) < len(with_key):
                    intermittent.add(f"{key}={v}")
        last = fams[-1]
        merged[name] = replace(
            last,
            labels=tuple(labels),
            label_values=values,
            high_cardinality=tuple(sorted(high)),
            buckets=tuple(sorted({b for f in fams for b in f.buckets})),
            quantiles=tuple(sorted({q for f in fams for q in f.quantiles})),
            series=max(f.series for f in fams),
            has_samples=any(f.has_samples for f in fams),
            intermittent=tuple(sorted(intermittent)),
        )
    errors: list[str] = []
    for s in schemas:
        errors.extend(e for e in s.errors if e not in errors)
    return MetricsSchema(
        families=merged, content_type=schemas[-1].content_type, errors=tuple(errors)
    )


# --- probing -----------------------------------------------------------------------------------


def _volatile(first: Any, second: Any) -> list[str]:
    """JSON pointers whose value differs between two calls of the same endpoint."""
    if first is None or second is None:
        return []
    from deepdiff import DeepDiff

    from compatcheck.checks.readiness import pointer

    diff = DeepDiff(first, second, view="tree")
    out = set()
    for kind in ("values_changed", "type_changes"):
        for item in diff.get(kind, []):
            out.add(pointer(item.path(output_format="list")))
    return sorted(out)


def _entry(
    role: str, first: ProbeResult | None, second: ProbeResult, **extra: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "role": role,
        "status": second.status,
        "error": second.error,
        "json": second.json,
        "volatile": _volatile(first.json if first else None, second.json),
    }
    entry.update(extra)
    return entry


@dataclass
class _Outcome:
    snapshot: Snapshot
    findings: list[Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class _Capture:
    """Captures one target. Every stage records its time and turns failure into a finding."""

    def __init__(
        self,
        config: Config,
        target: TargetConfig,
        ws: Workspace | None,
        progress: Progress,
        db_done: threading.Event,
    ) -> None:
        self.config = config
        self.target = target
        self.ws = ws
        self.progress = progress
        self.db_done = db_done
        self.who = f"{target.role} {target.label}"
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

    def say(self, message: str) -> None:
        self.progress.step(self.who, message)

    def _time(self, stage: str, start: float) -> float:
        took = time.monotonic() - start
        self.timings[f"{self.target.role}.{stage}"] = took
        return took

    def _unavailable(self, subject: str, reason: str, **evidence: Any) -> None:
        ev: dict[str, Any] = {"target": self.target.role, "label": self.target.label}
        ev["reason"] = reason
        message = f"{self.target.role.upper()} `{self.target.label}`: {reason}"
        if self.running is not None:
            ev["exit_code"] = self.running.exit_code()
            ev["log_tail"] = self.running.log_tail()
            if ev["exit_code"] is not None:
                from compatcheck.migrations.plans import error_line

                # The person reads this line first (and often only): it must say why it died.
                logged = error_line(ev["log_tail"])
                if logged:
                    message += f" (log: `{logged}`)"
        ev.update(evidence)
        self.findings.append(Finding("check/unavailable", subject, f"{message}.", ev))
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

    def run(self) -> _Outcome:
        start = time.monotonic()
        t = self.target
        base = Snapshot(label=t.label, source=self._source(), captured_at=_now())
        if t.kind == "snapshot":
            self.db_done.set()
            assert t.snapshot is not None
            snap = load_snapshot(t.snapshot)
            self.say(f"loaded snapshot {t.snapshot.name}")
            return _Outcome(replace(snap, label=t.label or snap.label), [], {})
        if t.kind == "stored":
            self.db_done.set()
            snap = self._stored()
            return _Outcome(replace(snap, label=t.label or snap.label), [], {})
        if t.kind == "exposition":
            self.db_done.set()
            from compatcheck.sources import snapshot_from_exposition_file

            assert t.exposition is not None
            snap = snapshot_from_exposition_file(
                t.exposition,
                label=t.label,
                service=self.config.service,
                build_info=self.config.build_info,
            )
            self.say(f"read exposition {t.exposition.name}")
            return _Outcome(snap, [], {})
        try:
            snap = self._live(base)
        finally:
            self.db_done.set()
        self._time("total", start)
        return _Outcome(snap, self.findings, self.timings)

    def _stored(self) -> Snapshot:
        """The target's version from the snapshot store: a release contract recorded earlier."""
        from compatcheck.store import SnapshotStore

        t = self.target
        assert t.stored is not None
        if not self.config.snapshot_dir:
            raise UsageError(
                f"{self.config.path}: `{t.role}.stored` needs `snapshot_dir` or --snapshot-dir"
            )
        store = SnapshotStore(self.config.snapshot_dir)
        snap = store.get(self.config.service, t.stored)
        self.say(f"loaded stored snapshot {store.location(self.config.service, t.stored)}")
        recorded = f" (recorded from {snap.source})" if snap.source else ""
        return replace(snap, source=f"stored: {self.config.service}/{t.stored}{recorded}")

    def _source(self) -> str:
        t = self.target
        if t.command is not None:
            cmd = mask_secrets(" ".join(t.command))
            return f"command: {cmd}" + (f" (cwd {t.cwd})" if t.cwd else "")
        if t.url is not None:
            return mask_secrets(t.url)
        if t.stored is not None:
            return f"stored: {self.config.service}/{t.stored}"
        return str(t.snapshot or t.exposition)

    # -- a live target (command or url) ---------------------------------------------------

    def _live(self, snap: Snapshot) -> Snapshot:
        t = self.target
        alembic_head: str | None = None
        if t.command is not None:
            assert self.ws is not None
            uses_db = any("{database_url}" in s for s in (*t.command, *t.env.values()))
            database_url = ""
            if uses_db:
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
            base_url = self.running.base_url
            launched = self.running.started
        else:
            self.db_done.set()
            assert t.url is not None
            base_url = _base_of(t.url)
            launched = time.monotonic()
            self.say(f"using {mask_secrets(base_url)}")

        with (
            httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0)) as client,
            _tls_probes(self.config.readiness) as self.tls_probes,
        ):
            return self._exercise(snap, client, base_url, launched, alembic_head)

    def _database(self) -> str | None:
        assert self.ws is not None
        mig = self.config.migrations
        db = self.ws.scratch_database(self.target.role, mig.database if mig else "sqlite")
        self.db_url = db.url
        location = target_script_location(self.config, self.target)
        if location is None:
            return None
        if self.ws.closing():  # interrupted meanwhile: no migration nobody will look at
            raise UnavailableError("the run is shutting down")
        self.say(f"migrating scratch database ({db.kind}) to the release's head")
        from compatcheck.migrations.sources.alembic.runner import migrate_to_head

        head = migrate_to_head(location, db.url)
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
        t = self.target
        rc = self.config.readiness
        mc = self.config.metrics
        ready_probe, ready, reason = self._wait_ready(client, base_url, rc, mc, launched)
        waited = self._time("ready", launched)
        expect: dict[str, Any] = {}
        if rc.expect_status:
            expect["status"] = list(rc.expect_status)
        if rc.expect_json is not None:
            expect["json"] = rc.expect_json
        readiness: dict[str, Any] = {}
        if ready_probe is None or (not ready and ready_probe.status != 404):
            readiness[rc.path] = {
                "role": "readiness",
                "status": ready_probe.status if ready_probe else None,
                "ready": False,
                "error": reason,
                "json": ready_probe.json if ready_probe else None,
                "volatile": [],
                "time_to_ready": None,
                "waited": round(waited, 3),
                **({"expect": expect} if expect else {}),
            }
            self._unavailable(t.role, reason or "never became ready")
            return replace(snap, readiness=readiness)
        self.say(
            f"ready in {waited:.2f} s"
            if ready
            else f"up in {waited:.2f} s (`{rc.path}` answers 404)"
        )
        health_first = self._probe(client, base_url, "liveness") if rc.healthz else None

        t0 = time.monotonic()
        answers = self._warmup(client, base_url)
        sent, failed = len(answers), sum(1 for a in answers if not a.result.ok)
        self._time("warmup", t0)
        if sent:
            self.say(f"warm-up: {sent} requests" + (f", {failed} not 2xx" if failed else ""))

        t0 = time.monotonic()
        metrics = self._scrape(client, base_url, mc)
        self._time("scrape", t0)

        t0 = time.monotonic()
        ready_second = self._probe(client, base_url, "readiness")
        readiness[rc.path] = _entry(
            "readiness",
            ready_probe,
            ready_second,
            ready=ready and ready_second.ok,
            time_to_ready=round(waited, 3) if ready else None,
            waited=round(waited, 3),
            **({"expect": expect} if expect else {}),
        )
        if rc.healthz:
            health_second = self._probe(client, base_url, "liveness")
            readiness[rc.healthz] = _entry("health", health_first, health_second)
        self._time("probe", t0)

        if self.db_url is not None:
            from compatcheck.migrations.sources.alembic.runner import read_alembic_head

            alembic_head = read_alembic_head(self.db_url) or alembic_head
        if self.running is not None and self.running.exit_code() is not None:
            self._unavailable(
                t.role, f"exited with code {self.running.exit_code()} during the capture"
            )
        build = read_build_info(metrics, service=self.config.service, family=self.config.build_info)
        if build:
            self.say(
                "build "
                + ", ".join(
                    f"{k}={v}" for k, v in sorted(build.items()) if k in ("version", "revision")
                )
            )
        return replace(
            snap,
            metrics=metrics,
            readiness=readiness,
            build=build,
            alembic_head=alembic_head,
            artifact={"image": t.image} if t.image else None,
        )

    def _wait_ready(
        self,
        client: httpx.Client,
        base_url: str,
        rc: ReadinessConfig,
        mc: MetricsConfig,
        launched: float,
    ) -> tuple[ProbeResult | None, bool, str | None]:
        """Poll the readiness path until 2xx, a definitive 404, exit, or the timeout.

        A 404 is definitive when ``/metrics`` answers: the release is up and simply has no such
        endpoint (``readiness/endpoint-missing``), which waiting will not change.
        """
        deadline = launched + rc.timeout
        last: ProbeResult | None = None
        while True:
            if self.running is not None:
                code = self.running.exit_code()
                if code is not None:
                    return last, False, f"exited with code {code} before it was ready"
            remaining = deadline - time.monotonic()
            result = self._probe(client, base_url, "readiness", max(0.2, min(2.0, remaining)))
            if result.status is not None or last is None:
                last = result
            if result.ok:
                return result, True, None
            if result.status == 404:
                m = probe(base_url + mc.path, client=client, timeout=max(0.2, min(2.0, remaining)))
                if m.ok:
                    return result, False, None
            if time.monotonic() >= deadline:
                seen = (
                    f"last answer HTTP {last.status}"
                    if last and last.status is not None
                    else f"last error: {last.error if last else 'none'}"
                )
                return last, False, f"not ready within {rc.timeout:g} s ({seen})"
            time.sleep(rc.interval)

    def _warmup(
        self, client: httpx.Client, base_url: str, *, with_log: bool = False
    ) -> list[Answer]:
        """Send the configured warm-up requests in order; every answer is kept.

        ``with_log``: also keep the error line the target logged while serving each request
        (what it appended to its log in the meantime), for the code-only trial's evidence.
        """
        answers: list[Answer] = []
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
                    from compatcheck.migrations.plans import error_line

                    logged = error_line(self._log_since(mark))
                answers.append(Answer(req.method, req.path, r, logged))
        self.answers = answers
        return answers

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

    def _scrape(
        self, client: httpx.Client, base_url: str, mc: MetricsConfig
    ) -> MetricsSchema | None:
        url = base_url + mc.path
        scrapes: list[MetricsSchema] = []
        for i in range(mc.scrapes):
            if i:
                time.sleep(mc.interval)
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


@dataclass
class _TrialRun:
    """What the code-only trial saw, before it is judged against OLD's own run."""

    answers: list[Answer] = field(default_factory=list)
    #: Set when the trial could not be carried out at all (not a verdict on the schema).
    not_run: str | None = None
    startup_error: str | None = None
    startup_log: str = ""
    exit_code: int | None = None
    log_tail: str = ""
    setup: TrialSetup | None = None


class _CodeOnlyTrial:
    """The code-only plan, for real: OLD's code on a scratch database migrated to NEW's head.

    Same launch, readiness wait and warm-up as OLD's own capture (it *is* a :class:`_Capture` of
    OLD, on another database, with its own port, process group and log), then the process is
    stopped at once: it has nothing to scrape. Runs beside the captures; the scratch database is
    migrated once OLD's and NEW's are (one Alembic run at a time, see :func:`_migrations_job`),
    and ``db_done`` tells the migrations inspection it may start.
    """

    def __init__(
        self,
        config: Config,
        ws: Workspace,
        progress: Progress,
        wait_for: Mapping[str, threading.Event],
        db_done: threading.Event,
    ) -> None:
        self.config = config
        self.ws = ws
        self.wait_for = wait_for
        self.db_done = db_done
        self.capture = _Capture(config, config.old, ws, progress, db_done)
        self.capture.who = f"old {config.old.label} on NEW's schema"
        self.copied: ScratchDatabase | None = None

    def copy_new_database(self, url: str) -> None:
        """Take a copy of NEW's scratch SQLite right after NEW's scripts migrated it to NEW's head.

        Called in NEW's capture thread before NEW starts (so NEW has written nothing yet). It
        gives the trial its database at NEW's head in milliseconds instead of a second Alembic
        run, which would also have to queue for the process-wide Alembic lock. Any failure just
        leaves the trial to migrate its own database.
        """
        import sqlite3

        from sqlalchemy.engine import make_url

        source = make_url(url).database
        try:
            dest = self.ws.scratch_database("code-only-copy", "sqlite")
            target = make_url(dest.url).database
            if not source or not target:
                return
            with (
                contextlib.closing(sqlite3.connect(source)) as src,
                contextlib.closing(sqlite3.connect(target)) as dst,
            ):
                src.backup(dst)
        except (UnavailableError, sqlite3.Error, OSError):
            return
        self.copied = dest

    def run(self) -> _TrialRun:
        start = time.monotonic()
        try:
            out = self._run()
        finally:
            self.db_done.set()
        out.setup = replace(_setup(out), seconds=round(time.monotonic() - start, 3))
        return out

    def _run(self) -> _TrialRun:
        cap = self.capture
        old = self.config.old
        new_loc = target_script_location(self.config, self.config.new)
        out = _TrialRun()
        if new_loc is None or not (new_loc / "env.py").is_file():
            out.not_run = f"NEW's migrations ({new_loc}) have no env.py to migrate a database with"
            return out
        # NEW's scratch database first: with SQLite, NEW's capture hands over a copy of it.
        for role in ("new", "old"):
            self.wait_for[role].wait()
            if self.copied is not None:
                break
        t0 = time.monotonic()
        if self.copied is not None:
            db = self.copied
            out.setup = replace(
                _setup(out), database=db.kind, prepared="copy of NEW's migrated database"
            )
            self.db_done.set()
        else:
            mig = self.config.migrations
            database = mig.database if mig else "sqlite"
            try:
                db = self.ws.scratch_database("code-only", database)
                out.setup = replace(
                    _setup(out), database=db.kind, prepared="migrated with NEW's scripts"
                )
                if db.kind == "server":
                    # The name only (``compatcheck_<random>``): the URL may hold credentials.
                    name = db.shown.rsplit("/", 1)[-1].split("?")[0]
                    out.setup = replace(out.setup, database_name=name)
                cap.say(f"migrating a scratch database ({db.kind}) to NEW's head")
                from compatcheck.migrations.sources.alembic.runner import migrate_to_head

                migrate_to_head(new_loc, db.url)
            except UnavailableError as exc:
                out.not_run = f"no scratch database at NEW's head: {exc}"
                return out
            finally:
                self.db_done.set()
        out.setup = replace(_setup(out), prepare_seconds=round(time.monotonic() - t0, 3))
        try:
            cap.running = self.ws.launch(old, database_url=db.url, name="code-only")
        except UnavailableError as exc:
            out.not_run = str(exc)
            return out
        running = cap.running
        cap.say(f"started OLD's code on NEW's schema (pid {running.process.pid})")
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0)) as client,
                _tls_probes(self.config.readiness) as cap.tls_probes,
            ):
                rc, mc = self.config.readiness, self.config.metrics
                _, _, reason = cap._wait_ready(client, running.base_url, rc, mc, running.started)
                ready = round(time.monotonic() - running.started, 3)
                out.setup = replace(_setup(out), ready_seconds=ready)
                if reason is not None:
                    out.startup_error = reason
                    out.startup_log = running.log_tail(lines=40)
                    cap.say(f"never ready: {reason}")
                else:
                    out.answers = cap._warmup(client, running.base_url, with_log=True)
                    out.exit_code = running.exit_code()
                    broken = sum(1 for a in out.answers if not a.result.ok)
                    cap.say(
                        f"warm-up: {len(out.answers)} requests"
                        + (f", {broken} not 2xx" if broken else "")
                    )
            out.log_tail = running.log_tail()
        finally:
            self.ws.stop(running)
        return out


def _setup(run: _TrialRun) -> TrialSetup:
    from compatcheck.migrations.section import TrialSetup

    return run.setup or TrialSetup()


def _judge_trial(baseline: list[Answer] | None, run: _TrialRun) -> CodeOnlyTrial:
    from compatcheck.migrations.plans import CodeOnlyTrial, judge_trial

    if run.not_run is not None:
        return CodeOnlyTrial(verified=False, note=run.not_run, setup=_setup(run))
    return judge_trial(
        None if baseline is None else [a.exchange() for a in baseline],
        [a.exchange() for a in run.answers],
        startup_error=run.startup_error,
        startup_log=run.startup_log,
        exit_code=run.exit_code,
        log_tail=run.log_tail,
        setup=_setup(run),
    )


def _code_only_unrunnable(config: Config) -> str | None:
    """Why the code-only plan cannot be tried for real with this config (None: it can)."""
    old = config.old
    if old.command is None:
        return f"OLD is a `{old.kind}` target: compatcheck has no command to start it with"
    if not any("{database_url}" in s for s in (*old.command, *old.env.values())):
        return "OLD's command and env take no `{database_url}`: it cannot be pointed elsewhere"
    return None


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


def _base_of(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")).rstrip("/")


# --- public entry points ---------------------------------------------------------------------


def run_check(config: Config, *, progress: Progress | None = None) -> CheckResult:
    """Launch/capture OLD and NEW concurrently, inspect migrations, tear everything down.

    With migrations configured and OLD launched from a command, the code-only rollback plan is
    also tried for real, concurrently (:class:`_CodeOnlyTrial`) and folded into the migrations
    section (:func:`compatcheck.migrations.plans.verify_code_only`).
    """
    progress = progress or Progress(quiet=True)
    started = time.monotonic()
    events = {"old": threading.Event(), "new": threading.Event()}
    captures: dict[str, _Capture] = {}
    findings: list[Finding] = []
    migrations_section: MigrationsSection | None = None
    unrunnable = _code_only_unrunnable(config) if config.migrations is not None else None
    with Workspace(grace=config.grace) as ws:
        for role in ("old", "new"):
            target = config.target(role)
            captures[role] = _Capture(config, target, ws, progress, events[role])
        jobs: dict[str, Callable[[], Any]] = {
            "old": captures["old"].run,
            "new": captures["new"].run,
        }
        if config.migrations is not None and unrunnable is None:
            trial_db = threading.Event()
            trial = _CodeOnlyTrial(config, ws, progress, dict(events), trial_db)
            captures["new"].on_migrated = trial.copy_new_database
            jobs["code-only"] = trial.run
            # The inspection waits for this scratch database too (one Alembic run at a time).
            events["code-only"] = trial_db
        inspect = _migrations_job(config, ws, events, captures, progress)
        if inspect is not None:
            jobs["migrations"] = inspect
        # On Ctrl-C/SIGTERM the workspace's close stops the processes, waits for the workers
        # and drops every scratch database, in this (the main) thread.
        results = ws.run_jobs(jobs)
        t0 = time.monotonic()
        progress.step(None, "stopping targets")
    teardown = time.monotonic() - t0
    old: _Outcome = results["old"]
    new: _Outcome = results["new"]
    findings += old.findings + new.findings
    for role, outcome in (("old", old), ("new", new)):
        target = config.target(role)
        expected = {"version": target.expect.version, "revision": target.expect.revision}
        findings += check_expected_build(role, target.label, expected, outcome.snapshot.build)
    timings: dict[str, float] = {}
    timings.update(old.timings)
    timings.update(new.timings)
    if "migrations" in results:
        mig_findings, migrations_section, timings["migrations"] = results["migrations"]
        if migrations_section is not None:
            from compatcheck.migrations.plans import CodeOnlyTrial, verify_code_only

            if "code-only" in results:
                run: _TrialRun = results["code-only"]
                judged = _judge_trial(captures["old"].answers, run)
                timings["code_only"] = _setup(run).seconds or 0.0
            else:
                judged = CodeOnlyTrial(verified=False, note=unrunnable or "not run")
            mig_findings, migrations_section = verify_code_only(
                mig_findings, migrations_section, judged
            )
        findings += mig_findings
    timings["teardown"] = teardown
    extras: dict[str, Any] = {}
    if config.old.artifact:
        t0 = time.monotonic()
        progress.step(f"old {config.old.label}", "inspecting the artifact")
        art = inspect_artifact(config.old.artifact, build=old.snapshot.build, role="old")
        findings += art.findings
        extras["artifact"] = art.section
        timings["artifact"] = time.monotonic() - t0
    timings["capture"] = time.monotonic() - started
    return CheckResult(old.snapshot, new.snapshot, findings, migrations_section, timings, extras)


def _migrations_job(
    config: Config,
    ws: Workspace,
    events: Mapping[str, threading.Event],
    captures: Mapping[str, _Capture],
    progress: Progress,
) -> Callable[[], tuple[list[Finding], MigrationsSection | None, float]] | None:
    """The migrations inspection, run beside the captures once both scratch DBs are migrated.

    Trap: two ``env.py`` runs at once in two threads corrupt each other (Alembic's ``context``
    proxy is process-wide); the Alembic lock prevents that. Waiting for the per-target upgrades
    first only lets the releases start sooner.
    """
    if config.migrations is None:
        return None
    old_loc = target_script_location(config, config.old)
    new_loc = target_script_location(config, config.new)

    def job() -> tuple[list[Finding], MigrationsSection | None, float]:
        # The jobs that set these events were started before this one and set them whatever
        # happens: a plain wait cannot hang.
        for ev in events.values():
            ev.wait()
        t0 = time.monotonic()
        from compatcheck.migrations.sources.alembic.runner import script_heads

        old_head = script_heads(old_loc) if old_loc and old_loc.is_dir() else None
        new_head = script_heads(new_loc) if new_loc and new_loc.is_dir() else None
        if old_head is None or new_head is None or new_loc is None:
            return (
                [
                    _plain_unavailable(
                        "migrations",
                        "migrations not inspected: cannot determine both releases' Alembic heads "
                        f"(old: {old_head or 'unknown'}, new: {new_head or 'unknown'})",
                    )
                ],
                None,
                0.0,
            )
        try:
            from compatcheck.migrations import inspect_migrations
        except ImportError:
            return (
                [
                    _plain_unavailable(
                        "migrations", "migrations not inspected: compatcheck.migrations is missing"
                    )
                ],
                None,
                0.0,
            )
        assert config.migrations is not None
        db = config.migrations.database
        progress.step(None, f"inspecting migrations {new_head} → {old_head}")
        try:
            result = inspect_migrations(
                new_loc,
                old_head,
                new_head,
                db_url=None if db == "sqlite" else db,
                static=False,
                progress=progress,
                workspace=ws,
            )
        except UnavailableError as exc:
            return [_plain_unavailable("migrations", str(exc))], None, time.monotonic() - t0
        took = time.monotonic() - t0
        progress.step(None, f"migrations inspected in {took:.2f} s")
        return list(result.findings), result.section, took

    return job


def _plain_unavailable(subject: str, reason: str) -> Finding:
    return Finding("check/unavailable", subject, f"{reason}.", {"reason": reason})


def capture_snapshot(config: Config, which: str, *, progress: Progress | None = None) -> Snapshot:
    """Record one release's snapshot from its config target (``compatcheck snapshot -c``).

    A snapshot is stored and trusted later, so a part that could not be captured is an error
    (:class:`UnavailableError`, exit 3) rather than a hole in the file.
    """
    if which not in ("old", "new"):
        raise UsageError(f"--target must be 'old' or 'new', got {which!r}")
    progress = progress or Progress(quiet=True)
    target = config.target(which)
    with Workspace(grace=config.grace) as ws:
        outcome = _Capture(config, target, ws, progress, threading.Event()).run()
    problems = [f for f in outcome.findings if f.kind == "check/unavailable"]
    if problems:
        who = f"{which.upper()} `{target.label}`"
        reason = problems[0].message.rstrip(".").removeprefix(f"{who}: ")
        tail = problems[0].evidence.get("log_tail") or ""
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        if last and "(log: " not in reason:
            reason += f" (log: {last})"
        raise UnavailableError(f"cannot record a snapshot of {who}: {reason}")
    return outcome.snapshot


def snapshot_from_url(
    url: str,
    *,
    label: str = "",
    readiness: ReadinessConfig | None = None,
    metrics: MetricsConfig | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    """Record a running release: ``url`` is its base URL or its metrics URL.

    ``http://host:9000`` scrapes ``/metrics``; ``http://host:9000/custom/metrics`` scrapes that
    path. Readiness (default ``/readyz``) is probed on the same host; ``readiness.timeout`` bounds
    the wait for it (default 10 s here: the release is supposed to be running already).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{mask_secrets(url)}: not an http(s) URL")
    mc = metrics or MetricsConfig()
    if parts.path not in ("", "/"):
        mc = replace(mc, path=parts.path + (f"?{parts.query}" if parts.query else ""))
    rc = readiness or ReadinessConfig(timeout=10.0)
    target = TargetConfig(role="new", label=label or mask_secrets(url), url=_base_of(url))
    config = Config(
        path=Path.cwd() / "compatcheck.yaml",
        service="",
        old=target,
        new=target,
        readiness=rc,
        metrics=mc,
    )
    outcome = _Capture(
        config, target, None, progress or Progress(quiet=True), threading.Event()
    ).run()
    problems = [f for f in outcome.findings if f.kind == "check/unavailable"]
    if problems:
        raise UnavailableError(f"{mask_secrets(url)}: {problems[0].evidence.get('reason')}")
    return replace(outcome.snapshot, source=mask_secrets(url))
