"""Where a person or a controller waits, compatcheck must not import what it does not use:
``--help`` and the snapshot gate (``diff`` of two stored snapshots) never load the HTTP client,
the ASGI stack, jsonschema, PyYAML, fastjsonschema or the XML reporters (bench/gate.py measures
the time; this keeps the cause away)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "fixtures" / "snapshots" / "shop"
HEAVY = (
    "httpx",
    "starlette",
    "uvicorn",
    "jsonschema",
    "sqlalchemy",
    "alembic",
    "yaml",
    "fastjsonschema",
    "decimal",
    "xml.etree",
)


def _loaded_after(code: str) -> set[str]:
    probe = (
        "import sys, json\n"
        f"{code}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_help_imports_nothing_heavy() -> None:
    code = (
        "from compatcheck.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert _loaded_after(code) == set()


def test_the_snapshot_gate_loads_no_http_client_and_no_jsonschema() -> None:
    old, new = SHOP / "v1.snapshot.json", SHOP / "v2.snapshot.json"
    code = (
        "from compatcheck.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['diff', {str(old)!r}, {str(new)!r}])\n"
        "assert code in (0, 1), code"
    )
    # The catalogue is read from its decoded copy, the snapshot schema's validator from its
    # written code, the text report without the other formats' XML: none of them loads.
    assert _loaded_after(code) == set()


def test_the_migrations_package_leaves_the_sql_parser_to_sql_histories() -> None:
    """``check`` imports the migrations package before its services start; sqlglot (the SQL
    reader) is for SQL-file histories and raw SQL only, and loads when one is read."""
    probe = (
        "import sys\n"
        "import compatcheck.migrations\n"
        "from compatcheck.migrations.sources import open_source\n"
        "print('sqlglot' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]
