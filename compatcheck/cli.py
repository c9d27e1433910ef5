"""The command line: with :mod:`compatcheck.output` (which writes a command's report and says
what its exit code is), the only modules that print to the terminal and choose an exit code.

The grammar (subcommands, flags, exit codes) is :mod:`compatcheck.arguments`; this module runs
the commands. Exit codes (``docs/commands.md``): 0 go · 1 no-go · 2 usage/config error · 3 could
not evaluate. Every error a user can cause ends in one line on stderr, never a traceback; set
``COMPATCHECK_DEBUG=1`` to see the traceback of an internal error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from compatcheck.arguments import (
    EXIT_CODES,
    EXIT_GO,
    EXIT_NO_GO,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Parser,
    build_parser,
)
from compatcheck.errors import CompatcheckError, UnavailableError, UsageError
from compatcheck.interrupts import exit_status, sigterm_as_interrupt
from compatcheck.masking import mask_secrets
from compatcheck.output import prepare_output, write_bridge, write_file, write_report
from compatcheck.reportargs import REPORT_FORMATS
from compatcheck.serve import cmd_serve

__all__ = [
    "EXIT_CODES",
    "EXIT_GO",
    "EXIT_NO_GO",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "REPORT_FORMATS",
    "Parser",
    "build_parser",
    "main",
    "run",
    "write_report",
]

if TYPE_CHECKING:
    from compatcheck.apphelper import AlembicProject
    from compatcheck.migrations.inspection import StartingSchema

# -- commands ---------------------------------------------------------------------------------


def _cmd_rules(args: argparse.Namespace, out: IO[str]) -> int:
    import json

    from compatcheck.catalogue import render_markdown_table
    from compatcheck.checks import catalogued_rules

    cat = catalogued_rules()
    if args.format == "json":
        out.write(json.dumps([r.to_json() for r in cat.values()], indent=2) + "\n")
    elif args.format == "markdown":
        out.write(render_markdown_table(cat))
        # The table says what each kind is; a reader deciding what to do needs why and the fix.
        for rule in cat.values():
            out.write(
                f"\n### `{rule.kind}`\n\n{rule.summary}\n\n**Why it matters:** {rule.why}\n\n"
                f"**Example:** {rule.example}\n\n**Fix:** {rule.fix}\n"
            )
    else:
        width = max(len(k) for k in cat)
        for rule in cat.values():
            out.write(f"{rule.kind:<{width}}  {rule.severity:<7}  {rule.summary}\n")
    return EXIT_GO


def _cmd_explain(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.catalogue import get_rule
    from compatcheck.checks import catalogued_rules

    rule = catalogued_rules().get(args.kind) or get_rule(args.kind)
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
    if rule.evidence:  # what a finding's JSON `evidence` holds, for scripts that read it
        width = max(len(key) for key, _meaning in rule.evidence)
        out.write("\nEvidence keys (JSON):\n")
        out.write("".join(f"  {key:<{width}}  {meaning}\n" for key, meaning in rule.evidence))
    return EXIT_GO


def _options(args: argparse.Namespace, **extra: Any) -> Any:
    from compatcheck.engine import EvaluateOptions
    from compatcheck.policy import load_policy

    for path in (getattr(args, "output", None), getattr(args, "emit_bridge_rules", None)):
        if path:
            prepare_output(path)

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
    write_bridge(args, report, old, new)
    return write_report(args, report, out)


def _cmd_check(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.capture import run_check
    from compatcheck.config import load_config
    from compatcheck.progress import Progress

    config = load_config(args.config, store_given=bool(args.snapshot_dir))
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
    write_bridge(args, report, result.old, result.new)
    return write_report(args, report, out)


def _cmd_migrations(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.apphelper import early_helper, project_of

    # The URLs first: an ``env:VAR`` leaves the environment before any child inherits it.
    urls = (
        _url_argument(args.db_url, "--db-url"),
        _url_argument(args.live_db_url, "--live-db-url", literal=False),
    )
    project = project_of(args)
    # --python's helper starts now, so that its start overlaps the heavy imports that follow.
    with early_helper(project, static=args.static):
        return _migrations(args, out, project, *urls)


def _migrations(
    args: argparse.Namespace,
    out: IO[str],
    project: AlembicProject,
    db_url: str | None,
    live_db_url: str | None,
) -> int:
    from compatcheck.engine import evaluate
    from compatcheck.migrations import inspect_migrations
    from compatcheck.progress import Progress
    from compatcheck.snapshot import Snapshot

    options = _options(args)
    if args.use_existing_empty_database and db_url is None:
        raise UsageError("--use-existing-empty-database needs --db-url naming that database")
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
        framework=args.framework,
        dialect=args.dialect,
    )
    typed = {args.old, args.new}
    for f in result.findings:
        # A revision typed on this command line that the history lacks is a usage error (exit
        # 2, naming the close matches); in `check` the same finding is about a release.
        if f.kind == "migrations/path-missing" and f.evidence.get("unknown") in typed:
            raise UsageError(f"--script-location {args.script_location}: {f.message}")
    section = result.section
    source = project.shown
    old = Snapshot(label=str(section.old_head or args.old), source=source)
    new = Snapshot(label=str(section.new_head or args.new or "head"), source=source)
    report = evaluate(
        old,
        new,
        dataclasses.replace(options, extra_findings=result.findings, migrations=section),
    )
    return write_report(args, report, out)


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


def _cmd_config(args: argparse.Namespace, out: IO[str]) -> int:
    """``--schema``: the JSON Schema; ``--validate``: the config and its policy files, as
    ``check`` reads them (the same one-line errors, exit 2), without starting anything."""
    if args.schema:
        from compatcheck.config.schema import render_schema

        out.write(render_schema())
        return EXIT_GO
    from compatcheck.config import load_config
    from compatcheck.policy import load_policy

    path = args.validate or args.config or "compatcheck.yaml"
    config = load_config(path)
    load_policy([str(p) for p in config.policy])
    out.write(
        f"{path}: OK (service `{config.service}`: old is a {config.old.kind} target, "
        f"new a {config.new.kind} target)\n"
    )
    return EXIT_GO


def _cmd_init(args: argparse.Namespace, out: IO[str]) -> int:
    """Write ``./compatcheck.yaml`` from the declaration; an existing file is left alone."""
    from compatcheck.config.template import render_template

    path = Path("compatcheck.yaml")
    service = args.service or Path.cwd().resolve().name
    text = render_template(service)
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise UsageError(f"{path}: already exists (not replaced)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None
    out.write(
        f"wrote {path} (service `{service}`): edit `old` and `new`, then run "
        "`compatcheck config --validate`\n"
    )
    return EXIT_GO


def _cmd_snapshot(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.progress import Progress
    from compatcheck.snapshot import dump_snapshot

    progress = Progress(quiet=args.quiet)
    if not args.output and not args.attach:
        raise UsageError("snapshot: give -o FILE, --attach IMAGE@sha256:…, or both")
    if args.target and not args.config:
        raise UsageError("snapshot: --target old|new picks a target of a config: add -c FILE")
    if args.output:
        prepare_output(args.output)  # before anything is captured
    attach = _attach_target(args.attach) if args.attach else None
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
            from compatcheck.capture.url import RUNNING_READINESS

            readiness = None
            if args.readiness.lower() != "none":
                path = args.readiness if args.readiness.startswith("/") else f"/{args.readiness}"
                readiness = dataclasses.replace(RUNNING_READINESS, path=path, timeout=args.timeout)
            snap = snapshot_from_url(
                args.source, label=args.label, progress=progress, readiness=readiness
            )
        else:
            snap = load_source(args.source, label=args.label, registry_config=args.registry_config)
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
    text = dump_snapshot(snap)
    n = len(snap.metrics.families) if snap.metrics else 0
    if args.output:
        write_file(args.output, text)
        if not args.quiet:
            print(f"compatcheck: snapshot of {n} metric families → {args.output}", file=sys.stderr)
    if attach is not None:
        _attach(attach, text, snap.captured_at, args)
    return EXIT_GO


def _attach_target(arg: str) -> str:
    """``--attach`` takes ``oci:IMAGE@…`` or ``oci-layout:DIR@…``; a bare image means ``oci:``."""
    from compatcheck.artifact.contract import parse_contract_ref
    from compatcheck.sources import is_contract_ref

    target = arg if is_contract_ref(arg) else f"oci:{arg}"
    parse_contract_ref(target)  # a tag is refused before anything is captured
    return target


def _attach(target: str, text: str, created: str, args: argparse.Namespace) -> None:
    from compatcheck.artifact.auth import load_registry_config
    from compatcheck.artifact.contract import attach_contract
    from compatcheck.artifact.oci import ArtifactUnavailable
    from compatcheck.snapshot import capture_time

    config = load_registry_config(args.registry_config)
    try:
        done = attach_contract(
            target, text.encode(), created or capture_time(), registry_config=config
        )
    except ArtifactUnavailable as exc:
        raise UnavailableError(f"--attach {target}: {exc}") from None
    if not args.quiet:
        state = "already attached" if done.already else "attached"
        print(
            f"compatcheck: contract {done.digest} {state} to {done.subject} in {done.where} "
            f"({done.how})",
            file=sys.stderr,
        )


def _resolve(arg: str, label: str, args: argparse.Namespace, store: Any) -> Any:
    """A stored version of ``--service`` when a store is given, else a URL or file."""
    from compatcheck.sources import load_source
    from compatcheck.store import resolve_version

    snap = resolve_version(arg, store, args.service)
    if snap is None:
        return load_source(
            arg,
            label=label,
            timeout=args.timeout,
            service=args.service or "",
            registry_config=args.registry_config,
        )
    return dataclasses.replace(snap, label=label) if label else snap


def _cmd_verify(args: argparse.Namespace, out: IO[str]) -> int:
    from compatcheck.verify.cli import cmd_verify

    return cmd_verify(args, out)


COMMANDS = {
    "check": _cmd_check,
    "diff": _cmd_diff,
    "snapshot": _cmd_snapshot,
    "migrations": _cmd_migrations,
    "cleanup": _cmd_cleanup,
    "rules": _cmd_rules,
    "explain": _cmd_explain,
    "serve": cmd_serve,
    "config": _cmd_config,
    "init": _cmd_init,
    "verify": _cmd_verify,
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


#: Database driver modules SQLAlchemy imports for a URL, and what to install (or write) instead.
_DRIVERS = {
    "psycopg": "install compatcheck[postgres] (pip install 'compatcheck[postgres]')",
    "psycopg2": "use a postgresql+psycopg:// URL and install compatcheck[postgres]",
    "pymysql": "install compatcheck[mysql] (pip install 'compatcheck[mysql]')",
    "MySQLdb": "use a mysql+pymysql:// URL and install compatcheck[mysql]",
    "mysqlclient": "use a mysql+pymysql:// URL and install compatcheck[mysql]",
    "asyncpg": "use a postgresql+psycopg:// URL and install compatcheck[postgres]",
}


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
    except ModuleNotFoundError as exc:
        hint = _DRIVERS.get((exc.name or "").split(".")[0])
        if hint is None:
            if os.environ.get("COMPATCHECK_DEBUG"):
                raise
            print(
                f"compatcheck: internal error: ModuleNotFoundError: {exc} "
                "(set COMPATCHECK_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
            return EXIT_UNAVAILABLE
        print(f"compatcheck: error: no database driver `{exc.name}`: {hint}", file=sys.stderr)
        return EXIT_USAGE
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


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``compatcheck`` console script."""
    import shlex
    import time

    started = time.monotonic()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `--help` and usage errors end here, before any set-up
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Point at the subcommand's own --help, where the option that was meant is listed.
        sub = _subparser(parser, args.command)
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    _quiet_library_logging()
    args.started = started
    args.invocation = mask_secrets(shlex.join(["compatcheck", *argv]))
    return run(lambda: int(COMMANDS[args.command](args, sys.stdout)))
