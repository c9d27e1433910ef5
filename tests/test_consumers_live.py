"""``--consumers prometheus:URL`` against a real Prometheus that loaded the shop's rule file.

The same rule file is given once as a file and once through the Prometheus that loaded it: the
run must name exactly the same alerts and records, with the same findings, and name each by its
group and the rule file as Prometheus reports it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compatcheck.consumers import load_consumers
from tests.prometheus import free_port, running_prometheus

SHOP = Path(__file__).resolve().parent.parent / "fixtures" / "consumers" / "shop"
RULES = SHOP / "rules" / "shop-alerts.yml"


def _diff(consumers: str, fmt: str = "json") -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "compatcheck", "diff", str(SHOP / "v1.json")]
    argv += [str(SHOP / "v2.json"), "--consumers", consumers, "--format", fmt, "-q"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _consumer_rows(report: dict[str, Any]) -> set[tuple[str, str, str, str, str | None]]:
    """(finding kind, subject, consumer type, name, group) of every consumer finding."""
    rows = set()
    for f in report["findings"]:
        for c in f.get("consumers") or []:
            rows.add((f["kind"], f["subject"], c["type"], c["name"], c.get("group")))
    return rows


def test_live_rules_name_the_same_consumers_as_the_file(tmp_path: Path) -> None:
    unused = f"127.0.0.1:{free_port()}"  # nothing to scrape: only the rules matter here
    with running_prometheus(tmp_path / "prom", unused, RULES.read_text()) as url:
        live = _diff(f"prometheus:{url}")
        text = _diff(f"prometheus:{url}", "text").stdout
        loaded = load_consumers([f"prometheus:{url}"])
    from_file = _diff(str(RULES))
    assert from_file.returncode == live.returncode == 1, live.stderr + from_file.stderr
    live_report, file_report = json.loads(live.stdout), json.loads(from_file.stdout)
    rows = _consumer_rows(file_report)
    assert rows  # the fixture breaks some of its alerts: the comparison is not of two empties
    assert _consumer_rows(live_report) == rows
    # Every consumer of the file, flagged or not, is read live with its group.
    from_disk = load_consumers([RULES])
    assert {(s, c.type, c.name, c.group) for s, c in loaded.consumers.items()} == {
        (s, c.type, c.name, c.group) for s, c in from_disk.consumers.items()
    }
    # Named by the rule file as Prometheus reports it; Prometheus reports no line.
    reported = str(tmp_path / "prom" / "rules.yml")
    assert {(c.file, c.line) for c in loaded.consumers.values()} == {(reported, None)}
    named = {f"{t} {n} in group {g} ({reported})" for _, _, t, n, g in rows}
    assert {line for line in named if line in text} == named


def test_unreachable_prometheus_is_one_masked_line_exit_3() -> None:
    url = f"http://ops:hunter2@127.0.0.1:{free_port()}"  # nothing listens there
    done = _diff(f"prometheus:{url}")
    assert done.returncode == 3
    shown = f"http://ops:***@127.0.0.1:{url.rsplit(':', 1)[1]}/api/v1/rules"
    assert done.stderr.splitlines() == [
        f"compatcheck: error: {shown}: cannot ask Prometheus: connection refused"
    ]
    assert done.stdout == ""


@pytest.mark.parametrize("spec", ["prometheus:", "prometheus:ftp://x", "prometheus:http://"])
def test_live_source_that_is_no_http_url_is_exit_2(spec: str) -> None:
    done = _diff(spec)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"compatcheck: error: --consumers {spec}: expected prometheus:http(s)://HOST:PORT"
    ]


def test_serve_refuses_a_live_source_at_start(tmp_path: Path) -> None:
    """The hook keys its loaded consumers by file content; a live source is refused in one line
    before it listens, not on every request."""
    spec = "prometheus:http://ops:hunter2@127.0.0.1:9090"
    argv = [sys.executable, "-m", "compatcheck", "serve", "--snapshot-dir", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--consumers", spec, "--port", "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "compatcheck: error: --consumers prometheus:http://ops:***@127.0.0.1:9090: serve reads "
        "rule files and dashboards only (prometheus:URL is for diff, check and verify)"
    ]
