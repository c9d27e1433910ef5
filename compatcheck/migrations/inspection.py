"""The migrations inspection: can the database follow a rollback from NEW to OLD, and how?

:func:`inspect_migrations` reads the history through its source (as source, never importing it)
for the path and the static findings; then, unless ``static`` or the source cannot be executed,
runs a real round trip on a scratch database (:mod:`.roundtrip`), renders the downgrade SQL
offline, optionally counts what a live database would lose, and judges the two rollback plans
(:mod:`.plans`). It never knows which framework the folder belongs to.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import sqlalchemy as sa

from compatcheck.checks.availability import UNAVAILABLE as CHECK_UNAVAILABLE
from compatcheck.checks.migrations import DOWNGRADE_DESTRUCTIVE, MULTIPLE_HEADS, PATH_MISSING
from compatcheck.errors import InputError, UnavailableError, UsageError
from compatcheck.migrations import live
from compatcheck.migrations.checks import path_touches, rename_targets, static_findings
from compatcheck.migrations.findings import FindingSet, roundtrip_findings
from compatcheck.migrations.graph import (
    DowngradePath,
    History,
    UnknownRevision,
    downgrade_path,
    resolve_set,
    unexplained_heads,
)
from compatcheck.migrations.plans import (
    STATIC_ONLY,
    describe,
    judge_plans,
    new_data_finding,
    seeding_coverage,
)
from compatcheck.migrations.roundtrip import Runner, RunnerUnavailable, round_trip
from compatcheck.migrations.scratch import (
    Scratch,
    ScratchUnavailable,
    mask,
    one_line,
    scratch_database,
)
from compatcheck.migrations.section import (
    SKIPPED,
    UNAVAILABLE,
    MigrationsSection,
    RoundTrip,
)
from compatcheck.migrations.sources import Source, open_source
from compatcheck.migrations.sources.alembic.project import AlembicProject
from compatcheck.migrations.starting import NO_STARTING_SCHEMA, make_base
from compatcheck.migrations.starting import StartingSchema as StartingSchema  # re-exported
from compatcheck.migrations.template import FRESH_FAILURES, FreshDatabases
from compatcheck.migrations.walk import walk_on
from compatcheck.migrations.willfail import reconcile
from compatcheck.model import Finding, sort_findings
from compatcheck.targets import Workspace


@dataclass(frozen=True)
class MigrationsResult:
    """Findings plus the report's ``migrations`` section."""

    findings: tuple[Finding, ...]
    section: MigrationsSection


@dataclass(frozen=True)
class _Resolved:
    """OLD's and NEW's heads as the report names them, and the path (None: a finding says why)."""

    old_head: str | None
    new_head: str | None
    path: DowngradePath | None = None
    missing: Finding | None = None


def _resolve(history: History, old: str | None, new: str | None) -> _Resolved:
    def missing(
        subject: str,
        message: str,
        old_head: str | None,
        new_head: str | None,
        unknown: str | None = None,
    ) -> _Resolved:
        evidence: dict[str, object] = {"old": old, "new": new}
        if unknown is not None:
            # The closest revision ids: a mistyped or shortened id is the usual cause.
            close = difflib.get_close_matches(unknown, sorted(history.steps), n=3, cutoff=0.5)
            evidence["unknown"] = unknown
            evidence["close_matches"] = close
            if close:
                message += f" Close matches: {', '.join(f'`{c}`' for c in close)}."
        finding = Finding(PATH_MISSING, subject, message, evidence)
        return _Resolved(old_head, new_head, missing=finding)

    if new is None and len(history.heads) > 1 and not unexplained_heads(history):
        new = "heads"  # branches by design (branch_labels): NEW is all of them
    try:
        new_id = resolve_set(history, new or "head")
    except UnknownRevision:
        return missing(
            str(new), f"NEW's head `{new}` is not a revision of this history.", old, new, str(new)
        )
    except InputError:
        if new is not None:
            raise
        return missing("head", "NEW's head is ambiguous: the history has several heads.", old, new)
    assert new_id is not None
    # Known before OLD is resolved, so a report about an unknown OLD still names NEW's head.
    try:
        old_id = resolve_set(history, old)
    except UnknownRevision:
        message = f"OLD's head `{old}` is not a revision of this history."
        return missing(str(old), message, old, new_id, str(old))
    path = downgrade_path(history, new_id, old_id)
    if path is None:
        message = (
            f"OLD's head `{old_id}` is not an ancestor of NEW's head `{new_id}`: "
            "no downgrade leads from NEW to OLD."
        )
        return missing(new_id, message, old_id, new_id)
    return _Resolved(old_id, new_id, path)


def _multiple_heads(history: History) -> list[Finding]:
    """Several heads that the history's branch labels do not explain (two heads of one labelled
    branch, or of an unlabelled history): ``upgrade head`` fails until they are merged."""
    heads = sorted(unexplained_heads(history))
    if not heads:
        return []
    message = (
        f"The history has {len(heads)} heads no branch label tells apart "
        f"({', '.join(f'`{h}`' for h in heads)}): "
        f"{history.wording.upgrade_all} fails until they are merged."
    )
    return [Finding(MULTIPLE_HEADS, ",".join(heads), message, {"heads": heads})]


def _dialect(db_url: str | None) -> str:
    """The dialect the scratch database will have (SQL files are split by its rules)."""
    if db_url is None:
        return "sqlite"
    try:
        backend = sa.engine.make_url(db_url).get_backend_name()
    except (sa.exc.ArgumentError, ValueError):
        return "sqlite"  # the scratch database refuses the URL with its own message
    return {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}.get(backend, "sqlite")


def inspect_migrations(
    script_location: str | Path | AlembicProject,
    old: str | None,
    new: str | None,
    *,
    db_url: str | None = None,
    static: bool = False,
    use_existing_empty: bool = False,
    seed_sql: str | Path | None = None,
    live_db_url: str | None = None,
    progress: Callable[[str], None] | None = None,
    workspace: Workspace | None = None,
    start: StartingSchema = NO_STARTING_SCHEMA,
    framework: str = "auto",
    dialect: str | None = None,
) -> MigrationsResult:
    """Judge the rollback of the database from ``new`` to ``old``.

    ``old``/``new`` take revision ids, unique prefixes, ``head``, ``heads``, ``branch@head`` or
    comma-separated sets of those; ``new=None`` means the single head (all heads when branch
    labels explain them), ``old=None`` means an empty database (OLD had no migrations). A
    reference that matches nothing is a ``migrations/path-missing`` finding, a failing migration
    is a finding, and so is a server where no scratch database may be created (the round trip
    is then ``check/unavailable``; ``use_existing_empty`` runs it in the empty database the URL
    names instead); a missing folder is :class:`InputError`, an unreachable server
    :class:`UnavailableError`.

    The round trip imports the migration code on the path and runs it in this process, with its
    privileges: it must be trusted code. ``workspace`` owns the scratch database when given
    (``check``); otherwise the inspection has a workspace of its own.
    """
    if dialect is not None and db_url is not None and not static and dialect != _dialect(db_url):
        raise UsageError(
            f"--dialect {dialect} does not match the --db-url's database ({_dialect(db_url)})"
        )
    # Nothing runs and nothing names the database: the SQL source guesses from its files.
    guess = static and db_url is None
    engine = dialect or ("auto" if guess else _dialect(db_url))
    source = open_source(script_location, framework, engine)
    engine = getattr(source, "dialect", "sqlite" if engine == "auto" else engine)
    try:
        return _inspect(
            source,
            old,
            new,
            dialect=engine,
            db_url=db_url,
            static=static,
            use_existing_empty=use_existing_empty,
            seed_sql=seed_sql,
            live_db_url=live_db_url,
            progress=progress,
            workspace=workspace,
            start=start,
        )
    except (InputError, UsageError, UnavailableError):
        raise
    except Exception as exc:
        # A bug of ours in reading the history: the report is still written, naming it.
        if os.environ.get("COMPATCHECK_DEBUG"):
            raise
        return _internal_error(source, old, new, exc)
    finally:
        close = getattr(source, "close", None)  # a source that keeps a helper process
        if close is not None:
            close()


def _internal_error(
    source: Source, old: str | None, new: str | None, exc: Exception
) -> MigrationsResult:
    """The inspection's own failure outside the round trip, as a ``check/unavailable`` finding
    (exit 3) in a report that is still written."""
    error = mask(one_line(exc)) or type(exc).__name__
    message = (
        f"The migrations could not be inspected: internal error: {type(exc).__name__}: {error} "
        "(set COMPATCHECK_DEBUG=1 and report it)."
    )
    finding = Finding(
        CHECK_UNAVAILABLE,
        "migrations",
        message,
        {"stage": "static analysis (internal error)", "error": f"{type(exc).__name__}: {error}"},
    )
    section = MigrationsSection(
        old_head=old,
        new_head=new,
        downgrade_path=None,
        framework=source.framework,
        mode="static",
        static_reason="internal error",
    )
    plans, recommended = judge_plans([finding], static="internal error")
    return MigrationsResult((finding,), replace(section, plans=plans, recommended=recommended))


def _inspect(
    source: Source,
    old: str | None,
    new: str | None,
    *,
    dialect: str,
    db_url: str | None,
    static: bool,
    use_existing_empty: bool,
    seed_sql: str | Path | None,
    live_db_url: str | None,
    progress: Callable[[str], None] | None,
    workspace: Workspace | None,
    start: StartingSchema,
) -> MigrationsResult:
    history = source.history()
    # Why nothing is executed, in the JSON too: the reader must know it was asked for.
    why_static = source.not_executable or ("--static was asked for" if static else None)
    found = _resolve(history, old, new)
    section = MigrationsSection(
        old_head=found.old_head,
        new_head=found.new_head,
        framework=source.framework,
        heads=tuple(sorted(history.heads)),
        mode="static" if why_static else "roundtrip",
        static_reason=why_static,
        roundtrip=RoundTrip(SKIPPED, why=f"{STATIC_ONLY}: {why_static}") if why_static else None,
    )
    path = found.path
    if path is None:
        assert found.missing is not None
        findings = [*_multiple_heads(history), found.missing]
        plans, recommended = judge_plans(findings, static=why_static)
        section = replace(section, plans=plans, recommended=recommended, downgrade_path=None)
        return MigrationsResult(tuple(sort_findings(findings)), section)
    section = replace(
        section, downgrade_path=path.revisions, skipped_by_framework=path.skipped_by_framework
    )
    collected = FindingSet(
        [
            *_multiple_heads(history),
            # SQLite (PRAGMA foreign_keys off by default) drops a table still referenced.
            *static_findings(history, path, dialect),
            *source.notes(path.revisions),
        ]
    )
    if why_static is None and path.revisions:
        section = _dynamic(
            collected,
            source,
            history,
            path,
            section,
            db_url=db_url,
            use_existing_empty=use_existing_empty,
            seed_sql=Path(seed_sql) if seed_sql is not None else None,
            say=progress or (lambda _msg: None),
            workspace=workspace,
            start=start,
        )
    # The walk after a failed downgrade needs fresh scratch databases: none on the user's own.
    reconcile(collected, section.roundtrip, path, walked=not use_existing_empty)
    if live_db_url is not None:
        for f in source.live_findings(live_db_url):
            collected.add(f.kind, f.subject, f.message, f.evidence)
        section = _live(collected, live_db_url, section)
    result = sort_findings(collected.findings())
    coverage = seeding_coverage(section.roundtrip)
    plans, recommended = judge_plans(result, static=why_static, coverage=coverage)
    removal = new_data_finding(plans, path.new)
    if removal is not None:
        result = sort_findings([*result, removal])
    return MigrationsResult(tuple(result), replace(section, plans=plans, recommended=recommended))


def _dynamic(
    found: FindingSet,
    source: Source,
    history: History,
    path: DowngradePath,
    section: MigrationsSection,
    *,
    db_url: str | None,
    use_existing_empty: bool,
    seed_sql: Path | None,
    say: Callable[[str], None],
    workspace: Workspace | None,
    start: StartingSchema,
) -> MigrationsSection:
    """The round trip on a scratch database; no right to create one is ``check/unavailable``,
    and so is any other failure of the stage (an unreachable server, the application's import
    error in a place no step names, an internal error): the static findings, the path and the
    plans are still reported."""
    try:
        with scratch_database(
            db_url, workspace=workspace, use_existing_empty=use_existing_empty, progress=say
        ) as scratch:
            # The walk after a failed downgrade needs fresh scratch databases: none on the
            # user's own.
            fresh = None
            if not use_existing_empty:
                fresh = FreshDatabases(db_url, workspace, path.old, say)
            return _round_trip(
                found, source, history, path, section, scratch, seed_sql, say, start, fresh
            )
    except ScratchUnavailable as exc:
        hint = (
            "; to run it in the empty database the URL names instead, pass "
            "--use-existing-empty-database"
            if exc.privilege
            else ""
        )
        found.add(
            CHECK_UNAVAILABLE,
            "migrations",
            f"The migration round trip did not run: {exc}{hint}.",
            {"stage": "scratch database", "error": str(exc), "privilege": exc.privilege},
        )
        return replace(section, roundtrip=RoundTrip(UNAVAILABLE, error=str(exc)))
    except InputError:
        raise
    except Exception as exc:
        error = mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        stage = "round trip" if isinstance(exc, UnavailableError) else "round trip (internal error)"
        found.add(
            "check/unavailable",
            "migrations",
            f"The migration round trip did not run: {stage}: {error}.",
            {"stage": stage, "error": error},
        )
        return replace(section, roundtrip=RoundTrip(UNAVAILABLE, error=error))


def _round_trip(
    found: FindingSet,
    source: Source,
    history: History,
    path: DowngradePath,
    section: MigrationsSection,
    scratch: Scratch,
    seed_sql: Path | None,
    say: Callable[[str], None],
    start: StartingSchema,
    fresh: FreshDatabases | None = None,
) -> MigrationsSection:
    database = scratch.display if not scratch.owned else f"scratch ({scratch.dialect})"
    section = replace(section, engine=scratch.dialect, database=database)
    try:
        conn = scratch.engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        raise UnavailableError(f"cannot connect to {scratch.display}: {one_line(exc)}") from exc
    with conn:
        try:
            runner = source.runner(scratch, conn)
        except RunnerUnavailable as exc:
            found.add(CHECK_UNAVAILABLE, "migrations", str(exc), {"error": exc.error})
            return replace(section, roundtrip=RoundTrip(UNAVAILABLE, error=exc.error))
        # Done with this runner before any fresh database: its helper process serves them.
        try:
            at_old = partial(fresh.snapshot, scratch, conn, runner) if fresh else None
            trip = _run_trip(runner, history, path, scratch, conn, seed_sql, say, start, at_old)
            say("rendering the downgrade SQL offline")
            sql, online = runner.offline_sql(path.revisions, path.new)
        finally:
            runner.close()
        if fresh is not None:
            rerun = partial(_rerun, source, history, path, start, say, fresh)
            trip = _again_unseeded(trip, history, say, rerun)
        failure = trip.failure
        if fresh is not None and failure is not None and failure.stage == "downgrade":
            passed: dict[str, str] = {}
            later = walk_on(source, history, path, failure.revision, fresh, start, say, passed)
            trip = replace(trip, later_failures=tuple(later), passed_over=passed)
        roundtrip_findings(found, history, path, trip, scratch.dialect)
    return replace(section, roundtrip=trip, offline_sql=sql, online_only=online)


def _again_unseeded(
    trip: RoundTrip,
    history: History,
    say: Callable[[str], None],
    rerun: Callable[[Mapping[str, str] | None], RoundTrip],
) -> RoundTrip:
    """When the rows compatcheck generated made a step of the upgrade to NEW fail (a data
    migration that expects the application's own data), the round trip again on a fresh
    database: first without rows in the tables that step's upgrade touches (the data check keeps
    the rest), then, if a step still fails, without any rows. When no fresh database can be made,
    the seeded trip stands and says why it was not rerun. ``rerun`` makes the trip again on a
    fresh database without rows in the tables it is given (None: without any rows)."""
    failure = trip.failure
    if (
        failure is None
        or failure.stage != "upgrade to NEW"
        or failure.revision is None  # before any step: not the rows' doing
        or not trip.seeded
    ):
        return trip
    why = f"its rows made `{failure.revision}`'s upgrade fail ({failure.error})"
    touched = path_touches(history, [failure.revision])[failure.revision]["up"]
    skip = {t: why for t in trip.seeded if t in touched}
    attempts: list[Mapping[str, str] | None] = [skip, None] if skip else [None]
    for unseeded_tables in attempts:
        say(
            f"the seeded rows made `{failure.revision}` fail: again on a fresh database, "
            + (f"without rows in {', '.join(sorted(skip))}" if unseeded_tables else "unseeded")
        )
        try:
            retry = rerun(unseeded_tables)
        except FRESH_FAILURES as exc:
            why_not = (
                f"not rerun without compatcheck's rows: no fresh scratch database: {one_line(exc)}"
            )
            return replace(trip, failure=replace(failure, error=f"{failure.error} ({why_not})"))
        again = retry.failure
        if again is None or again.stage != "upgrade to NEW" or again.revision is None:
            if unseeded_tables is not None:
                return retry
            break
        if unseeded_tables is None and again.revision == failure.revision:
            # The rows were not the cause: the step fails without them too (a step that cannot
            # run at all, e.g. a goose Go migration). The seeded trip stands.
            return trip
    note = (
        f"rows compatcheck generated made `{failure.revision}`'s upgrade fail "
        f"({failure.error}); the round trip ran again without seeded rows, so no "
        "data check was made"
    )
    return replace(retry, unseeded=note)


def _rerun(
    source: Source,
    history: History,
    path: DowngradePath,
    start: StartingSchema,
    say: Callable[[str], None],
    fresh: FreshDatabases,
    unseeded_tables: Mapping[str, str] | None,
) -> RoundTrip:
    with fresh.open(source) as again:
        # A copy is at OLD already (checked when it was opened): no upgrade to OLD again.
        return _run_trip(
            again.runner,
            history,
            replace(path, old=None) if again.at_old else path,
            again.scratch,
            again.conn,
            None,
            say,
            NO_STARTING_SCHEMA if again.at_old else start,
            seed=unseeded_tables is not None,
            unseeded_tables=unseeded_tables,
        )


def _run_trip(
    runner: Runner,
    history: History,
    path: DowngradePath,
    scratch: Scratch,
    conn: sa.Connection,
    seed_sql: Path | None,
    say: Callable[[str], None],
    start: StartingSchema,
    at_old: Callable[[], None] | None = None,
    *,
    seed: bool = True,
    unseeded_tables: Mapping[str, str] | None = None,
) -> RoundTrip:
    return round_trip(
        runner,
        path.old,
        path.new,
        path.revisions,
        seed_sql=seed_sql,
        renamed=rename_targets(history, path),
        say=say,
        base=make_base(start, scratch, conn, runner) if start else None,
        seed=seed,
        unseeded_tables=unseeded_tables,
        at_old=at_old,
    )


def _live(found: FindingSet, url: str, section: MigrationsSection) -> MigrationsSection:
    """Read-only counts on the live database of what each destructive downgrade removes."""
    objects: dict[str, list[str]] = {}
    for f in found.findings():
        if f.kind == DOWNGRADE_DESTRUCTIVE:
            ev = f.evidence
            objects[f.subject] = [*ev.get("tables", []), *ev.get("columns", [])]
    counts = live.live_counts(url, [o for objs in objects.values() for o in objs])
    for rev, objs in objects.items():
        evidence = {"live_counts": {o: counts[o] for o in objs}}
        found.add(DOWNGRADE_DESTRUCTIVE, rev, "", evidence)
    return replace(section, data_at_risk=tuple(describe(o, counts[o]) for o in sorted(counts)))
