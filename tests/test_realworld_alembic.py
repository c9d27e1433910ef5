"""Real applications' Alembic folders, exactly as they ship in their published packages
(``fixtures/realworld/alembic/``), run by compatcheck in each application's own virtual
environment (``--python``), with its unmodified ``alembic.ini`` and ``env.py`` and its starting
schema (``--base-command``), on SQLite, PostgreSQL and MariaDB; the findings must be exactly
``expected.yaml``'s (written from reading the revisions, checked against plain Alembic: the
"Ground truth" of each ``EXPECTED.md``).

Marker ``realworld``: the venvs are built once (``make_venvs.py``'s ``build_venv``, cached under
``~/.cache/compatcheck-tests/venvs`` by the requirements' hash).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck.schemas import validate

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "realworld" / "alembic"
sys.path.insert(0, str(HERE))
from make_venvs import App, build_venv, compatcheck_command  # noqa: E402

pytestmark = pytest.mark.realworld

DIALECTS = ("sqlite", "postgresql", "mysql")


def expected_of(app: str) -> dict[str, Any]:
    data = yaml.safe_load((HERE / app / "expected.yaml").read_text())
    assert isinstance(data, dict)
    return data


def pairs(items: Any) -> set[tuple[str, str]]:
    return {(str(k), str(s)) for k, s in items or ()}


def run_app(
    app: str, db_url: str | None, tmp_path: Path, *, preload: bool = True
) -> tuple[int, dict[str, Any], str]:
    exp = expected_of(app)
    venv, _seconds, _built = build_venv(app, exp["version"], sys.executable)
    spec = App(app, {"version": exp["version"]}, venv)
    out = tmp_path / "report.json"
    argv, env = compatcheck_command(spec, db_url, tmp_path, out, preload=preload)
    argv = [a for a in argv if a != "-q"]  # progress says what the run did (copies, walk)
    done = subprocess.run(
        argv, cwd=spec.workdir, env=env, capture_output=True, text=True, timeout=900
    )
    doc = json.loads(out.read_text())
    assert validate(doc, "report") is None
    return done.returncode, doc, done.stderr


def server_url(dialect: str, request: pytest.FixtureRequest) -> str | None:
    if dialect == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url" if dialect == "postgresql" else "mysql_url"))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_buildbot_every_broken_downgrade(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Buildbot 4.3.0, 059 → 067: the static findings, and every broken downgrade plain Alembic
    meets one revision at a time (067 and 060 everywhere, 065 on SQLite and MariaDB), in one run;
    pytest-alembic stops at the first and names 066."""
    exp = expected_of("buildbot")
    code, doc, stderr = run_app("buildbot", server_url(dialect, request), tmp_path)
    want = pairs(exp["static"]) | pairs(exp["roundtrip"]) | pairs(exp["dialects"].get(dialect))
    assert {(f["kind"], f["subject"]) for f in doc["findings"]} == want, stderr
    assert code == 1
    mig = doc["migrations"]
    assert mig["downgrade_path"] == exp["path"]
    trip = mig["roundtrip"]
    failed = [trip["failure"]["revision"]] + [f["revision"] for f in trip["later_failures"]]
    assert failed == [r for r in exp["path"] if ("migrations/downgrade-failed", r) in want]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_mlflow_as_shipped(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """MLflow 3.17.2, 89d3d66ed43f → dc11669786a5: env.py and a revision import the app, the
    starting schema is MLflow's initial_models, one data migration rejects compatcheck's seeded
    span rows (the round trip then runs again without rows in the tables it touches, and says
    so: the rest, `jobs` included, is still checked). Static: exactly expected.yaml (no
    widening, generated-column or loop false alarms). MariaDB: both broken downgrades plain
    Alembic meets (dc11669786a5, a8b9c0d1e2f3); pytest-alembic names only the first, wrongly."""
    exp = expected_of("mlflow")
    code, doc, stderr = run_app("mlflow", server_url(dialect, request), tmp_path)
    want = pairs(exp["static"]) | pairs(exp["dialects"].get(dialect))
    trip = doc["migrations"]["roundtrip"]
    if trip["status"] == "completed":
        want |= pairs(exp["roundtrip"])
    # else: a downgrade failed (MariaDB): the schema after it is not OLD's to compare with.
    assert {(f["kind"], f["subject"]) for f in doc["findings"]} == want, stderr
    assert code == 1
    assert trip["status"] == ("downgrade-failed" if dialect == "mysql" else "completed")
    # Its fresh databases (the rerun, MariaDB's walk) are copies at OLD: on MariaDB that takes
    # copying mlflow's trigger `prevent_secrets_aad_mutation` (a database with one was rebuilt).
    assert "a copy of the database at OLD taken" in stderr, stderr
    assert "no copy of the database" not in stderr and "no more copies" not in stderr, stderr
    if trip["status"] == "completed":
        assert "spans" in trip["seed_errors"] and "jobs" in trip["seeded"]
        assert "75868b020152" in trip["seed_errors"]["spans"]
    assert doc["migrations"]["downgrade_path"] == exp["path"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_keystone_branches_by_design(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Keystone 30.0.0, 27e647c0fad4 → heads: two heads by design (branch_labels expand and
    contract), so no multiple-heads; the path is the order ``alembic downgrade 27e647c0fad4``
    runs; no revision has a downgrade(): the first fails as itself (its AttributeError is the
    evidence of its downgrade-missing, not a second finding), and the walk passes over the
    other eight, which never spell the name (no fresh database to watch each fail). GO: the
    code-only plan is safe (expand/contract)."""
    exp = expected_of("keystone")
    code, doc, stderr = run_app("keystone", server_url(dialect, request), tmp_path)
    assert {(f["kind"], f["subject"]) for f in doc["findings"]} == pairs(exp["static"]), stderr
    assert code == exp["compatcheck"]["exit"], stderr
    mig = doc["migrations"]
    assert mig["downgrade_path"] == exp["path"]
    assert mig["heads"] == exp["heads"]
    assert mig["new_head"] == ",".join(exp["heads"])
    trip = mig["roundtrip"]
    first, *others = exp["roundtrip_failed"]
    assert trip["failure"]["revision"] == first and "later_failures" not in trip
    assert list(trip["passed_over"]) == others
    missing = {f["subject"]: f for f in doc["findings"]}
    assert "has no attribute 'downgrade'" in missing["c88cdce8f248"]["evidence"]["error"]


def test_keystone_without_its_initialisation(tmp_path: Path) -> None:
    """As plain Alembic: 27e647c0fad4 reads CONF.saml, which only keystone.conf.configure()
    registers; the round trip stops there with the app's own error, and the report (exit 3)
    still has every static finding and the path."""
    exp = expected_of("keystone")
    code, doc, stderr = run_app("keystone", None, tmp_path, preload=False)
    want = exp["compatcheck"]["without_preload"]
    assert code == 3, stderr
    trip = doc["migrations"]["roundtrip"]
    assert trip["status"] == "upgrade-failed"
    assert trip["failure"] == want
    found = {(f["kind"], f["subject"]) for f in doc["findings"]}
    assert found == pairs(exp["static"]) | {("check/unavailable", want["revision"])}
    assert doc["migrations"]["downgrade_path"] == exp["path"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_mailman_env_py_reads_its_own_config(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """GNU Mailman 3.3.10, 98224512c9c2 → 8cc1f79f4459: a ``package:path`` script location
    (resolved in the app's venv); env.py ignores the URL and connection it is given and reads
    Mailman's mailman.cfg (written by the starting-schema script for each scratch database);
    2156fc3f6f7d's downgrade does nothing on SQLite, which only the round trip can tell."""
    exp = expected_of("mailman")
    code, doc, stderr = run_app("mailman", server_url(dialect, request), tmp_path)
    want = pairs(exp["static"]) | pairs(exp["dialects"].get(dialect))
    assert {(f["kind"], f["subject"]) for f in doc["findings"]} == want, stderr
    assert code == 0, stderr
    mig = doc["migrations"]
    assert mig["downgrade_path"] == exp["path"]
    assert mig["roundtrip"]["status"] == "completed"
    if dialect == "sqlite":
        (mismatch,) = [f for f in doc["findings"] if f["kind"] == "migrations/roundtrip-mismatch"]
        assert "mailinglist.dmarc_addresses" in mismatch["message"]
