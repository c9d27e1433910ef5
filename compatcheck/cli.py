"""The command line: the only module that prints to the terminal and chooses an exit code.

Exit codes (DESIGN.md): 0 go · 1 no-go · 2 usage/config error · 3 could not evaluate.
Every error a user can cause ends in one line on stderr, never a traceback; set
``COMPATCHECK_DEBUG=1`` to see the traceback of an internal error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from compatcheck import __version__
from compatcheck.errors import CompatcheckError, UnavailableError, UsageError
from compatcheck.interrupts import exit_status, sigterm_as_interrupt
from compatcheck.masking import mask_secrets
from compatcheck.serve import cmd_serve

if TYPE_CHECKING:
    from compatcheck.migrations.inspection import StartingSchema
    from compatcheck.migrations.sources.alembic import AlembicProject

EXIT_GO, EXIT_NO_GO, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
REPORT_FORMATS = ("text", "json", "markdown", "junit", "sarif", "github")


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (with the usual exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_report_options(p: argparse.ArgumentParser, *, consumers: bool = True) -> None:
    g = p.add_argument_group("report")
    g.add_argument("--format", choices=REPORT_FORMATS, default="text", help="report format")
    g.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE")
    g.add_argument(
        "--policy", action="append", default=[], metavar="FILE", help="policy file (repeatable)"
    )
    g.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        default="error",
        help="lowest severity that makes the verdict no-go (default: error)",
    )
    g.add_argument(
        "--direction",
        choices=("rollback", "deploy"),
        default="rollback",
        help="rollback judges NEW → OLD (default); deploy judges OLD → NEW",
    )
    g.add_argument("--no-color", action="store_true", help="never colour the text report")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    if consumers:
        g.add_argument(
            "--consumers",
            action="append",
            default=[],
            metavar="PATH",
            help="rule files, dashboards or folders whose breakage to name (repeatable)",
        )
        g.add_argument(
            "--emit-bridge-rules",
            metavar="FILE",
            help="write a Prometheus rule file that bridges renamed metrics",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="compatcheck",
        description="Is rolling back from NEW to OLD safe, and if not, exactly what breaks?",
    )
    parser.add_argument("--version", action="version", version=f"compatcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("diff", help="compare two versions: URLs, exposition files or snapshots")
    p.add_argument("old", metavar="OLD", help="the release rolled back to")
    p.add_argument("new", metavar="NEW", help="the release running now")
    p.add_argument("--old-label", default="", help="label shown for OLD")
    p.add_argument("--new-label", default="", help="label shown for NEW")
    p.add_argument("--timeout", type=float, default=10.0, help="scrape timeout in seconds")
    p.add_argument(
        "--snapshot-dir",
        metavar="DIR|URL",
        help="stored release contracts: OLD/NEW may then be versions of --service",
    )
    p.add_argument("--service", metavar="NAME", help="service whose stored versions OLD/NEW name")
    _add_report_options(p)

    p = sub.add_parser("check", help="launch OLD and NEW from compatcheck.yaml, capture, compare")
    p.add_argument("-c", "--config", default="compatcheck.yaml", metavar="FILE")
    p.add_argument(
        "--snapshot-dir",
        metavar="DIR|URL",
        help="store of release contracts for `stored:` targets (overrides `snapshot_dir`)",
    )
    _add_report_options(p)

    p = sub.add_parser(
        "snapshot", help="record a release's contract (URL, exposition, -c --target)"
    )
    p.add_argument("source", nargs="?", metavar="SOURCE", help="URL or exposition file")
    p.add_argument("-c", "--config", metavar="FILE", help="take the target from this config")
    p.add_argument("--target", choices=("old", "new"), help="which config target to record")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="snapshot file to write")
    p.add_argument("--label", default="", help="version label stored in the snapshot")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="record a contract without metric families (refused by default: it proves nothing)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    p = sub.add_parser("migrations", help="judge the Alembic migrations between two heads")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--script-location",
        metavar="DIR",
        help="Alembic script location (env.py + versions/) or a bare versions folder",
    )
    where.add_argument(
        "--config",
        metavar="INI",
        help="the project's alembic.ini, read as `alembic -c INI` reads it (script_location, "
        "version_locations; env.py gets it as config.config_file_name)",
    )
    p.add_argument(
        "--name", default="alembic", metavar="SECTION", help="the ini section (alembic -n)"
    )
    p.add_argument(
        "-x",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument for env.py, as `alembic -x` (repeatable)",
    )
    p.add_argument(
        "--python",
        metavar="PATH",
        help="run env.py and the revisions in this interpreter (the application's virtual "
        "environment); default: compatcheck's own",
    )
    p.add_argument(
        "--base-sql",
        metavar="FILE",
        help="SQL run on the empty scratch database first: the schema before the first revision",
    )
    p.add_argument(
        "--base-command",
        metavar="CMD",
        help="command that creates the schema before the first revision on the scratch "
        "database (`{database_url}` is replaced by its URL), e.g. the app's create_all script",
    )
    p.add_argument("--old", required=True, metavar="REV", help="OLD's head (id, prefix, head)")
    p.add_argument("--new", metavar="REV", help="NEW's head (default: the single head)")
    p.add_argument(
        "--db-url",
        metavar="URL",
        help="server for the scratch database (default: SQLite); also env:VAR or file:PATH",
    )
    p.add_argument("--static", action="store_true", help="read the scripts as source only")
    p.add_argument(
        "--use-existing-empty-database",
        action="store_true",
        help="without the right to create a scratch database, run in the one --db-url names "
        "(refused unless empty; everything created is dropped)",
    )
    p.add_argument("--seed-sql", metavar="FILE", help="extra rows to seed before upgrading")
    p.add_argument(
        "--live-db-url",
        metavar="env:VAR|file:PATH",
        help="count (read-only) the data a downgrade would destroy on this database; its URL "
        "from an environment variable or a file, never the command line",
    )
    _add_report_options(p, consumers=False)

    p = sub.add_parser(
        "cleanup",
        help="remove what dead compatcheck runs left (processes, temp, scratch DBs)",
        description="Remove what compatcheck runs that no longer exist left behind: their "
        "processes, their temp folders, and their scratch databases on the servers named by "
        "--db-url and by the config file's `migrations.database`. What a live run owns is kept.",
    )
    p.add_argument(
        "--db-url",
        action="append",
        default=[],
        metavar="URL",
        help="a server to look for scratch databases on (repeatable; also env:VAR or file:PATH)",
    )
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="also the server of this config's `migrations.database` "
        "(default: ./compatcheck.yaml when it exists)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p.add_argument("-q", "--quiet", action="store_true", help="only the summary line")

    p = sub.add_parser("rules", help="print the finding catalogue")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")

    p = sub.add_parser("explain", help="explain one finding kind")
    p.add_argument("kind", metavar="KIND")

    from compatcheck.serve import add_serve_parser

    add_serve_parser(sub)
    return parser


# -- commands ---------------------------------------------------------------------------------


def _cmd_rules(args: argparse.Namespace, out: IO[str]) -> int:
    import json

    from compatcheck.catalogue import load_catalogue, render_markdown_table

    cat = load_catalogue()
    if args.format == "json":
        out.write(json.dumps([r.to_json() for r in cat.values()], indent=2) + "\n")
    elif args.format == "markdown":
        out.write(render_markdown_table(cat))
    else:
        width = max(len(k) for k in cat)
        for rule in cat.values():
            out.write(f"{rule.kind:<{width}}  {rule.severity:<7}  {rule.summary}\n")
    return EXIT_GO


def _cmd_explain(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.catalogue import get_rule

    rule = get_rule(args.kind)
    sev = rule.severity + (
        f" ({rule.without_consumers} when nothing uses it)" if rule.without_consumers else ""
    )
    out.write(
        f"{rule.kind}  [default severity: {sev}]\n\n"
        f"{rule.summary}\n\n"
        f"Why it matters for a rollback:\n  {rule.why}\n\n"
        f"Example:\n  {rule.example}\n\n"
        f"Fix:\n  {rule.fix}\n"
    )
    return EXIT_GO


def _options(args: argparse.Namespace, **extra: Any) -> Any:
    from compatcheck.engine import EvaluateOptions
    from compatcheck.policy import load_policy

    return EvaluateOptions(
        direction=args.direction,
        policy=load_policy(args.policy),
        consumers=tuple(getattr(args, "consumers", ()) or ()),
        fail_on=args.fail_on,
        **extra,
    )


def _cmd_diff(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.engine import evaluate

    options = _options(args)  # policy errors surface before any scrape
    store = None
    if args.snapshot_dir:
        from compatcheck.store import SnapshotStore

        store = SnapshotStore(args.snapshot_dir)
    old = _resolve(args.old, args.old_label, args, store)
    new = _resolve(args.new, args.new_label, args, store)
    local = [a for a in (args.new, args.old) if Path(a).is_file()]
    anchor = local[0] if local else ""
    report = evaluate(old, new, dataclasses.replace(options, anchor=anchor))
    _write_bridge(args, report, old, new)
    return _finish(args, report, out)


def _cmd_check(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.capture import run_check
    from compatcheck.config import load_config
    from compatcheck.progress import Progress

    config = load_config(args.config)
    if args.snapshot_dir:
        config = dataclasses.replace(config, snapshot_dir=args.snapshot_dir)
    args.policy = [*args.policy, *map(str, config.policy)]
    args.consumers = [*args.consumers, *(str(p) for p in config.consumers)]
    options = _options(args)  # policy and consumer errors surface before anything starts
    progress = Progress(quiet=args.quiet)
    mig = config.migrations
    _sweep_stale([mig.database] if mig is not None else [])
    result = run_check(config, progress=progress)
    progress.step(None, "comparing")
    report = result.evaluate(dataclasses.replace(options, anchor=args.config))
    _write_bridge(args, report, result.old, result.new)
    return _finish(args, report, out)


def _cmd_migrations(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.engine import evaluate
    from compatcheck.migrations import inspect_migrations
    from compatcheck.progress import Progress
    from compatcheck.snapshot import Snapshot

    options = _options(args)
    db_url = _url_argument(args.db_url, "--db-url")
    live_db_url = _url_argument(args.live_db_url, "--live-db-url", literal=False)
    if args.use_existing_empty_database and db_url is None:
        raise UsageError("--use-existing-empty-database needs --db-url naming that database")
    project = _alembic_project(args)
    start = _starting_schema(args)
    progress = Progress(quiet=args.quiet)
    if not args.static:
        _sweep_stale(
            [db_url] if db_url is not None and not args.use_existing_empty_database else []
        )
    result = inspect_migrations(
        project,
        args.old,
        args.new,
        db_url=db_url,
        static=args.static,
        use_existing_empty=args.use_existing_empty_database,
        seed_sql=args.seed_sql,
        live_db_url=live_db_url,
        progress=progress,
        start=start,
    )
    section = result.section
    source = project.shown
    old = Snapshot(label=str(section.old_head or args.old), source=source)
    new = Snapshot(label=str(section.new_head or args.new or "head"), source=source)
    report = evaluate(
        old,
        new,
        dataclasses.replace(options, extra_findings=result.findings, migrations=section),
    )
    return _finish(args, report, out)


def _alembic_project(args: argparse.Namespace) -> AlembicProject:
    """What ``alembic`` would be given: ``--config`` (+ ``--name``, ``-x``) or
    ``--script-location``, and the interpreter the revisions run in."""
    from compatcheck.migrations.sources.alembic import AlembicProject

    python = None
    if args.python is not None:
        python = shutil.which(args.python)
        if python is None:
            raise UsageError(f"--python {args.python}: no such executable")
    if args.config is None and (args.name != "alembic" or args.x):
        raise UsageError("--name and -x need --config (the alembic.ini they apply to)")
    return AlembicProject(
        script_location=None if args.script_location is None else Path(args.script_location),
        config_file=None if args.config is None else Path(args.config),
        name=args.name,
        x=tuple(args.x),
        python=python,
    )


def _starting_schema(args: argparse.Namespace) -> StartingSchema:
    from compatcheck.migrations.inspection import StartingSchema

    if args.base_sql is not None and not Path(args.base_sql).is_file():
        raise UsageError(f"--base-sql {args.base_sql}: no such file")
    if args.base_command is not None and not args.base_command.strip():
        raise UsageError("--base-command is empty")
    if args.static and (args.base_sql or args.base_command):
        raise UsageError("--base-sql and --base-command need a round trip; not with --static")
    return StartingSchema(
        sql=None if args.base_sql is None else Path(args.base_sql), command=args.base_command
    )


def _url_argument(value: str | None, flag: str, *, literal: bool = True) -> str | None:
    """A database URL given as itself, as ``env:VAR`` or as ``file:PATH`` (its first line).

    Trap: the round trip runs ``env.py`` and the revisions in this process, where ``sys.argv``
    holds the command line (and ``ps`` shows it to every user); a URL that must stay out of
    their reach comes from the environment (the variable is then removed from this process's
    environment, before any migration code runs) or from a file.
    """
    if value is None:
        return None
    if value.startswith("env:"):
        name = value[len("env:") :]
        url = os.environ.pop(name, "").strip()
        if not url:
            raise UsageError(f"{flag} {value}: the environment variable `{name}` is not set")
        return url
    if value.startswith("file:"):
        from compatcheck.files import read_text

        lines = [ln.strip() for ln in read_text(value[len("file:") :], "URL file").splitlines()]
        url = next((ln for ln in lines if ln and not ln.startswith("#")), "")
        if not url:
            raise UsageError(f"{flag} {value}: the file holds no URL")
        return url
    if not literal:
        raise UsageError(
            f"{flag}: give the URL as env:VAR or file:PATH, not on the command line (the "
            "migrations run in this process and could read it from sys.argv)"
        )
    return value


def _sweep_stale(servers: list[str]) -> None:
    """Remove what dead runs left (their processes, temp folders, scratch databases on
    ``servers``) before this run creates anything; one line on stderr when there was some."""
    from compatcheck.leftovers import sweep

    done = sweep(servers)
    if done.removed:
        print(
            f"compatcheck: removed what dead runs left: {done.summary()} "
            "(`compatcheck cleanup --dry-run` lists such leftovers)",
            file=sys.stderr,
        )


def _cmd_cleanup(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.leftovers import sweep

    servers = [u for u in (_url_argument(v, "--db-url") for v in args.db_url) if u]
    config_path = args.config or ("compatcheck.yaml" if Path("compatcheck.yaml").is_file() else "")
    if config_path:
        from compatcheck.config import load_config

        mig = load_config(config_path).migrations
        if mig is not None and mig.database != "sqlite":
            servers.append(mig.database)
    done = sweep(servers, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    if not args.quiet:
        for item in done.removed:
            out.write(f"{verb} {item}\n")
        for item in done.failed:
            out.write(f"could not remove {item}\n")
    summary = done.summary() or "nothing"
    kept = f"; {done.alive} belong to runs still going" if done.alive else ""
    out.write(f"compatcheck cleanup: {verb} {summary}{kept}\n")
    if done.failed:
        print(f"compatcheck: cleanup: {done.failed[0]}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_GO


def _cmd_snapshot(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.progress import Progress
    from compatcheck.snapshot import dump_snapshot

    progress = Progress(quiet=args.quiet)
    if args.config:
        if args.source or not args.target:
            raise UsageError("snapshot: give either SOURCE, or -c FILE --target old|new")
        from compatcheck.capture import capture_snapshot
        from compatcheck.config import load_config

        snap = capture_snapshot(load_config(args.config), args.target, progress=progress)
        if args.label:
            snap = dataclasses.replace(snap, label=args.label)
    elif args.source:
        from compatcheck.sources import is_url, load_source

        if is_url(args.source):
            from compatcheck.capture import snapshot_from_url

            snap = snapshot_from_url(args.source, label=args.label, progress=progress)
        else:
            snap = load_source(args.source, label=args.label)
    else:
        raise UsageError("snapshot: give SOURCE (URL or exposition file), or -c FILE --target")
    problems = [*snap.unavailable.values(), *(snap.metrics.errors if snap.metrics else ())]
    if problems:
        raise UnavailableError(f"{args.source or args.config}: not recorded: {problems[0]}")
    if not args.allow_empty and not (snap.metrics and snap.metrics.families):
        # A stored empty contract would later make every comparison "cannot tell" (or, worse,
        # look like a release that exposes nothing): refuse it while someone is watching.
        raise UnavailableError(
            f"{args.source or args.config}: not recorded: it exposes no metric families "
            "(an empty contract proves nothing; --allow-empty records it anyway)"
        )
    _write_file(args.output, dump_snapshot(snap))
    if not args.quiet:
        n = len(snap.metrics.families) if snap.metrics else 0
        print(f"compatcheck: snapshot of {n} metric families → {args.output}", file=sys.stderr)
    return EXIT_GO


def _resolve(arg: str, label: str, args: argparse.Namespace, store: Any) -> Any:
    """A stored version of ``--service`` when a store is given, else a URL or file."""
    from compatcheck.sources import load_source
    from compatcheck.store import resolve_version

    snap = resolve_version(arg, store, args.service)
    if snap is None:
        return load_source(arg, label=label, timeout=args.timeout, service=args.service or "")
    return dataclasses.replace(snap, label=label) if label else snap


# -- output -----------------------------------------------------------------------------------


def _write_bridge(args: argparse.Namespace, report: Any, old: Any, new: Any) -> None:
    """Write the bridge rule file from the report's findings and the two metrics schemas."""
    target = getattr(args, "emit_bridge_rules", None)
    if not target:
        return
    from compatcheck.consumers import render_bridge_rules

    before, after = (new, old) if args.direction == "rollback" else (old, new)
    if before.metrics is None or after.metrics is None:
        raise UsageError(f"{target}: no bridge rules: the metrics of both versions are needed")
    findings = [rf.finding for rf in report.findings]
    _write_file(target, render_bridge_rules(findings, before.metrics, after.metrics))


def _write_file(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None


def _use_color(args: argparse.Namespace, stream: IO[str]) -> bool:
    if args.no_color or os.environ.get("NO_COLOR") or getattr(args, "output", None):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _finish(args: argparse.Namespace, report: Any, out: IO[str]) -> int:
    from compatcheck.reporters import render

    text = render(report, args.format, color=_use_color(args, out))
    if args.output:
        _write_file(args.output, text)
    else:
        out.write(text)
    if report.unavailable:
        for rf in report.findings:
            if rf.finding.kind in ("check/unavailable", "metrics/exposition-invalid"):
                line = f"compatcheck: could not evaluate: {rf.finding.message}"
                print(mask_secrets(line), file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.output and not args.quiet:
        counts = report.counts
        print(
            f"compatcheck: {report.verdict.upper()} ({counts['error']} errors, "
            f"{counts['warning']} warnings, {counts['info']} info) → {args.output}",
            file=sys.stderr,
        )
    return EXIT_GO if report.go else EXIT_NO_GO


COMMANDS = {
    "check": _cmd_check,
    "diff": _cmd_diff,
    "snapshot": _cmd_snapshot,
    "migrations": _cmd_migrations,
    "cleanup": _cmd_cleanup,
    "rules": _cmd_rules,
    "explain": _cmd_explain,
    "serve": cmd_serve,
}


def _quiet_library_logging() -> None:
    """Keep libraries' log records off stderr unless ``COMPATCHECK_DEBUG`` is set.

    Trap: with no handler configured, Python prints any WARNING record through its last-resort
    handler; psycopg logs ``error ignored terminating <psycopg.Pipeline ...>`` whenever a
    batched insert fails, which compatcheck expects and reports itself. The person must see
    compatcheck's lines only.
    """
    import logging

    if os.environ.get("COMPATCHECK_DEBUG"):
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    else:
        logging.getLogger().addHandler(logging.NullHandler())


def resource_error(exc: MemoryError | RecursionError) -> str:
    """The line for an input too large or too deeply nested to load, where no loader named it."""
    what = "too large (out of memory)" if isinstance(exc, MemoryError) else "nested too deeply"
    return f"compatcheck: error: an input is {what}"


def run(command: Callable[[], int]) -> int:
    """Run one command as every entry point does (``compatcheck``, ``python -m
    compatcheck.serve``): SIGTERM unwinds like Ctrl-C (``finally`` blocks run), and each way it
    can end is one line on stderr and the exit code the contract gives it, the signals' from the
    one table in :mod:`compatcheck.interrupts` (130 for Ctrl-C, 143 for SIGTERM)."""
    try:
        with sigterm_as_interrupt():
            return command()
    except CompatcheckError as exc:
        print(f"compatcheck: error: {mask_secrets(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        code, line = exit_status(exc)
        print(line, file=sys.stderr)
        return code
    except BrokenPipeError:
        return EXIT_GO
    except (MemoryError, RecursionError) as exc:
        # Loaders name the file when they can; this is the line for any other hostile input
        # (exit 2: it is the input that must change, not a fault of the run).
        if os.environ.get("COMPATCHECK_DEBUG"):
            raise
        print(resource_error(exc), file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # one line for the person, the traceback only on request
        if os.environ.get("COMPATCHECK_DEBUG"):
            raise
        print(
            f"compatcheck: internal error: {type(exc).__name__}: {mask_secrets(exc)} "
            "(set COMPATCHECK_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``compatcheck`` console script."""
    _quiet_library_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(lambda: int(COMMANDS[args.command](args, sys.stdout)))
