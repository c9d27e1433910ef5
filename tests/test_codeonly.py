"""The code-only rollback plan, verified for real: OLD's code started on a database at NEW's head.

Judging is pure and tested on data in ``test_codeonly_judging.py``; here, real runs: the README
demo (v1 on v2's schema loses `orders.customer`), the compatible pair (v2 on v3's schema is fine),
and a small stdlib service on purpose-built Alembic histories — a unique index that only the
runtime trial can see, and an OLD that refuses to start on NEW's schema. Every real run also
proves nothing is left behind (process table, TMPDIR).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from compatcheck.capture import CheckResult, run_check
from compatcheck.config import load_config, parse_config
from compatcheck.engine import EvaluateOptions
from tests.conftest import DemoRun
from tests.test_codeonly_judging import DOWNGRADE_SAFE
from tests.test_reliability import _command, processes_with

from .interruption import spawn

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
SHOP_ENV = ROOT / "fixtures" / "services" / "shop" / "v1" / "migrations" / "env.py"

# --- the demo pairs, for real ---------------------------------------------------------------


def _keys(findings: Any) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in findings}


def test_demo_code_only_plan_is_verified_unsafe(demo_check: DemoRun) -> None:
    result = demo_check.result
    assert result.migrations is not None
    plans = {p["name"]: p for p in result.migrations.to_json()["plans"]}
    broken_post = (
        "OLD on NEW's schema: `POST /orders` → connection closed without a response (2 of 3; "
        "log: `sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) table orders has no "
        "column named customer`)"
    )
    broken_get = (
        "OLD on NEW's schema: `GET /orders` → connection closed without a response (1 of 1; "
        "log: `sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) no such column: "
        "customer`)"
    )
    assert plans["code-only"] == {
        "name": "code-only",
        "verified": True,
        "safe": False,
        "reasons": [
            "migrations/old-code-incompatible 2b0c0ffee002: OLD's code cannot run on the schema "
            "after `2b0c0ffee002`: column-renamed `orders.customer`.",
            broken_post,
            broken_get,
        ],
        "basis": "runtime",
        "status": "UNSAFE; verified: OLD ran on NEW's schema (5 warm-up requests replayed)",
    }
    assert plans["downgrade"]["safe"] is True
    assert plans["downgrade"]["status"] == (
        "safe; removes NEW-era data: `refunds` (2 rows), `orders.payment_method` (3 values), "
        "counted in the scratch round trip"
    )
    assert result.migrations.to_json()["recommended"] == "downgrade"
    trial = result.migrations.to_json()["code_only_trial"]
    assert trial["prepared"] == "copy of NEW's migrated database"
    assert [(r["method"], r["path"], r["status"]) for r in trial["requests"]] == [
        ("GET", "/products", 200),
        ("POST", "/orders", None),
        ("POST", "/orders", None),
        ("POST", "/orders", 422),
        ("GET", "/orders", None),
    ]
    # The static finding already covers it: no second finding for the same break.
    migration_keys = {k for k in _keys(result.findings) if k[0].startswith("migrations/")}
    assert migration_keys == {
        ("migrations/old-code-incompatible", "2b0c0ffee002"),
        ("migrations/downgrade-destructive", "2b0c0ffee002"),
        ("migrations/downgrade-destructive", "2b0c0ffee003"),
        ("migrations/new-data-removed", "2b0c0ffee003"),
    }
    assert result.timings["code_only"] > 0
    assert list(demo_check.tmp.iterdir()) == []


def test_compatible_pair_code_only_verified_safe_and_go(compatible_check: DemoRun) -> None:
    config = load_config(DEMO / "compatible.yaml")
    result = compatible_check.result
    assert result.migrations is not None
    assert result.migrations.to_json()["plans"][0] == {
        "name": "code-only",
        "verified": True,
        "safe": True,
        "reasons": [],
        "basis": "runtime",
        "status": "safe; verified: OLD ran on NEW's schema (5 warm-up requests replayed)",
    }
    assert result.migrations.to_json()["recommended"] == "code-only"
    assert [r["status"] for r in result.migrations.to_json()["code_only_trial"]["requests"]] == [
        200,
        201,
        201,
        422,
        200,
    ]
    report = _evaluate(config, result)
    assert report.verdict == "go"
    assert list(compatible_check.tmp.iterdir()) == []


def _evaluate(config: Any, result: CheckResult) -> Any:
    return result.evaluate(EvaluateOptions(consumers=tuple(str(p) for p in config.consumers)))


# --- a small service on purpose-built histories ---------------------------------------------

SERVICE = '''
"""items: a tiny release (stdlib and the tests' quiet handler) for the code-only tests."""
import argparse, json, os, sqlite3, sys
from http.server import ThreadingHTTPServer

from tests.httpserve import QuietHandler

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--require-column", default="")
p.add_argument("--unready-without", default="")
p.add_argument("--ignore-duplicates", action="store_true")
p.add_argument("--marker", default="")
args = p.parse_args()
path = os.environ["DATABASE_URL"].removeprefix("sqlite:///")
if args.require_column:
    table, column = args.require_column.split(".")
    try:
        with sqlite3.connect(path) as db:
            db.execute(f"SELECT {column} FROM {table} LIMIT 1")
    except sqlite3.Error as exc:
        print(f"items: schema check failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(4)
verb = "INSERT OR IGNORE" if args.ignore_duplicates else "INSERT"
EXPOSITION = b"# HELP items_up Always 1.\\n# TYPE items_up gauge\\nitems_up 1\\n"

class H(QuietHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/metrics":
            return self.send(200, EXPOSITION, "text/plain; version=0.0.4")
        if self.path == "/readyz":
            if args.unready_without:
                table, column = args.unready_without.split(".")
                try:
                    with sqlite3.connect(path) as db:
                        db.execute(f"SELECT {column} FROM {table} LIMIT 1")
                except sqlite3.Error:
                    return self.send(503, b'{"status": "schema"}')
            return self.send(200, b'{"status": "ready"}')
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT name FROM items ORDER BY id").fetchall()
        self.send(200, json.dumps([r[0] for r in rows]).encode())
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            with sqlite3.connect(path) as db:
                db.execute(f"{verb} INTO items (name) VALUES (?)", (body["name"],))
        except sqlite3.Error as exc:
            print(f"sqlite3.{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return self.send(500, b'{"error": "database"}')
        self.send(201, b'{"status": "created"}')

ThreadingHTTPServer(("127.0.0.1", args.port), H).serve_forever()
'''

CREATE = """
revision = "a1"
down_revision = None
branch_labels = None
depends_on = None
import sqlalchemy as sa
from alembic import op

def upgrade():
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(50)))

def downgrade():
    op.drop_table("items")
"""

UNIQUE = """
revision = "b2"
down_revision = "a1"
branch_labels = None
depends_on = None
from alembic import op

def upgrade():
    op.create_index("ix_items_name", "items", ["name"], unique=True)

def downgrade():
    op.drop_index("ix_items_name", table_name="items")
"""

RENAME = """
revision = "c2"
down_revision = "a1"
branch_labels = None
depends_on = None
from alembic import op

def upgrade():
    with op.batch_alter_table("items") as batch:
        batch.alter_column("name", new_column_name="label")

def downgrade():
    with op.batch_alter_table("items") as batch:
        batch.alter_column("label", new_column_name="name")
"""


def _history(base: Path, name: str, *revisions: str) -> Path:
    loc = base / name / "migrations"
    (loc / "versions").mkdir(parents=True)
    shutil.copy(SHOP_ENV, loc / "env.py")
    for i, source in enumerate(revisions):
        (loc / "versions" / f"r{i}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return loc


def _items_config(tmp_path: Path, marker: str, new_revision: str, old_args: list[str]) -> str:
    service = tmp_path / "items.py"
    service.write_text(SERVICE, encoding="utf-8")
    old_loc = _history(tmp_path, "old", CREATE)
    new_loc = _history(tmp_path, "new", CREATE, new_revision)

    def target(label: str, loc: Path, extra: list[str]) -> str:
        argv = ["{python}", str(service), "--port", "{port}", *extra, "--marker", marker]
        return json.dumps(
            {
                "label": label,
                "command": argv,
                "env": {"DATABASE_URL": "{database_url}", "PYTHONPATH": str(ROOT)},
                "migrations": str(loc),
            }
        )

    text = (
        f"old: {target('v1', old_loc, old_args)}\n"
        f"new: {target('v2', new_loc, ['--ignore-duplicates'])}\n"
        "readiness: {timeout: 10s, interval: 50ms}\n"
        "warmup:\n"
        "  - {method: POST, path: /items, json: {name: ada}, repeat: 2}\n"
        "  - {method: GET, path: /items}\n"
        "metrics: {scrapes: 1}\n"
        "migrations: {script_location: migrations}\n"
        "grace: 500ms\n"
    )
    return text


def _items_check(tmp_path: Path, marker: str, new_revision: str, old_args: list[str]) -> Any:
    text = _items_config(tmp_path, marker, new_revision, old_args)
    return run_check(parse_config(text, tmp_path / "compatcheck.yaml"))


@pytest.fixture
def marker() -> str:
    import uuid

    return f"cc-codeonly-{uuid.uuid4().hex[:10]}"


def test_unique_index_only_the_runtime_trial_sees(tmp_path, isolated_tmp, marker):
    result = _items_check(tmp_path, marker, UNIQUE, [])
    assert result.migrations is not None
    failure = (
        "OLD on NEW's schema: `POST /items` → 500 (1 of 2; "
        "log: `sqlite3.IntegrityError: UNIQUE constraint failed: items.name`)"
    )
    assert _keys(result.findings) == {("migrations/old-code-incompatible", "b2")}
    (finding,) = result.findings
    assert finding.evidence["reason"] == "runtime-failure"
    assert finding.evidence["requests"] == [
        {
            "method": "POST",
            "path": "/items",
            "status": 500,
            "log": "sqlite3.IntegrityError: UNIQUE constraint failed: items.name",
            "own_database_status": 201,
        }
    ]
    assert "UNIQUE constraint failed" in finding.evidence["log_tail"]
    assert result.migrations.to_json()["plans"] == [
        {
            "name": "code-only",
            "verified": True,
            "safe": False,
            "reasons": [failure],
            "basis": "runtime",
            "status": "UNSAFE; verified: OLD ran on NEW's schema (3 warm-up requests replayed)",
        },
        DOWNGRADE_SAFE,
    ]
    assert result.migrations.to_json()["recommended"] == "downgrade"
    assert processes_with(marker) == []
    assert list(isolated_tmp.iterdir()) == []


def test_old_that_crashes_on_new_schema_makes_code_only_unsafe(tmp_path, isolated_tmp, marker):
    result = _items_check(tmp_path, marker, RENAME, ["--require-column", "items.name"])
    assert result.migrations is not None
    crash = (
        "OLD on NEW's schema: exited with code 4 before it was ready (log: "
        "`items: schema check failed: OperationalError: no such column: name`)"
    )
    # OLD's own run was fine; the static rename finding covers the break: no second finding.
    assert _keys(result.findings) == {("migrations/old-code-incompatible", "c2")}
    code_only = result.migrations.to_json()["plans"][0]
    assert code_only["verified"] is True and code_only["safe"] is False
    assert code_only["reasons"][-1] == crash
    assert len(code_only["reasons"]) == 2
    assert result.migrations.to_json()["code_only_trial"]["requests"] == []
    assert processes_with(marker) == []
    assert list(isolated_tmp.iterdir()) == []


@pytest.mark.slow
def test_sigterm_during_the_trial_tears_it_down(tmp_path, isolated_tmp, marker):
    text = _items_config(tmp_path, marker, RENAME, ["--unready-without", "items.name"])
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(text.replace("timeout: 10s", "timeout: 60s"), encoding="utf-8")
    env = dict(os.environ, TMPDIR=str(isolated_tmp))
    proc = spawn(
        _command(cfg), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True
    )
    try:
        assert proc.stderr is not None
        seen = ""
        deadline = time.monotonic() + 20
        while seen.count("started ") < 3 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
        assert "started OLD's code on NEW's schema" in seen, seen
        assert seen.count("started `") == 2, seen
        # OLD, NEW and OLD-on-NEW's-schema (which never gets ready: `items.name` is gone).
        assert len(processes_with(marker)) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert processes_with(marker) == []
    assert list(isolated_tmp.iterdir()) == []


@pytest.mark.slow
def test_demo_on_postgresql_migrates_the_trial_database_and_drops_it(
    tmp_path, isolated_tmp, postgres_url
):
    import sqlalchemy as sa

    text = (DEMO / "compatcheck.yaml").read_text(encoding="utf-8")
    text = text.replace("cwd: ../", f"cwd: {DEMO.parent}/").replace(
        "database: sqlite", f'database: "{postgres_url}"'
    )
    result = run_check(parse_config(text, tmp_path / "compatcheck.yaml"))
    assert result.migrations is not None
    trial = result.migrations.to_json()["code_only_trial"]
    assert (trial["database"], trial["prepared"]) == ("server", "migrated with NEW's scripts")
    assert trial["database_name"].startswith("compatcheck_")
    # The same two failures as on SQLite, in PostgreSQL's words: the write and the read that the
    # column rename breaks.
    reasons = result.migrations.to_json()["plans"][0]["reasons"][1:]
    assert [r.split(" → ")[0] for r in reasons] == [
        "OLD on NEW's schema: `POST /orders`",
        "OLD on NEW's schema: `GET /orders`",
    ]
    assert all('column "customer"' in r and "UndefinedColumn" in r for r in reasons)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM pg_database WHERE datname = :n"),
                {"n": trial["database_name"]},
            ).scalar()
    finally:
        engine.dispose()
    assert left == 0
    assert list(isolated_tmp.iterdir()) == []
