"""The README's demo end to end on real services: v2 → v1 is no-go for the right reasons, and the
compatible pair v3 → v2 is go with nothing to report."""

from __future__ import annotations

from pathlib import Path

import pytest

from compatcheck.config import load_config
from compatcheck.engine import EvaluateOptions
from compatcheck.report import Report
from tests.conftest import DemoRun

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"

pytestmark = pytest.mark.slow


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
