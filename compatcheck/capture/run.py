"""The orchestration: OLD and NEW (plus the code-only trial and the migrations inspection)
captured concurrently in one workspace for ``compatcheck check``, or one release for
``compatcheck snapshot -c``.

Each capture, the trial and the inspection is a job of :meth:`Workspace.run_jobs`; they
coordinate through events that say "this job's scratch database is migrated" (one Alembic run at
a time). Closing the workspace (normally, or on Ctrl-C/SIGTERM in the main thread) stops every
process and drops every scratch database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compatcheck.artifact import inspect_artifact
from compatcheck.artifact.section import ArtifactSection
from compatcheck.capture.codeonly import Trial, unrunnable
from compatcheck.capture.target import Outcome, TargetCapture
from compatcheck.checks.availability import UNAVAILABLE
from compatcheck.checks.build import check_expected_build
from compatcheck.config import Config
from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.errors import UnavailableError, UsageError
from compatcheck.model import Finding
from compatcheck.progress import Progress
from compatcheck.report import Report
from compatcheck.snapshot import Snapshot
from compatcheck.targets import Workspace

if TYPE_CHECKING:
    # Trap: compatcheck.migrations imports SQLAlchemy and Alembic (~0.3 s); a check without
    # migrations must not pay for it, so every use below imports it where it is needed.
    from compatcheck.migrations.section import MigrationsSection
    from compatcheck.migrations.sources.alembic.project import AlembicProject


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
    #: What was verified about OLD's artifact (reference, digest, rollback command).
    artifact: ArtifactSection | None = None

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
                artifact=self.artifact or opts.artifact,
            ),
        )


def run_check(config: Config, *, progress: Progress | None = None) -> CheckResult:
    """Launch/capture OLD and NEW concurrently, inspect migrations, tear everything down.

    With migrations configured and OLD launched from a command, the code-only rollback plan is
    also tried for real, concurrently (:class:`~compatcheck.capture.codeonly.Trial`) and folded
    into the migrations section (:func:`compatcheck.migrations.plans.verify_code_only`).
    """
    progress = progress or Progress(quiet=True)
    started = time.monotonic()
    events = {"old": threading.Event(), "new": threading.Event()}
    captures: dict[str, TargetCapture] = {}
    findings: list[Finding] = []
    migrations_section: MigrationsSection | None = None
    cannot_try = unrunnable(config) if config.migrations is not None else None
    trial: Trial | None = None
    with Workspace(grace=config.grace) as ws:
        for role in ("old", "new"):
            target = config.target(role)
            captures[role] = TargetCapture(config, target, ws, progress, events[role])
        jobs: dict[str, Callable[[], Any]] = {
            "old": captures["old"].run,
            "new": captures["new"].run,
        }
        if config.migrations is not None and cannot_try is None:
            trial_db = threading.Event()
            trial = Trial(config, ws, progress, dict(events), trial_db)
            captures["new"].on_migrated = trial.copy_new_database
            jobs["code-only"] = trial.run
            # The inspection waits for this scratch database too (one Alembic run at a time).
            events["code-only"] = trial_db
        inspect = _migrations_job(config, ws, events, progress)
        if inspect is not None:
            jobs["migrations"] = inspect
        # On Ctrl-C/SIGTERM the workspace's close stops the processes, waits for the workers
        # and drops every scratch database, in this (the main) thread.
        results = ws.run_jobs(jobs)
        t0 = time.monotonic()
        progress.step(None, "stopping targets")
    teardown = time.monotonic() - t0
    old: Outcome = results["old"]
    new: Outcome = results["new"]
    findings += [*old.findings, *new.findings]
    findings += _build_mismatches(config, old, new)
    timings: dict[str, float] = {}
    timings.update(old.timings)
    timings.update(new.timings)
    if "migrations" in results:
        mig_findings, migrations_section, timings["migrations"] = results["migrations"]
        if migrations_section is not None:
            # Local import: compatcheck.migrations is heavy (SQLAlchemy, Alembic).
            from compatcheck.migrations.plans import CodeOnlyTrial, verify_code_only

            if trial is not None:
                judged = trial.judge(captures["old"].answers)
                timings["code_only"] = trial.seconds
            else:
                judged = CodeOnlyTrial(verified=False, note=cannot_try or "not run")
            mig_findings, migrations_section = verify_code_only(
                mig_findings, migrations_section, judged
            )
        findings += mig_findings
    timings["teardown"] = teardown
    artifact: ArtifactSection | None = None
    if config.old.artifact.spec():
        t0 = time.monotonic()
        progress.step(f"old {config.old.label}", "inspecting the artifact")
        art = inspect_artifact(config.old.artifact.spec(), build=old.snapshot.build, role="old")
        findings += art.findings
        artifact = art.section
        timings["artifact"] = time.monotonic() - t0
    timings["capture"] = time.monotonic() - started
    return CheckResult(old.snapshot, new.snapshot, findings, migrations_section, timings, artifact)


def _build_mismatches(config: Config, old: Outcome, new: Outcome) -> list[Finding]:
    """``artifact/version-mismatch``: a release whose build info is not the one expected."""
    findings: list[Finding] = []
    for role, outcome in (("old", old), ("new", new)):
        target = config.target(role)
        expected = {"version": target.expect.version, "revision": target.expect.revision}
        findings += check_expected_build(role, target.label, expected, outcome.snapshot.build)
    return findings


MigrationsJobResult = tuple[list[Finding], "MigrationsSection | None", float]


def _migrations_job(
    config: Config,
    ws: Workspace,
    events: Mapping[str, threading.Event],
    progress: Progress,
) -> Callable[[], MigrationsJobResult] | None:
    """The migrations inspection, run beside the captures once both scratch DBs are migrated.

    Trap: two ``env.py`` runs at once in two threads corrupt each other (Alembic's ``context``
    proxy is process-wide); the Alembic lock prevents that. Waiting for the per-target upgrades
    first only lets the releases start sooner.
    """
    if config.migrations is None:
        return None
    # Local import: compatcheck.migrations is heavy (SQLAlchemy, Alembic).
    from compatcheck.migrations.sources.alembic.project import release_project

    old_loc = release_project(config, config.old)
    new_loc = release_project(config, config.new)

    def job() -> MigrationsJobResult:
        # A worker blocks here: every capture and the trial set their event in a finally.
        for ev in events.values():
            ev.wait()
        return _inspect(config, ws, progress, old_loc, new_loc)

    return job


def _present(loc: Path | AlembicProject | None) -> bool:
    """Whether a release's migrations are there to run: its ini file, or its script folder."""
    # Local import: compatcheck.migrations is heavy (SQLAlchemy, Alembic).
    from compatcheck.migrations.sources.alembic.project import AlembicProject

    if isinstance(loc, AlembicProject):
        return loc.config_file is not None and loc.config_file.is_file()
    return loc is not None and loc.is_dir()


def _not_inspected(reason: str, took: float = 0.0) -> MigrationsJobResult:
    return [_plain_unavailable("migrations", reason)], None, took


def _inspect(
    config: Config,
    ws: Workspace,
    progress: Progress,
    old_loc: Path | AlembicProject | None,
    new_loc: Path | AlembicProject | None,
) -> MigrationsJobResult:
    """Inspect the migrations between the two releases' heads (NEW's history, as the rollback
    runs it); what stops it is one ``check/unavailable`` finding for ``migrations``."""
    t0 = time.monotonic()
    # Local import: compatcheck.migrations is heavy (SQLAlchemy, Alembic).
    from compatcheck.migrations.releases import release_head

    assert config.migrations is not None
    framework = config.migrations.framework
    old_head = release_head(old_loc, framework) if old_loc and _present(old_loc) else None
    new_head = release_head(new_loc, framework) if new_loc and _present(new_loc) else None
    if old_head is None or new_head is None or new_loc is None:
        return _not_inspected(
            "migrations not inspected: cannot determine both releases' migration heads "
            f"(old: {old_head or 'unknown'}, new: {new_head or 'unknown'})"
        )
    try:
        # Local import: compatcheck.migrations is heavy (SQLAlchemy, Alembic).
        from compatcheck.migrations import inspect_migrations
        from compatcheck.migrations.inspection import StartingSchema
    except ImportError:
        return _not_inspected("migrations not inspected: compatcheck.migrations is missing")
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
            start=StartingSchema(
                sql=config.migrations.base_sql, command=config.migrations.base_command
            ),
            framework=framework,
        )
    except UnavailableError as exc:
        return _not_inspected(str(exc), time.monotonic() - t0)
    took = time.monotonic() - t0
    progress.step(None, f"migrations inspected in {took:.2f} s")
    return list(result.findings), result.section, took


def _plain_unavailable(subject: str, reason: str) -> Finding:
    return Finding(UNAVAILABLE, subject, f"{reason}.", {"reason": reason})


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
        outcome = TargetCapture(config, target, ws, progress, threading.Event()).run()
    problems = outcome.problems
    if problems:
        who = f"{which.upper()} `{target.label}`"
        reason = problems[0].message.rstrip(".").removeprefix(f"{who}: ")
        tail = problems[0].evidence.get("log_tail") or ""
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        if last and "(log: " not in reason:
            reason += f" (log: {last})"
        raise UnavailableError(f"cannot record a snapshot of {who}: {reason}")
    return outcome.snapshot
