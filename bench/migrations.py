"""Benchmark: compatcheck's migration round trip vs pytest-alembic's ``test_up_down_consistency``.

Generates a 50-revision Alembic history in a temp folder (tables with foreign keys, added
columns, indexes: every downgrade implemented) and, in the same run and on the same engine, times

- ``inspect_migrations(dir, first, head)``: static analysis, upgrade to OLD, schema A, seed rows,
  upgrade to NEW, schema B, NEW-era rows, downgrade 49 revisions one at a time, schema A', data
  checks, re-upgrade, schema B', offline SQL rendering;
- pytest-alembic's ``test_up_down_consistency``: up one revision at a time, down one at a time,
  up again.

Run: ``.venv/bin/python bench/migrations.py [--revisions 50] [--repeat 3] [--db-url URL]``.
Target: ratio (compatcheck / pytest-alembic) <= 1.0; min, median and max of the repeats' ratios
are printed.

``--apps [APP ...]``: the same comparison on the real applications' windows
(``fixtures/realworld/alembic``), each in its own venv, per dialect: ``compatcheck migrations``
as a user runs it (``--python``, ``--base-command``; wall time of the whole command) against
pytest-alembic's test in the app's interpreter (its process plus the starting schema), and what
each found; beside wall time, each side's CPU time (its processes, the database server's aside),
which the machine's load does not inflate.

``--sql dbmate`` compares SQL files instead (:func:`sql_main`): the same history as dbmate files
(``bench/sqlhistory.py``), compatcheck's round trip against the real dbmate doing ``up``,
``rollback`` once per step, ``up`` on one database of the same engine (``--engine``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

ENV_PY = (
    Path(__file__).resolve().parent.parent / "fixtures" / "alembic" / "clean_reversible" / "env.py"
)

REVISION = '''"""Generated revision {n}."""

import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{up}


def downgrade() -> None:
{down_body}
'''


def generate(folder: Path, count: int) -> list[str]:
    """Write ``count`` revisions; every third creates a table referencing the previous one."""
    (folder / "versions").mkdir(parents=True)
    shutil.copy(ENV_PY, folder / "env.py")
    revs = [f"r{n:03d}" for n in range(count)]
    last_table = None
    for n, rev in enumerate(revs):
        kind = n % 3
        if kind == 0 or last_table is None:
            table = f"t{n:03d}"
            fk = (
                f'\n        sa.Column("parent_id", sa.Integer, sa.ForeignKey("{last_table}.id")),'
                if last_table
                else ""
            )
            up = textwrap.indent(
                f'op.create_table(\n    "{table}",\n    sa.Column("id", sa.Integer, '
                f'primary_key=True),\n    sa.Column("name", sa.String(40), nullable=False),'
                f"{fk.replace(chr(10) + '        ', chr(10) + '    ')}\n)",
                "    ",
            )
            down = f'    op.drop_table("{table}")'
            last_table = table
        elif kind == 1:
            column = f'sa.Column("c{n:03d}", sa.Integer, nullable=True)'
            up = f'    op.add_column("{last_table}", {column})'
            down = f'    op.drop_column("{last_table}", "c{n:03d}")'
        else:
            up = f'    op.create_index("ix_{n:03d}", "{last_table}", ["name"])'
            down = f'    op.drop_index("ix_{n:03d}", table_name="{last_table}")'
        text = REVISION.format(n=n, rev=rev, down=revs[n - 1] if n else None, up=up, down_body=down)
        (folder / "versions" / f"{rev}.py").write_text(text)
    return revs


def time_compatcheck(
    folder: Path, old: str | None, new: str, db_url: str | None, framework: str = "auto"
) -> float:
    """Seconds ``inspect_migrations`` takes; exits when the round trip did not complete or found
    more than the history holds."""
    from compatcheck.migrations import inspect_migrations

    start = time.perf_counter()
    result = inspect_migrations(folder, old, new, db_url=db_url, framework=framework)
    elapsed = time.perf_counter() - start
    assert result.section.roundtrip is not None
    status = result.section.roundtrip.status
    # Every revision drops what it added: destructive downgrades, and the NEW-era data they remove.
    expected = {"migrations/downgrade-destructive", "migrations/new-data-removed"}
    unexpected = [f.kind for f in result.findings if f.kind not in expected]
    if status != "completed" or unexpected:
        raise SystemExit(f"unexpected result: {status} {unexpected}")
    return elapsed


def time_pytest_alembic(folder: Path, db_url: str | None) -> float:
    """pytest-alembic on a database of its own: a scratch one made the way compatcheck makes its."""
    from pytest_alembic import runner
    from pytest_alembic.config import Config
    from pytest_alembic.tests.default import test_up_down_consistency

    from compatcheck.migrations.scratch import scratch_database

    with scratch_database(db_url) as scratch:
        # Same engine settings as compatcheck's (for SQLite: no fsync per commit).
        start = time.perf_counter()
        config = Config(config_options={"script_location": str(folder)})
        with runner(config=config, engine=scratch.engine) as alembic_runner:
            test_up_down_consistency(alembic_runner)
        return time.perf_counter() - start


def ratios_line(ours: list[float], theirs: list[float]) -> str:
    ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    return (
        f"ratio min {ratios[0]:.2f} / median {statistics.median(ratios):.2f} / "
        f"max {ratios[-1]:.2f} (n={len(ratios)})"
    )


APP_SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/mysql",
}


def bench_apps(names: list[str], dialects: list[str], repeat: int) -> None:
    """Each app's window, per dialect: compatcheck's command vs pytest-alembic's test."""
    import json
    import resource
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures/realworld/alembic"))
    from make_venvs import (  # type: ignore[import-not-found]
        App,
        build_venv,
        compatcheck_command,
        load_apps,
        pytest_alembic_overlay,
        run_pytest_alembic,
    )

    manifest = load_apps()
    overlay = pytest_alembic_overlay(sys.executable)

    def children_cpu() -> float:
        """CPU seconds of the finished children (and what they waited for: the helper, the
        starting-schema command): what each side costs, whatever the load."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    for name in names or list(manifest):
        venv, _s, _b = build_venv(name, str(manifest[name]["version"]), sys.executable)
        app = App(name, manifest[name], venv)
        for dialect in dialects:
            if dialect not in app.run["dialects"]:
                continue
            ours: list[float] = []
            theirs: list[float] = []
            cpu: list[tuple[float, float]] = []
            found: list[str] = []
            outcome = ""
            for _ in range(repeat):
                with tempfile.TemporaryDirectory(prefix="bench-app-") as tmpname:
                    tmp = Path(tmpname)
                    out = tmp / "report.json"
                    argv, env = compatcheck_command(app, APP_SERVERS.get(dialect), tmp, out)
                    start, cpu0 = time.perf_counter(), children_cpu()
                    subprocess.run(argv, cwd=app.workdir, env=env, capture_output=True)
                    ours.append(time.perf_counter() - start)
                    cpu1 = children_cpu()
                    doc = json.loads(out.read_text())
                    found = sorted(f"{f['kind']} {f['subject']}" for f in doc["findings"])
                pa = run_pytest_alembic(app, dialect, overlay)
                cpu.append((cpu1 - cpu0, children_cpu() - cpu1))
                theirs.append(float(pa.get("seconds") or 0) + float(pa.get("base_seconds") or 0))
                outcome = str(pa.get("outcome"))
            print(f"{name} {app.old} → {app.new} on {dialect}")
            print(
                f"  compatcheck {statistics.median(ours):.1f}s, pytest-alembic "
                f"{statistics.median(theirs):.1f}s: {ratios_line(ours, theirs)}"
            )
            mine, other = ([c[i] for c in cpu] for i in (0, 1))
            print(
                f"  CPU time: compatcheck {statistics.median(mine):.1f}s, pytest-alembic "
                f"{statistics.median(other):.1f}s: {ratios_line(mine, other)}"
            )
            print(f"  compatcheck found ({len(found)}): {'; '.join(found)}")
            print(f"  pytest-alembic: {outcome[:400]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--db-url", default=None, help="PostgreSQL/MariaDB server URL (default: SQLite temp file)"
    )
    parser.add_argument("--apps", nargs="*", default=None, help="real applications' windows")
    parser.add_argument("--dialects", default="sqlite,postgresql,mysql")
    parser.add_argument("--sql", choices=("dbmate",), help="SQL files against the real tool")
    parser.add_argument("--engine", choices=("sqlite", "postgres", "mysql"), default="sqlite")
    parser.add_argument("--profile", metavar="FILE", help="--sql: cProfile one round trip")
    args = parser.parse_args()
    if args.apps is not None:
        bench_apps(args.apps, args.dialects.split(","), args.repeat)
        return
    if args.sql:
        sql_main(args.sql, args.revisions, args.repeat, args.engine, args.profile)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench_history_")) / "migrations"
    try:
        revs = generate(folder, args.revisions)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(args.repeat):
            ours.append(time_compatcheck(folder, revs[0], revs[-1], args.db_url))
            theirs.append(time_pytest_alembic(folder, args.db_url))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"history: {args.revisions} revisions, engine: {args.db_url or 'sqlite (temp)'}")
        print(f"compatcheck round trip:                  {a:.3f}s (median of {args.repeat})")
        print(f"pytest-alembic test_up_down_consistency: {b:.3f}s (median of {args.repeat})")
        print(ratios_line(ours, theirs))
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


# --- SQL files: compatcheck's round trip vs the real dbmate ---------------------------------------

SERVERS = {
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/",
}


def time_sql_round_trip(folder: Path, framework: str, engine: str) -> float:
    """compatcheck's round trip over the whole history: from an empty database (OLD had no
    migrations) to the last version and back, one step at a time, so it undoes the same 50 steps
    dbmate's ``rollback`` × 50 does; scratch database made and dropped inside the timing."""
    return time_compatcheck(folder, None, "head", SERVERS.get(engine), framework)


def _spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):7.3f}s  (min {min(values):.3f}s, "
        f"max {max(values):.3f}s)"
    )


def _native(shim: Path) -> Path:
    """The Go binary npm's ``dbmate`` (a Node script) spawns: timing the script would add Node's
    start-up to each of the 52 commands and flatter us."""
    found = sorted((shim.parent.parent / "@dbmate").glob("*/bin/dbmate"))
    return found[0] if found else shim


def sql_main(framework: str, count: int, repeat: int, engine: str, profile: str | None) -> None:
    """Time both on one generated history, alternating runs; print spreads and the ratio."""
    import sqlhistory  # bench/sqlhistory.py: this folder is on sys.path when run as a script

    binary = _native(sqlhistory.dbmate_binary(None))
    folder = Path(tempfile.mkdtemp(prefix="bench_sqlhistory_")) / "db" / "migrations"
    try:
        sqlhistory.write_history(folder, count, framework)
        if engine == "mysql":
            sqlhistory.mysql_dialect(folder)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(repeat):
            ours.append(time_sql_round_trip(folder, framework, engine))
            theirs.append(sqlhistory.time_dbmate(binary, folder, count, engine)["total"])
        if profile:
            import cProfile

            cProfile.runctx(
                "time_sql_round_trip(folder, framework, engine)", globals(), locals(), profile
            )
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        print(f"history: {count} {framework} steps, engine: {engine}, {repeat} runs each")
        print(f"reference: {binary}")
        print(f"compatcheck round trip:             {_spread(ours)}")
        print(f"{framework} up, rollback x{count}, up:     {_spread(theirs)}")
        of_medians = statistics.median(ours) / statistics.median(theirs)
        print(
            f"ratio (compatcheck / {framework}): {of_medians:.2f} of the medians; per run "
            f"min {min(ratios):.2f}, median {statistics.median(ratios):.2f}, max {max(ratios):.2f}"
        )
    finally:
        shutil.rmtree(folder.parent.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
