"""Targets: ports, process groups, scratch databases, Alembic upgrades — all on real resources."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from compatcheck.capture import capture_snapshot, run_check
from compatcheck.config import CommandTarget, load_config
from compatcheck.errors import UnavailableError
from compatcheck.migrations.sources.alembic.runner import migrate_to_head, script_heads
from compatcheck.targets import Workspace, free_port, stop_groups

from .conftest import scratch_databases

SHOP = Path(__file__).resolve().parent.parent / "fixtures" / "services" / "shop"
DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


def test_free_port_is_bindable():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # raises if the port were taken
        assert s.getsockname()[1] == port


def test_workspace_removes_its_dir_and_stops_children(isolated_tmp):
    target = CommandTarget(
        role="old",
        label="sleeper",
        command=(
            "{python}",
            "-c",
            "import sys, time; print(sys.argv[1]); time.sleep(60)",
            "{port}",
        ),
    )
    with Workspace(grace=1.0) as ws:
        running = ws.launch(target)
        assert running.process.poll() is None
        assert ws.dir is not None and ws.dir.parent == isolated_tmp
    assert running.process.returncode is not None
    assert list(isolated_tmp.iterdir()) == []
    with pytest.raises(UnavailableError, match="the run is shutting down"):
        ws.launch(target)


def test_missing_executable_is_a_finding_not_a_crash(tmp_path, isolated_tmp):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "old: {command: [/nonexistent/bin/app, '{port}']}\n"
        "new: {command: [/nonexistent/bin/app, '{port}']}\n"
        "readiness: {timeout: 1s}\n"
    )
    result = run_check(load_config(cfg))
    assert [(f.kind, f.subject) for f in result.findings] == [
        ("check/unavailable", "old"),
        ("check/unavailable", "new"),
    ]
    assert [f.message for f in result.findings] == [
        "OLD `OLD`: cannot start `/nonexistent/bin/app`: No such file or directory.",
        "NEW `NEW`: cannot start `/nonexistent/bin/app`: No such file or directory.",
    ]
    assert list(isolated_tmp.iterdir()) == []


def test_a_target_that_dies_says_why_in_its_one_line(tmp_path, isolated_tmp):
    """The line on stderr carries the log line that explains the exit, not only the code."""
    cfg = tmp_path / "c.yaml"
    die = "import sys; print('starting', flush=True); sys.exit('No module named shopx')"
    cfg.write_text(
        f"old: {{label: v1, command: ['{{python}}', '-c', \"{die}\", '{{port}}']}}\n"
        f"new: {{label: v2, command: ['{{python}}', '-c', \"{die}\", '{{port}}']}}\n"
        "readiness: {timeout: 5s}\n"
    )
    result = run_check(load_config(cfg))
    assert [f.message for f in result.findings] == [
        "OLD `v1`: exited with code 1 before it was ready (log: `No module named shopx`).",
        "NEW `v2`: exited with code 1 before it was ready (log: `No module named shopx`).",
    ]
    assert result.findings[0].evidence["log_tail"] == "starting\nNo module named shopx"
    with pytest.raises(UnavailableError) as err:
        capture_snapshot(load_config(cfg), "old")
    assert str(err.value) == (
        "cannot record a snapshot of OLD `v1`: "
        "exited with code 1 before it was ready (log: `No module named shopx`)"
    )
    assert list(isolated_tmp.iterdir()) == []


def test_stop_groups_on_already_exited_process():
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait()
    started = time.monotonic()
    stop_groups([proc], grace=5.0)  # no error, nothing to signal, no grace period waited
    assert time.monotonic() - started < 1.0
    assert proc.returncode == 0


def test_migrate_scratch_sqlite_to_each_release_head(tmp_path):
    heads = {}
    for version in ("v1", "v2", "v3"):
        url = f"sqlite:///{tmp_path / version}.sqlite"
        heads[version] = migrate_to_head(SHOP / version / "migrations", url)
        assert script_heads(SHOP / version / "migrations") == heads[version]
    assert heads == {"v1": "1a0c0ffee001", "v2": "2b0c0ffee003", "v3": "3c0c0ffee004"}
    engine = create_engine(f"sqlite:///{tmp_path / 'v2'}.sqlite")
    with engine.connect() as conn:
        cols = [r[1] for r in conn.execute(text("PRAGMA table_info(orders)"))]
    engine.dispose()
    assert "customer_name" in cols and "payment_method" in cols and "customer" not in cols


def test_broken_script_location_is_unavailable(tmp_path):
    with pytest.raises(UnavailableError, match="not an Alembic script location"):
        migrate_to_head(tmp_path, f"sqlite:///{tmp_path}/x.sqlite")


@pytest.mark.postgres
@pytest.mark.slow
def test_scratch_databases_on_a_postgres_server_are_dropped(tmp_path, isolated_tmp, postgres_url):
    text_cfg = (DEMO / "compatcheck.yaml").read_text()
    text_cfg = text_cfg.replace("cwd: ../", f"cwd: {DEMO}/../")
    text_cfg = text_cfg.replace("database: sqlite", f"database: '{postgres_url}'")
    text_cfg = text_cfg.replace("consumers: [../consumers/shop/]\n", "")
    cfg = tmp_path / "pg.yaml"
    cfg.write_text(text_cfg)
    result = run_check(load_config(cfg))
    assert [f for f in result.findings if f.kind == "check/unavailable"] == []
    assert (result.old.alembic_head, result.new.alembic_head) == ("1a0c0ffee001", "2b0c0ffee003")
    assert result.new.readiness is not None
    assert result.new.readiness["/readyz"].json["db_connected"] is True
    assert scratch_databases(postgres_url) == []
    assert list(isolated_tmp.iterdir()) == []
