"""What the report claims about the rollback plans, through the real CLI on the demo's releases.

A plan is "verified" only when OLD's code served warm-up requests on NEW's schema; `--static`
says nothing was executed, in every format; a safe downgrade says what NEW-era data it removes
(and what the live database holds); rollback steps are the thing to do only on GO, and a deploy
(`--direction deploy`) is judged by OLD's code on NEW's schema, with no rollback advice.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from compatcheck.cli import main
from compatcheck.reporters import FORMATS
from compatcheck.schemas import validate
from tests.cli import run, run_all

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "fixtures" / "demo"
SHOP_V2 = REPO / "fixtures" / "services" / "shop" / "v2" / "migrations"
MIGRATIONS = ("migrations", "--script-location", str(SHOP_V2), "--old", "1a0c0ffee001", "-q")
ROUNDTRIP_REMOVAL = (
    "removes NEW-era data: `refunds` (2 rows), `orders.payment_method` (3 values), "
    "counted in the scratch round trip"
)
DOWNGRADE_STEP = (
    "follow the downgrade plan: run `alembic downgrade 1a0c0ffee001` (undoes `2b0c0ffee003`, "
    "then `2b0c0ffee002`), then deploy the OLD release"
)
STEPS = ("alembic downgrade", "follow the", "once the", "rollback command")


def plan_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("  plan ")]


def after_verdict(text: str) -> list[str]:
    lines = text.splitlines()
    # The report closes with the total time (below the verdict and anything waiting on it).
    assert re.fullmatch(r"done in \d+\.\d s", lines[-1]) and lines[-2] == "", lines[-2:]
    lines = lines[:-2]
    at = max(i for i, line in enumerate(lines) if re.match(r"(NO-)?GO\b", line))
    return lines[at + 1 :]


# --- compatcheck migrations ------------------------------------------------------------------


def test_migrations_rollback_of_the_demo_pair_is_go_with_the_downgrade_step() -> None:
    proc = run(*MIGRATIONS)
    assert proc.returncode == 0, proc.stderr
    assert plan_lines(proc.stdout) == [
        "  plan code-only: UNSAFE; not exercised (`compatcheck migrations` starts no release); "
        "judged by static analysis alone",
        f"  plan downgrade: safe; {ROUNDTRIP_REMOVAL}",
    ]
    assert f"  → {DOWNGRADE_STEP}" in proc.stdout.splitlines()
    assert after_verdict(proc.stdout) == []


def test_migrations_deploy_of_the_demo_pair_is_no_go() -> None:
    """OLD's pods keep running on NEW's schema during a rolling deploy, and OLD's code reads
    `orders.customer`, which NEW renames: the deploy is NO-GO whatever the downgrade plan says."""
    proc = run(*MIGRATIONS, "--direction", "deploy")
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout
    assert text.splitlines()[-3] == (
        "NO-GO: 1 blocking problem (1 finding); 3 about a later rollback "
        "(deploy 1a0c0ffee001 → 2b0c0ffee003)"
    )
    assert plan_lines(text) == [
        "  plan code-only, for this deploy: UNSAFE; not exercised (`compatcheck migrations` "
        "starts no release); judged by static analysis alone",
        f"  plan downgrade, for a later rollback: safe; {ROUNDTRIP_REMOVAL}",
    ]
    for step in STEPS:
        assert step not in text
    doc = json.loads(run(*MIGRATIONS, "--direction", "deploy", "--format", "json").stdout)
    assert validate(doc, "report") is None
    assert doc["verdict"] == "no-go"
    assert {(f["kind"], f["subject"], f["blocking"]) for f in doc["findings"]} == {
        ("migrations/old-code-incompatible", "2b0c0ffee002", True),
        ("migrations/downgrade-destructive", "2b0c0ffee002", False),
        ("migrations/downgrade-destructive", "2b0c0ffee003", False),
        ("migrations/new-data-removed", "2b0c0ffee003", False),
    }
    assert [p["applies_to"] for p in doc["plans"]] == ["this deploy", "a later rollback"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_static_plans_say_nothing_was_executed_in_every_format(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The console entry point in this process: six interpreter starts cost more than the
    # static analysis they would run (the other tests here go through a child process).
    code = main([*MIGRATIONS, "--static", "--format", fmt])
    out, err = capsys.readouterr()
    assert code == 0, err
    if fmt == "json":
        doc = json.loads(out)
        assert [p["status"] for p in doc["plans"]] == [
            "UNSAFE; static analysis only, nothing executed",
            "safe; removes NEW-era data: `refunds`, `orders.payment_method` (not counted); "
            "static analysis only, nothing executed",
        ]
        assert {p["basis_reason"] for p in doc["plans"]} == {"--static was asked for"}
        assert doc["migrations"]["roundtrip"] == {
            "status": "skipped",
            "why": "static analysis only, nothing executed: --static was asked for",
        }
    else:
        # Markdown escapes nothing here; XML and JSON carry it verbatim too.
        assert out.count("static analysis only, nothing executed") >= 2, out


def test_live_counts_are_in_the_text_under_the_plan_they_concern(tmp_path: Path) -> None:
    live = tmp_path / "live.sqlite"
    with sqlite3.connect(live) as db:
        db.execute("CREATE TABLE refunds (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, payment_method TEXT)")
        db.executemany("INSERT INTO refunds VALUES (?)", [(i,) for i in range(1204)])
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(1, "card"), (2, None), (3, "iban")])
    url_file = tmp_path / "live.url"
    url_file.write_text(f"sqlite:///{live}")
    proc = run(*MIGRATIONS, "--live-db-url", f"file:{url_file}")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = lines.index(f"  plan downgrade: safe; {ROUNDTRIP_REMOVAL}")
    assert lines[at + 1 : at + 4] == [
        "      data at risk on the live database:",
        "        `refunds`: 1,204 rows",
        "        `orders.payment_method`: 2 non-NULL values",
    ]
    warning = next(x for x in lines if "migrations/new-data-removed" in x)
    assert warning.endswith(
        "; on the live database: `refunds`: 1,204 rows; `orders.payment_method`: 2 non-NULL values."
    )


# --- compatcheck check -----------------------------------------------------------------------


@pytest.mark.slow
def test_demo_check_waits_with_its_steps_below_the_verdict_and_a_deploy_gives_no_advice() -> None:
    """The demo as a rollback (the steps wait below the verdict) and as a deploy (no rollback
    advice): two independent runs, started together."""
    rollback, deploy = run_all(
        ["check", "-c", str(DEMO / "compatcheck.yaml"), "-q"],
        ["check", "-c", str(DEMO / "compatcheck.yaml"), "-q", "--direction", "deploy"],
    )
    assert rollback.returncode == 1, rollback.stderr
    assert plan_lines(rollback.stdout) == [
        "  plan code-only: UNSAFE; verified: OLD ran on NEW's schema (5 warm-up requests replayed)",
        f"  plan downgrade: safe; {ROUNDTRIP_REMOVAL}",
    ]
    assert after_verdict(rollback.stdout) == [
        "",
        "once the 5 blocking problems are resolved:",
        f"  {DOWNGRADE_STEP}",
    ]
    assert "→ follow" not in rollback.stdout

    assert deploy.returncode == 1, deploy.stderr
    assert plan_lines(deploy.stdout)[0] == (
        "  plan code-only, for this deploy: UNSAFE; verified: OLD ran on NEW's schema "
        "(5 warm-up requests replayed)"
    )
    assert plan_lines(deploy.stdout)[1].startswith("  plan downgrade, for a later rollback: safe;")
    for step in STEPS:
        assert step not in deploy.stdout
    assert after_verdict(deploy.stdout) == []


@pytest.mark.slow
def test_compatible_check_is_verified_only_with_its_warmup(tmp_path: Path) -> None:
    # The same pair without a warm-up: OLD came up on NEW's schema, but nothing was exercised.
    text = (DEMO / "compatible.yaml").read_text()
    quiet = re.sub(r"\nwarmup:\n(  .*\n)+", "\n", text).replace("../", f"{DEMO.parent}/")
    assert "warmup" not in quiet
    cfg = tmp_path / "no-warmup.yaml"
    cfg.write_text(quiet)
    proc, unexercised = run_all(
        ["check", "-c", str(DEMO / "compatible.yaml"), "-q"], ["check", "-c", str(cfg), "-q"]
    )
    assert proc.returncode == 0, proc.stderr
    assert plan_lines(proc.stdout) == [
        "  plan code-only: safe; verified: OLD ran on NEW's schema (5 warm-up requests replayed)",
        "  plan downgrade: safe",
    ]
    assert (
        "  → follow the code-only plan: deploy the OLD release and leave the database schema at "
        "the NEW head"
    ) in proc.stdout.splitlines()
    proc = unexercised
    assert proc.returncode == 0, proc.stderr
    assert plan_lines(proc.stdout)[0] == (
        "  plan code-only: safe; not exercised (no warm-up requests); "
        "the plan's safety comes from static analysis alone"
    )
    assert "verified" not in proc.stdout
