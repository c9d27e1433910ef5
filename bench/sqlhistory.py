"""A generated N-step SQL migration history, and the reference time of the real dbmate on it.

The SQL twin of ``bench/migrations.py``'s Alembic history: every third step creates a table
referencing the previous one, the others add a nullable column or an index to the last table;
every Down is implemented. :func:`write_history` writes it in any SQL-file format we read
(``dbmate``, ``golang-migrate``, ``goose``, ``flyway``), with the same statements, so one history
can feed compatcheck's round trip and the reference tool alike. No compatcheck import here.

Running the module times dbmate (the npm package, installed into ``~/.cache/compatcheck-tests``
unless ``--dbmate`` names a binary) doing what the round trip must beat: ``up`` (all steps),
``rollback`` once per step, ``up`` again, on one scratch database it creates and drops.

Run: ``python bench/sqlhistory.py [--steps 50] [--repeat 3] [--engine sqlite|postgres|mysql]``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

FORMATS = ("dbmate", "golang-migrate", "goose", "flyway")
EPOCH = datetime(2024, 1, 1)
DBMATE_VERSION = "2.36.0"
CACHE = Path(os.environ.get("COMPATCHECK_TEST_CACHE", Path.home() / ".cache" / "compatcheck-tests"))


def steps(count: int) -> list[tuple[str, str, str]]:
    """(name, up, down) per step: portable SQL for SQLite, PostgreSQL and MariaDB."""
    out: list[tuple[str, str, str]] = []
    last: str | None = None
    for n in range(count):
        kind = n % 3
        if kind == 0 or last is None:
            table = f"t{n:03d}"
            fk = f",\n    parent_id INTEGER REFERENCES {last} (id)" if last else ""
            columns = f"    id INTEGER PRIMARY KEY,\n    name VARCHAR(40) NOT NULL{fk}"
            up = f"CREATE TABLE {table} (\n{columns}\n);"
            out.append((f"create_{table}", up, f"DROP TABLE {table};"))
            last = table
        elif kind == 1:
            out.append(
                (
                    f"add_c{n:03d}",
                    f"ALTER TABLE {last} ADD COLUMN c{n:03d} INTEGER;",
                    f"ALTER TABLE {last} DROP COLUMN c{n:03d};",
                )
            )
        else:
            out.append(
                (
                    f"index_{n:03d}",
                    f"CREATE INDEX ix_{n:03d} ON {last} (name);",
                    f"DROP INDEX ix_{n:03d};",
                )
            )
    return out


def write_history(folder: Path, count: int = 50, fmt: str = "dbmate") -> list[str]:
    """Write ``count`` steps into ``folder`` in format ``fmt``; returns the versions in order.

    Versions: dbmate 14-digit timestamps (2024-01-01 00:00 plus n minutes), golang-migrate and goose
    sequence numbers, Flyway ``V<n>`` (with ``U<n>`` undo files).
    Trap: MariaDB's ``DROP INDEX`` needs ``ON table``; the history is meant for SQLite and
    PostgreSQL as written, and rewrites the statement for ``mysql`` via :func:`mysql_dialect`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    folder.mkdir(parents=True, exist_ok=True)
    versions: list[str] = []
    for n, (name, up, down) in enumerate(steps(count), start=1):
        if fmt == "dbmate":
            version = (EPOCH + timedelta(minutes=n)).strftime("%Y%m%d%H%M%S")
            (folder / f"{version}_{name}.sql").write_text(
                f"-- migrate:up\n{up}\n\n-- migrate:down\n{down}\n", encoding="utf-8"
            )
        elif fmt == "golang-migrate":
            version = f"{n:06d}"
            (folder / f"{version}_{name}.up.sql").write_text(up + "\n", encoding="utf-8")
            (folder / f"{version}_{name}.down.sql").write_text(down + "\n", encoding="utf-8")
        elif fmt == "goose":
            version = f"{n:05d}"
            (folder / f"{version}_{name}.sql").write_text(
                f"-- +goose Up\n{up}\n\n-- +goose Down\n{down}\n", encoding="utf-8"
            )
        else:
            version = str(n)
            (folder / f"V{n}__{name}.sql").write_text(up + "\n", encoding="utf-8")
            (folder / f"U{n}__{name}.sql").write_text(down + "\n", encoding="utf-8")
        versions.append(version)
    return versions


def mysql_dialect(folder: Path) -> None:
    """MariaDB spells ``DROP INDEX ix ON table``: rewrite the generated index Downs in place."""
    for path in folder.glob("*.sql"):
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("CREATE INDEX "):
                ix, table = line.split()[2], line.split()[4]
                text = text.replace(f"DROP INDEX {ix};", f"DROP INDEX {ix} ON {table};")
        path.write_text(text, encoding="utf-8")


# --- timing the reference tool -------------------------------------------------------------------


def dbmate_binary(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    prefix = CACHE / "tools" / f"npm-dbmate-{DBMATE_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "dbmate"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        argv = ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix)]
        subprocess.run([*argv, f"dbmate@{DBMATE_VERSION}"], check=True, capture_output=True)
    return binary


@contextmanager
def scratch_url(engine: str) -> Iterator[str]:
    """A dbmate URL for a database created here and dropped afterwards."""
    name = "compatcheck_bench_" + secrets.token_hex(4)
    if engine == "sqlite":
        tmp = tempfile.mkdtemp(prefix=name)
        try:
            yield f"sqlite:{tmp}/db.sqlite3"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if engine == "postgres":
        server = "postgres://postgres@127.0.0.1:5432"
        admin = ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"]
        create, drop = f'CREATE DATABASE "{name}"', f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        url = f"{server}/{name}?sslmode=disable"
    else:
        admin = ["mariadb", "-h", "127.0.0.1", "-u", "root", "-e"]
        create, drop = f"CREATE DATABASE `{name}`", f"DROP DATABASE IF EXISTS `{name}`"
        url = f"mysql://root@127.0.0.1:3306/{name}"
    subprocess.run([*admin, create], check=True, capture_output=True)
    try:
        yield url
    finally:
        subprocess.run([*admin, drop], check=False, capture_output=True)


def time_dbmate(binary: Path, folder: Path, count: int, engine: str) -> dict[str, float]:
    """Seconds for ``up``, ``rollback`` × count, ``up`` on a fresh scratch database."""

    def dbmate(url: str, *args: str) -> None:
        argv = [str(binary), "--url", url, "--migrations-dir", str(folder), "--no-dump-schema"]
        proc = subprocess.run([*argv, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"dbmate {' '.join(args)} failed: {proc.stderr.strip()[:300]}")

    with scratch_url(engine) as url:
        t0 = time.perf_counter()
        dbmate(url, "up")
        t1 = time.perf_counter()
        for _ in range(count):
            dbmate(url, "rollback")
        t2 = time.perf_counter()
        dbmate(url, "up")
        t3 = time.perf_counter()
    return {"up": t1 - t0, "rollback": t2 - t1, "up_again": t3 - t2, "total": t3 - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine", choices=("sqlite", "postgres", "mysql"), default="sqlite")
    parser.add_argument("--dbmate", help="dbmate binary (default: the npm package, cached)")
    parser.add_argument("--write", metavar="DIR", help="only write the history (dbmate) to DIR")
    parser.add_argument("--format", choices=FORMATS, default="dbmate")
    args = parser.parse_args()
    if args.write:
        write_history(Path(args.write), args.steps, args.format)
        return
    binary = dbmate_binary(args.dbmate)
    folder = Path(tempfile.mkdtemp(prefix="bench_sqlhistory_"))
    try:
        write_history(folder, args.steps, "dbmate")
        if args.engine == "mysql":
            mysql_dialect(folder)
        runs = [time_dbmate(binary, folder, args.steps, args.engine) for _ in range(args.repeat)]
        print(f"history: {args.steps} dbmate steps, engine: {args.engine}, {args.repeat} runs")
        for key in ("up", "rollback", "up_again", "total"):
            values = [r[key] for r in runs]
            label = f"rollback x{args.steps}" if key == "rollback" else key
            print(f"dbmate {label:<13} median {statistics.median(values):7.3f}s  "
                  f"(min {min(values):.3f}s, max {max(values):.3f}s)")  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
