"""Migration reversibility: can the database follow a rollback from NEW to OLD, and how?

Entry point: :func:`inspect_migrations`. It reads the Alembic history as source (never importing
it) for the path and the static findings; then, unless ``static`` or the folder has no ``env.py``,
runs a real round trip on a scratch database (:mod:`.roundtrip`), renders the downgrade SQL
offline, optionally counts what a live database would lose, and judges the two rollback plans
(:mod:`.plans`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from compatcheck.errors import InputError, UnavailableError
from compatcheck.migrations import live
from compatcheck.migrations.checks import path_touches, rename_targets, static_findings
from compatcheck.migrations.graph import (
    DowngradePath,
    History,
    UnknownRevision,
    downgrade_path,
    load_history,
    resolve,
)
from compatcheck.migrations.plans import STATIC_ONLY, judge_plans, new_data_finding
from compatcheck.migrations.roundtrip import Alembic, Observation, offline_sql, round_trip
from compatcheck.migrations.scratch import (
    Scratch,
    ScratchUnavailable,
    one_line,
    scratch_database,
)
from compatcheck.model import Finding, sort_findings

if TYPE_CHECKING:
    from compatcheck.targets import Workspace

__all__ = ["MigrationsResult", "inspect_migrations"]


@dataclass(frozen=True)
class MigrationsResult:
    """Findings plus the report's ``migrations`` section (DESIGN.md keys, and extras)."""

    findings: tuple[Finding, ...]
    section: dict[str, Any]


def _locate(script_location: str | Path) -> tuple[Path, Path, bool]:
    """(script location, versions folder, has env.py); InputError naming the folder otherwise."""
    loc = Path(script_location)
    if not loc.is_dir():
        raise InputError(f"migrations folder {loc}: no such directory")
    if (loc / "env.py").is_file():
        versions = loc / "versions"
        if not versions.is_dir():
            raise InputError(f"migrations folder {loc}: has env.py but no versions/ folder")
        return loc, versions, True
    if not any(p.suffix == ".py" for p in loc.iterdir()):
        raise InputError(
            f"migrations folder {loc}: not an Alembic script location (env.py + versions/) "
            "nor a versions folder"
        )
    return loc, loc, False


class _Collector:
    """Dynamic findings keyed by (kind, subject): one finding per revision, evidence merged."""

    def __init__(self, static: list[Finding]) -> None:
        self.items: dict[tuple[str, str], Finding] = {(f.kind, f.subject): f for f in static}
        self.order = [(f.kind, f.subject) for f in static]

    def add(self, kind: str, subject: str, message: str, evidence: dict[str, Any]) -> None:
        key = (kind, subject)
        if key in self.items:
            old = self.items[key]
            merged = dict(old.evidence)
            for k, v in evidence.items():
                if isinstance(v, list) and isinstance(merged.get(k), list):
                    merged[k] = [*merged[k], *v]
                elif isinstance(v, dict) and isinstance(merged.get(k), dict):
                    merged[k] = {**merged[k], **v}
                else:
                    merged.setdefault(k, v)
            self.items[key] = replace(old, evidence=merged)
            return
        self.items[key] = Finding(kind, subject, message, evidence)
        self.order.append(key)

    def has(self, kind: str, subject: str) -> bool:
        return (kind, subject) in self.items

    def findings(self) -> list[Finding]:
        return [self.items[k] for k in self.order]


def _attributor(history: History, path: DowngradePath) -> Callable[[str, str], str]:
    """``attribute(obj, extra)``: the revision on the path whose code touches ``obj`` (downgrade
    first), else NEW's head. What each revision touches is computed once per round trip."""
    touches = path_touches(history, path.revisions)

    def attribute(obj: str, extra: str = "") -> str:
        words = [obj.split(" ")[0].lower(), *re.findall(r"[A-Za-z_][\w.]*", extra.lower())]
        table = words[0].split(".")[0]
        for candidates in (words, [table]):
            for side in ("down", "up"):
                for rev in path.revisions:
                    if any(w in touches[rev][side] for w in candidates):
                        return rev
        return path.revisions[0]

    return attribute


def _dynamic(
    coll: _Collector,
    history: History,
    path: DowngradePath,
    obs: Observation,
    engine: str,
) -> None:
    def ticks(d: dict[str, int]) -> str:
        return ", ".join(f"`{k}`: {v}" for k, v in sorted(d.items()))

    if obs.failure is not None:
        stage, rev, err = obs.failure
        if stage == "downgrade" and rev is not None:
            if coll.has("migrations/downgrade-not-implemented", rev):
                coll.add("migrations/downgrade-not-implemented", rev, "", {"error": err})
            else:
                coll.add(
                    "migrations/downgrade-failed",
                    rev,
                    f"The downgrade of `{rev}` failed on {engine}: {err}",
                    {"error": err, "engine": engine},
                )
        elif stage == "re-upgrade" and rev is not None:
            coll.add(
                "migrations/roundtrip-mismatch",
                rev,
                f"Upgrading `{rev}` again after the downgrade failed on {engine}: {err}",
                {"reupgrade_error": err, "engine": engine},
            )
        else:
            coll.add(
                "check/unavailable",
                rev or "migrations",
                f"The migration round trip could not run on {engine}: {stage} failed"
                + (f" at `{rev}`" if rev else "")
                + f": {err}",
                {"stage": stage, "error": err, "engine": engine},
            )
    attribute = _attributor(history, path)

    def diffs_by_revision(diffs: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        for diff in diffs:
            out.setdefault(attribute(diff["object"], diff["change"]), []).append(diff)
        return out

    def counts_by_revision(counts: dict[str, int]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for obj, n in counts.items():
            out.setdefault(attribute(obj, ""), {})[obj] = n
        return out

    def listed(diffs: list[dict[str, str]]) -> str:
        return "; ".join(f"`{d['object']}` {d['change']}" for d in diffs)

    for rev, diffs in diffs_by_revision(obs.mismatch).items():
        coll.add(
            "migrations/roundtrip-mismatch",
            rev,
            f"After the downgrade the schema differs from OLD's on {engine}: {listed(diffs)}.",
            {"differences": diffs, "engine": engine},
        )
    for rev, diffs in diffs_by_revision(obs.reupgrade_mismatch).items():
        coll.add(
            "migrations/roundtrip-mismatch",
            rev,
            f"Upgrading again after the downgrade gives a schema that differs from NEW's on "
            f"{engine}: {listed(diffs)}.",
            {"reupgrade_differences": diffs, "engine": engine},
        )
    for rev, items in counts_by_revision(obs.old_lost).items():
        coll.add(
            "migrations/data-lost",
            rev,
            f"The downgrade lost data OLD wrote (rows or values changed or gone): {ticks(items)}.",
            {"lost": items, "engine": engine},
        )
    for rev, items in counts_by_revision(obs.new_removed).items():
        coll.add(
            "migrations/downgrade-destructive",
            rev,
            f"The downgrade of `{rev}` removed data written since: {ticks(items)}.",
            {"removed_in_roundtrip": items},
        )


def inspect_migrations(
    script_location: str | Path,
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
) -> MigrationsResult:
    """Judge the rollback of the database from ``new`` to ``old``.

    ``old``/``new`` take revision ids, unique prefixes, ``head`` or ``branch@head``; ``new=None``
    means the single head, ``old=None`` means an empty database (OLD had no migrations). A
    reference that matches nothing is a ``migrations/path-missing`` finding, a failing migration
    is a finding, and so is a server where no scratch database may be created (the round trip
    is then ``check/unavailable``; ``use_existing_empty`` runs it in the empty database the URL
    names instead); a missing folder is :class:`InputError`, an unreachable server
    :class:`UnavailableError`.

    The round trip imports ``env.py`` and every revision on the path and runs them in this
    process, with its privileges: they must be trusted code. ``workspace`` owns the scratch
    database when given (``check``); otherwise the inspection has a workspace of its own.
    """
    say = progress or (lambda _msg: None)
    loc, versions, has_env = _locate(script_location)
    history = load_history(versions)
    findings: list[Finding] = []
    heads = sorted(history.heads)
    if len(heads) > 1:
        findings.append(
            Finding(
                "migrations/multiple-heads",
                ",".join(heads),
                f"The history has {len(heads)} heads ({', '.join(f'`{h}`' for h in heads)}): "
                "`alembic upgrade head` fails until they are merged.",
                {"heads": heads},
            )
        )
    section: dict[str, Any] = {
        "old_head": old,
        "new_head": new,
        "downgrade_path": [],
        "plans": [],
        "heads": heads,
        "mode": "static" if static or not has_env else "roundtrip",
    }
    # Why nothing is executed, in the JSON too: the reader must know it was asked for.
    why_static = (
        "no env.py: a bare versions folder"
        if not has_env
        else "--static was asked for"
        if static
        else None
    )
    if why_static is not None:
        section["static_reason"] = why_static
        section["roundtrip"] = {"status": "skipped", "why": f"{STATIC_ONLY}: {why_static}"}

    def missing(subject: str, message: str) -> MigrationsResult:
        findings.append(
            Finding("migrations/path-missing", subject, message, {"old": old, "new": new})
        )
        plans, recommended = judge_plans(findings, static=why_static)
        section.update(plans=plans, recommended=recommended, downgrade_path=None)
        return MigrationsResult(tuple(sort_findings(findings)), section)

    try:
        new_id = resolve(history, new or "head")
    except UnknownRevision:
        return missing(str(new), f"NEW's head `{new}` is not a revision of this history.")
    except InputError:
        if new is not None:
            raise
        return missing("head", "NEW's head is ambiguous: the history has several heads.")
    # Known before OLD is resolved, so a report about an unknown OLD still names NEW's head.
    section["new_head"] = new_id
    try:
        old_id = resolve(history, old)
    except UnknownRevision:
        return missing(str(old), f"OLD's head `{old}` is not a revision of this history.")
    assert new_id is not None
    section.update(old_head=old_id, new_head=new_id)
    path = downgrade_path(history, new_id, old_id)
    if path is None:
        return missing(
            new_id,
            f"OLD's head `{old_id}` is not an ancestor of NEW's head `{new_id}`: "
            "no downgrade leads from NEW to OLD.",
        )
    section["downgrade_path"] = list(path.revisions)
    section["skipped_by_alembic"] = list(path.skipped_by_alembic)
    coll = _Collector(findings + static_findings(history, path))

    if section["mode"] == "roundtrip" and path.revisions:
        _run_dynamic(
            coll,
            history,
            path,
            loc,
            section,
            db_url=db_url,
            use_existing_empty=use_existing_empty,
            seed_sql=Path(seed_sql) if seed_sql is not None else None,
            say=say,
            workspace=workspace,
        )
    if live_db_url is not None:
        _live(coll, live_db_url, section)
    result = sort_findings(coll.findings())
    plans, recommended = judge_plans(result, static=why_static)
    removal = new_data_finding(plans, new_id)
    if removal is not None:
        result = sort_findings([*result, removal])
    section.update(plans=plans, recommended=recommended)
    return MigrationsResult(tuple(result), section)


def _run_dynamic(
    coll: _Collector,
    history: History,
    path: DowngradePath,
    loc: Path,
    section: dict[str, Any],
    *,
    db_url: str | None,
    use_existing_empty: bool,
    seed_sql: Path | None,
    say: Callable[[str], None],
    workspace: Workspace | None,
) -> None:
    try:
        with scratch_database(
            db_url, workspace=workspace, use_existing_empty=use_existing_empty, progress=say
        ) as scratch:
            _round_trip(coll, history, path, loc, section, scratch, seed_sql, say)
    except ScratchUnavailable as exc:
        hint = (
            "; to run it in the empty database the URL names instead, pass "
            "--use-existing-empty-database"
            if exc.privilege
            else ""
        )
        coll.add(
            "check/unavailable",
            "migrations",
            f"The migration round trip did not run: {exc}{hint}.",
            {"stage": "scratch database", "error": str(exc), "privilege": exc.privilege},
        )
        section["roundtrip"] = {"status": "unavailable", "error": str(exc)}


def _round_trip(
    coll: _Collector,
    history: History,
    path: DowngradePath,
    loc: Path,
    section: dict[str, Any],
    scratch: Scratch,
    seed_sql: Path | None,
    say: Callable[[str], None],
) -> None:
    section["engine"] = scratch.dialect
    section["database"] = scratch.display if not scratch.owned else f"scratch ({scratch.dialect})"
    try:
        conn = scratch.engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        raise UnavailableError(f"cannot connect to {scratch.display}: {one_line(exc)}") from exc
    with conn:
        try:
            alembic = Alembic(loc, scratch, conn)
        except Exception as exc:
            coll.add(
                "check/unavailable",
                "migrations",
                f"Alembic could not load the scripts in `{loc}`: {one_line(exc)}",
                {"error": one_line(exc)},
            )
            section["roundtrip"] = {"status": "unavailable", "error": one_line(exc)}
            return
        obs = round_trip(
            alembic,
            path.old,
            path.new,
            list(path.revisions),
            seed_sql=seed_sql,
            renamed=rename_targets(history, path),
            say=say,
        )
        _dynamic(coll, history, path, obs, scratch.dialect)
        section["roundtrip"] = {
            "status": obs.status,
            "failure": None
            if obs.failure is None
            else dict(zip(("stage", "revision", "error"), obs.failure, strict=True)),
            "schema_differences": obs.mismatch,
            "reupgrade_differences": obs.reupgrade_mismatch,
            "old_data_lost": obs.old_lost,
            "new_data_removed": obs.new_removed,
            "seeded": obs.seeded,
            "seed_errors": obs.seed_errors,
            "timings": obs.timings,
        }
        say("rendering the downgrade SQL offline")
        sql, online = offline_sql(alembic, list(path.revisions), path.new)
        section["offline_sql"] = sql
        section["online_only"] = online


def _live(coll: _Collector, url: str, section: dict[str, Any]) -> None:
    objects: dict[str, list[str]] = {}
    for f in coll.findings():
        if f.kind == "migrations/downgrade-destructive":
            ev = f.evidence
            objects[f.subject] = [*ev.get("tables", []), *ev.get("columns", [])]
    counts = live.live_counts(url, [o for objs in objects.values() for o in objs])
    section["data_at_risk"] = [live.describe(o, counts[o]) for o in sorted(counts)]
    for rev, objs in objects.items():
        coll.add(
            "migrations/downgrade-destructive",
            rev,
            "",
            {"live_counts": {o: counts[o] for o in objs}},
        )
