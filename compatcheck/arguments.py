"""The command line's grammar: every subcommand's arguments, and the exit codes.

:func:`build_parser` is what ``compatcheck --help`` shows and what ``docs/commands.md`` is
generated from; one function per subcommand adds its arguments. :mod:`compatcheck.cli` runs the
commands.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from compatcheck import __version__
from compatcheck.reportargs import add_contract_sources, add_report_options
from compatcheck.serve import add_serve_parser
from compatcheck.verify.cli import add_verify_parser

EXIT_GO, EXIT_NO_GO, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
#: ``--framework`` of ``migrations`` (the sources' registry, kept here: this module stays light).
MIGRATION_FRAMEWORKS = ("auto", "alembic", "golang-migrate", "goose", "dbmate", "flyway")
#: What each exit code means (``docs/commands.md`` is generated from this table).
EXIT_CODES = (
    (EXIT_GO, "go: the transition is safe (no finding at or above `--fail-on`, except waived)"),
    (EXIT_NO_GO, "no-go: a finding at or above `--fail-on`"),
    (EXIT_USAGE, "usage or input error: a bad flag, config, policy or input file (one line)"),
    (
        EXIT_UNAVAILABLE,
        "could not evaluate: something was unavailable (a release never ready, a scrape "
        "failed, a server unreachable), or an internal error",
    ),
)


def seconds(text: str) -> float:
    """A positive number of seconds (``--timeout``): 0, negatives and ``nan`` are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds")
    return value


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (with the usual exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_diff(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("diff", help="compare two versions: URLs, exposition files or snapshots")
    p.add_argument("old", metavar="OLD", help="the release rolled back to")
    p.add_argument("new", metavar="NEW", help="the release running now")
    p.add_argument("--old-label", default="", help="label shown for OLD")
    p.add_argument("--new-label", default="", help="label shown for NEW")
    p.add_argument("--timeout", type=seconds, default=10.0, help="scrape timeout in seconds")
    add_contract_sources(
        p,
        store_help="stored release contracts: OLD/NEW may then be versions of --service",
        service_help="service whose stored versions OLD/NEW name",
        registry_help="docker config.json with registry credentials for oci: sources",
    )
    add_report_options(p)


def _add_check(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("check", help="launch OLD and NEW from compatcheck.yaml, capture, compare")
    p.add_argument("-c", "--config", default="compatcheck.yaml", metavar="FILE")
    p.add_argument(
        "--snapshot-dir",
        metavar="DIR|URL",
        help="store of release contracts for `stored:` targets (overrides `snapshot_dir`)",
    )
    add_report_options(p)


def _add_snapshot(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "snapshot", help="record a release's contract (URL, exposition, -c --target)"
    )
    p.add_argument("source", nargs="?", metavar="SOURCE", help="URL or exposition file")
    p.add_argument("-c", "--config", metavar="FILE", help="take the target from this config")
    p.add_argument("--target", choices=("old", "new"), help="which config target to record")
    p.add_argument("-o", "--output", metavar="FILE", help="snapshot file to write")
    p.add_argument(
        "--attach",
        metavar="IMAGE@DIGEST",
        help="attach the snapshot to this image digest (oci:IMAGE@sha256:… or "
        "oci-layout:DIR@sha256:…) as an OCI artifact",
    )
    p.add_argument(
        "--registry-config", metavar="FILE", help="docker config.json with registry credentials"
    )
    p.add_argument("--label", default="", help="version label stored in the snapshot")
    p.add_argument(
        "--readiness",
        default="/readyz",
        metavar="PATH|none",
        help="SOURCE is a URL: the readiness path to wait for first (default /readyz); "
        "`none` scrapes the metrics without waiting",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="SOURCE is a URL: how long to wait for readiness (default 10)",
    )
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="record a contract without metric families (refused by default: it proves nothing)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _add_migrations(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("migrations", help="judge the migrations between two heads")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--script-location",
        metavar="DIR",
        help="Alembic script location (env.py + versions/), a bare versions folder, or a "
        "golang-migrate, goose, dbmate or Flyway SQL folder",
    )
    p.add_argument(
        "--framework",
        choices=MIGRATION_FRAMEWORKS,
        default="auto",
        help="the tool whose files the folder holds (default: auto, detected from the files)",
    )
    p.add_argument(
        "--dialect",
        choices=("sqlite", "postgresql", "mysql"),
        help="the database SQL files are written for, which decides how they are split and "
        "read (default: --db-url's; with --static and no --db-url, guessed from the files' marks, "
        "else sqlite); mysql covers MariaDB",
    )
    where.add_argument(
        "--config",
        metavar="INI",
        help="the project's alembic.ini, read as `alembic -c INI` reads it (script_location, "
        "version_locations; env.py gets it as config.config_file_name)",
    )
    _add_alembic_project(p)
    _add_window(p)
    add_report_options(p, consumers=False)


def _add_alembic_project(p: argparse.ArgumentParser) -> None:
    """How an Alembic project runs as shipped: its ini section, env.py's arguments, its own
    interpreter, the schema before its first revision."""
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


def _add_window(p: argparse.ArgumentParser) -> None:
    """The two heads, and the databases: where the round trip runs and what the live one holds."""
    p.add_argument(
        "--old",
        required=True,
        metavar="REV",
        help="OLD's head(s): Alembic id, prefix, head, heads, label@head or a comma-separated "
        "set; a SQL tool's version as it names it (0: none)",
    )
    p.add_argument(
        "--new",
        metavar="REV",
        help="NEW's head(s), as --old (default: the single head, or every head when branch "
        "labels explain them)",
    )
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


def _add_cleanup(sub: argparse._SubParsersAction[Any]) -> None:
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


def _add_config(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "config",
        help="validate compatcheck.yaml, or print its JSON Schema",
        description="Check a config file as `check` would read it (its policy files too), "
        "without starting anything; or print the JSON Schema of compatcheck.yaml for editors.",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--schema", action="store_true", help="print the JSON Schema and exit")
    g.add_argument(
        "--validate",
        nargs="?",
        const="",
        metavar="FILE",
        help="validate FILE (default: -c, else ./compatcheck.yaml): one line, exit 0 or 2",
    )
    p.add_argument("-c", "--config", metavar="FILE", help="the config file to validate")


def _add_init(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "init",
        help="write a first compatcheck.yaml here",
        description="Write ./compatcheck.yaml: OLD and NEW as command targets to edit, every "
        "optional section commented out with its defaults. An existing file is never replaced.",
    )
    p.add_argument("--service", metavar="NAME", help="the service's name (default: this folder's)")


def _add_catalogue(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("rules", help="print the finding catalogue")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p = sub.add_parser("explain", help="explain one finding kind")
    p.add_argument("kind", metavar="KIND")


def build_parser() -> argparse.ArgumentParser:
    """The ``compatcheck`` parser: one function per subcommand adds its arguments."""
    parser = Parser(
        prog="compatcheck",
        description="Is rolling back from NEW to OLD safe, and if not, exactly what breaks?",
        epilog=exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"compatcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for add in (
        _add_diff,
        _add_check,
        _add_snapshot,
        _add_migrations,
        _add_cleanup,
        _add_catalogue,
        add_serve_parser,
        _add_config,
        _add_init,
        add_verify_parser,
    ):
        add(sub)
    # Every subcommand's --help ends with the exit codes (scripts branch on them).
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if child.epilog is None:
                    child.epilog = exit_codes_text()
                    child.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def exit_codes_text() -> str:
    """``exit codes:`` and one line per code, for ``--help``."""
    return "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES)
