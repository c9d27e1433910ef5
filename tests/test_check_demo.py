"""The README's demo end to end on real services: v2 → v1 is no-go for the right reasons, and the
compatible pair v3 → v2 is go with nothing to report."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from compatcheck.config import load_config
from compatcheck.engine import EvaluateOptions
from compatcheck.report import Report
from tests.cli import run
from tests.conftest import DemoRun

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


def _evaluate(name: str, run: DemoRun) -> Report:
    """The verdict as ``check -c NAME`` judges it, from the session's one run of NAME."""
    config = load_config(DEMO / name)
    return run.result.evaluate(EvaluateOptions(consumers=tuple(str(p) for p in config.consumers)))


def test_demo_rollback_is_no_go_naming_every_break(demo_check: DemoRun) -> None:
    report = _evaluate("compatcheck.yaml", demo_check)
    assert report.verdict == "no-go"
    keys = {
        (rf.finding.kind, rf.finding.subject)
        for rf in report.findings
        if not rf.finding.kind.startswith("consumers/")
    }
    assert keys == {
        ("metrics/renamed", "shop_orders_created_total"),
        ("metrics/help-changed", "shop_orders_created_total"),
        ("metrics/label-removed", "shop_orders_created_total{payment_method}"),
        ("metrics/buckets-changed", "shop_request_duration_seconds"),
        ("metrics/family-removed", "shop_db_pool_connections"),
        ("readiness/field-missing", "/readyz#/db_connected"),
        ("readiness/contract-violated", "/readyz#/db_connected"),
        ("migrations/old-code-incompatible", "2b0c0ffee002"),
        ("migrations/downgrade-destructive", "2b0c0ffee002"),
        ("migrations/downgrade-destructive", "2b0c0ffee003"),
        ("migrations/new-data-removed", "2b0c0ffee003"),
    }
    assert report.migrations is not None
    assert report.migrations.old_head == "1a0c0ffee001"
    assert report.migrations.new_head == "2b0c0ffee003"
    assert (report.old.build["version"], report.new.build["version"]) == ("1.0.0", "2.0.0")
    assert list(demo_check.tmp.iterdir()) == []


def test_compatible_rollback_is_go(compatible_check: DemoRun) -> None:
    report = _evaluate("compatible.yaml", compatible_check)
    assert [(rf.finding.kind, rf.finding.subject) for rf in report.findings] == []
    assert report.verdict == "go"
    assert list(compatible_check.tmp.iterdir()) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, cwd=DEMO.parent.parent)


@pytest.mark.slow  # its own run of the demo through the console entry point
def test_demo_text_report_reads_causes_first(isolated_tmp):
    """The on-call view of the demo: five causes, each once, consumers nested under them, a fix
    per cause; the command as it ran; the full downgrade path; the total time last."""
    proc = _cli("check", "-c", "fixtures/demo/compatcheck.yaml", "-q")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    causes = [re.sub(r" \(fp [0-9a-f]{8}\)$", "", x) for x in lines if re.match(r"  \d+\. \[", x)]
    assert causes == [
        "  1. [ERROR] metrics/buckets-changed shop_request_duration_seconds",
        "  2. [ERROR] metrics/family-removed shop_db_pool_connections",
        "  3. [ERROR] metrics/label-removed shop_orders_created_total{payment_method}",
        "  4. [ERROR] metrics/renamed shop_orders_created_total",
        "  5. [ERROR] readiness/contract-violated /readyz#/db_connected",
        "  6. [warning, not blocking] migrations/downgrade-destructive 2b0c0ffee002",
        "  7. [warning, not blocking] migrations/downgrade-destructive 2b0c0ffee003",
    ]
    assert lines[1] == "  ran: compatcheck check -c fixtures/demo/compatcheck.yaml -q"
    assert "{python}" not in proc.stdout and "{port}" not in proc.stdout
    assert "goes blank" not in proc.stdout
    assert "     also: readiness/field-missing (fp " in proc.stdout
    assert "  downgrade path: 2b0c0ffee003 → 2b0c0ffee002 → 1a0c0ffee001 (OLD head)" in lines
    assert (
        "          rewrite the queries below to `shop_orders_created_total or shop_orders_total`"
        " (works on both releases)" in lines
    )
    assert (
        "          or bridge it: `compatcheck check -c fixtures/demo/compatcheck.yaml -q "
        "--emit-bridge-rules bridge-rules.yml`" in lines
    )
    # Errors a safe plan relaxes are listed under MIGRATIONS, never as blocking causes above it
    # (cause tags are upper case: `[ERROR] kind subject`).
    above = proc.stdout.split("MIGRATIONS")[0]
    assert "[ERROR] migrations/" not in above and "[error]" not in above
    assert lines[-6] == (
        "NO-GO: 5 blocking problems (12 findings); 2 warnings, 1 moot under a safe plan "
        "(rollback v2 → v1)"
    )
    assert re.fullmatch(r"done in \d+\.\d s", lines[-1])
    assert list(isolated_tmp.iterdir()) == []
