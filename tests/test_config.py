"""compatcheck.yaml: the demo files load as intended; each mistake is one `file:line: problem`."""

from __future__ import annotations

from pathlib import Path

import pytest

from compatcheck.config import (
    WarmupRequest,
    load_config,
    parse_duration,
    target_script_location,
)
from compatcheck.errors import UsageError
from tests._support import one_line_error

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "fixtures" / "demo"


def test_demo_config_loads_with_paths_resolved_against_the_file():
    cfg = load_config(DEMO / "compatcheck.yaml")
    assert cfg.service == "shop"
    assert cfg.old.kind == "command"
    assert cfg.old.cwd == (REPO / "fixtures" / "services" / "shop" / "v1").resolve()
    assert cfg.old.command == (
        "{python}",
        "-m",
        "shop",
        "--host",
        "{host}",
        "--port",
        "{port}",
    )
    assert cfg.old.env == {"DATABASE_URL": "{database_url}"}
    assert (cfg.old.expect.version, cfg.old.expect.revision) == ("1.0.0", "1a2b3c4")
    assert (cfg.new.expect.version, cfg.new.expect.revision) == (None, None)
    assert cfg.readiness.path == "/readyz"
    assert cfg.readiness.healthz == "/healthz"
    assert cfg.readiness.timeout == 30.0
    assert cfg.readiness.expect_status == (200,)
    assert cfg.readiness.expect_json == {"db_connected": True}
    assert cfg.warmup[0] == WarmupRequest("GET", "/products")
    assert [w.repeat for w in cfg.warmup] == [1, 2, 1, 1]
    assert cfg.warmup[1].json == {
        "product_id": 1,
        "quantity": 2,
        "customer": "ada",
        "payment_method": "card",
    }
    assert (cfg.metrics.path, cfg.metrics.scrapes, cfg.metrics.interval) == ("/metrics", 2, 0.1)
    assert cfg.migrations is not None and cfg.migrations.database == "sqlite"
    assert target_script_location(cfg, cfg.old) == cfg.old.cwd / "migrations"
    assert target_script_location(cfg, cfg.new) == cfg.new.cwd / "migrations"
    assert cfg.consumers == (REPO / "fixtures" / "consumers" / "shop",)


def test_probes_read_from_a_kubernetes_deployment():
    cfg = load_config(DEMO / "from-manifest.yaml")
    assert cfg.readiness.path == "/readyz"
    assert cfg.readiness.healthz == "/healthz"
    # `port: http` is resolved through the container's named ports.
    assert cfg.readiness.manifest_ports == {"readiness": 8080, "liveness": 8080}
    assert cfg.readiness.source.endswith("k8s/deployment.yaml:34")


@pytest.mark.parametrize(
    ("text", "value"),
    [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), (5, 5.0), ("1.5", 1.5)],
)
def test_durations(text, value):
    assert parse_duration(text) == value


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "compatcheck.yaml"
    p.write_text(body, encoding="utf-8")
    return p


OK_NEW = "new: {url: 'http://127.0.0.1:9000'}\n"


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        (
            "old: {url: 'http://x:1'}\n" + OK_NEW + "readiness:\n  pth: /readyz\n",
            4,
            "unknown key `readiness.pth` (allowed: path, healthz, timeout, interval, "
            "expect_status, expect_json, from_manifest, container, workload)",
        ),
        (
            "old:\n  url: 'http://x:1'\n  command: [a]\n" + OK_NEW,
            1,
            "`old` needs exactly one of command, url, snapshot, exposition, stored, contract "
            "(has `command`, `url`)",
        ),
        (
            "old: {url: 'http://x:1'}\n" + OK_NEW + "readiness: {timeout: soon}\n",
            3,
            "`readiness.timeout`: 'soon' is not a duration (use e.g. 500ms, 30s, 2m)",
        ),
        (
            "old:\n  command: [app, '--port', '{prot}']\n" + OK_NEW,
            2,
            "unknown placeholder `{prot}` (allowed: {port}, {host}, {database_url}, {python})",
        ),
        ("old: {url: 'http://x:1'}\n", 1, "missing `new` target"),
        (
            "old: {url: 'http://x:1'}\n" + OK_NEW + "warmup:\n  - {path: /a}\n  - {method: GET}\n",
            5,
            "`warmup[1]` needs a `path`",
        ),
        (
            "old: {url: 'http://x:1'}\n" + OK_NEW + "readiness: {expect_status: [200, 'ok']}\n",
            3,
            "`readiness.expect_status` must list HTTP status codes",
        ),
        (
            "old: {url: 'http://x:1'}\n" + OK_NEW + "metrics: {scrapes: 0}\n",
            3,
            "`metrics.scrapes` must be an integer ≥ 1",
        ),
        (
            "old: {url: 'http://x:1'\n" + OK_NEW,
            2,
            "invalid YAML: expected ',' or '}', but got '<scalar>'",
        ),
        (
            "old: {url: 'http://x:1'}\n"
            + OK_NEW
            + "migrations: {script_location: m, database: pg}\n",
            3,
            "`migrations.database` must be `sqlite` or a server URL "
            "(postgresql+psycopg://..., mysql+pymysql://...)",
        ),
        ("old: {command: 'python app.py'}\n" + OK_NEW, 1, "`old.command` must be an argv list"),
    ],
)
def test_config_errors_name_file_and_line(tmp_path, body, line, problem):
    path = _write(tmp_path, body)
    message = one_line_error(UsageError, lambda: load_config(path))
    assert message.startswith(f"{path.resolve()}:{line}: ")
    assert problem in message


def test_manifest_without_the_named_container(tmp_path):
    manifest = REPO / "fixtures" / "k8s" / "deployment.yaml"
    path = _write(
        tmp_path,
        "old: {url: 'http://x:1'}\n"
        + OK_NEW
        + f"readiness: {{from_manifest: '{manifest}', container: web}}\n",
    )
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path.resolve()}:3: {manifest}: no container named 'web' (found: log-shipper, app)"
    )


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError) as err:
        load_config(tmp_path / "nope.yaml")
    assert str(err.value) == f"{tmp_path / 'nope.yaml'}: no such config file"


def test_duplicate_key_is_an_error_not_a_silent_override(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("old: {url: 'http://127.0.0.1:1'}\n" + OK_NEW + "old: {url: 'http://x:2'}\n")
    with pytest.raises(UsageError) as exc:
        load_config(cfg)
    assert str(exc.value) == f"{cfg.resolve()}:3: duplicate key `old`"


def test_a_list_instead_of_a_mapping_says_what_it_got(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- old\n- new\n")
    with pytest.raises(UsageError, match=r":1: the file must be a mapping of keys \(got a list\)"):
        load_config(cfg)


def test_labels_default_to_what_names_the_release(tmp_path):
    (tmp_path / "releases" / "v1.4.2").mkdir(parents=True)
    (tmp_path / "v1.5.0.snapshot.json").write_text("{}")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "old: {command: [app], cwd: releases/v1.4.2}\nnew: {snapshot: v1.5.0.snapshot.json}\n"
    )
    config = load_config(cfg)
    assert (config.old.label, config.new.label) == ("v1.4.2", "v1.5.0")
    cfg.write_text("old: {url: 'http://127.0.0.1:9000'}\nnew: {stored: v2, label: current}\n")
    config = load_config(cfg)
    assert (config.old.label, config.new.label) == ("127.0.0.1:9000", "current")


def test_migrations_alembic_ini_keys(tmp_path):
    """The project's alembic.ini per release tree, its section, -x values, the app's
    interpreter and the starting schema."""
    from compatcheck.config import target_alembic_ini

    (tmp_path / "base.sql").write_text("CREATE TABLE t (id INTEGER PRIMARY KEY);\n")
    path = _write(
        tmp_path,
        "old: {url: 'http://x:1'}\n"
        + OK_NEW
        + "migrations:\n  alembic_ini: app/alembic.ini\n  name: tenant\n"
        + "  x: {tenant: t1, dry: 0}\n  python: .venv/bin/python\n"
        + "  base_sql: base.sql\n  base_command: python init.py {database_url}\n",
    )
    cfg = load_config(path)
    mig = cfg.migrations
    assert mig is not None
    assert (mig.alembic_ini, mig.name, mig.x, mig.python) == (
        Path("app/alembic.ini"),
        "tenant",
        ("tenant=t1", "dry=0"),
        ".venv/bin/python",
    )
    assert (mig.base_sql, mig.base_command) == (
        tmp_path / "base.sql",
        "python init.py {database_url}",
    )
    assert target_alembic_ini(cfg, cfg.old) == cfg.base_dir / "app/alembic.ini"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "migrations: {script_location: m, alembic_ini: a.ini}\n",
            "`migrations` needs `script_location`, `dir` or `alembic_ini` (one)",
        ),
        ("migrations: {database: sqlite}\n", "`migrations` needs `script_location`, `dir` or"),
        (
            "migrations: {alembic_ini: a.ini, x: [a=b]}\n",
            "`migrations.x` must be a mapping (KEY: VALUE, as -x K=V)",
        ),
    ],
)
def test_migrations_alembic_ini_errors(tmp_path, body, problem):
    path = _write(tmp_path, "old: {url: 'http://x:1'}\n" + OK_NEW + body)
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert problem in str(err.value)
