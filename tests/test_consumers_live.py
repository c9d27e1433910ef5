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

import httpx
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


def test_serve_refuses_a_live_source_that_is_no_url_at_start(tmp_path: Path) -> None:
    """A malformed live source stops the hook before it listens, in one masked line; a
    well-formed one is not asked at start (a Prometheus down for a minute must not stop it)."""
    argv = [sys.executable, "-m", "compatcheck", "serve", "--snapshot-dir", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--consumers", "prometheus:ftp://ops:hunter2@x", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "compatcheck: error: --consumers prometheus:ftp://ops:***@x: expected "
        "prometheus:http(s)://HOST:PORT"
    ]


def _check_config(tmp: Path, consumers: list[str]) -> Path:
    config = tmp / "compatcheck.yaml"
    lines = [
        "service: shop",
        f"old: {{snapshot: {SHOP / 'v1.json'}}}",
        f"new: {{snapshot: {SHOP / 'v2.json'}}}",
        "consumers:",
        *(f"  - {json.dumps(c)}" for c in consumers),
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def test_check_reads_live_consumers_named_in_the_config(tmp_path: Path) -> None:
    """``consumers: [prometheus:URL]`` in compatcheck.yaml: `check` judges the rules that
    Prometheus loaded exactly as the rule file (paths next to it still relative to the file)."""
    unused = f"127.0.0.1:{free_port()}"
    expected = _consumer_rows(json.loads(_diff(str(RULES)).stdout))
    with running_prometheus(tmp_path / "prom", unused, RULES.read_text()) as url:
        config = _check_config(tmp_path, [f"prometheus:{url}"])
        argv = [sys.executable, "-m", "compatcheck", "check", "-c", str(config)]
        done = subprocess.run(
            [*argv, "--format", "json", "-q"], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1, done.stderr
    assert _consumer_rows(json.loads(done.stdout)) == expected != set()


def test_a_config_live_source_that_is_no_url_is_one_line(tmp_path: Path) -> None:
    config = _check_config(tmp_path, ["rules/", "prometheus:ftp://ops:hunter2@x"])
    done = subprocess.run(
        [sys.executable, "-m", "compatcheck", "config", "--validate", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"compatcheck: error: {config}:6: `consumers[1]`: expected prometheus:http(s)://HOST:PORT"
    ]


def _rules_reads(url: str) -> float:
    """How many times Prometheus answered ``/api/v1/rules`` (its own request counter)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if (
                sample.name == "prometheus_http_requests_total"
                and sample.labels.get("handler") == "/api/v1/rules"
            ):
                return float(sample.value)
    return 0.0


def test_the_hook_reads_live_rules_at_most_once_per_max_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve --consumers prometheus:URL``: the verdict names the same consumers as the rule
    file; the rules are read again only once they are older than the max age (one read for any
    number of concurrent checks), a rule change then reaches the verdict, and a Prometheus that
    cannot be asked when they are due is "cannot tell" (503), not a verdict without them."""
    from concurrent.futures import ThreadPoolExecutor

    from compatcheck.serve import inputs
    from tests.test_serve_helpers import AUTH, body, hook_clients

    now = [1000.0]
    monkeypatch.setattr(inputs, "_now", lambda: now[0])
    store = tmp_path / "store" / "shop"
    store.mkdir(parents=True)
    for v in ("v1", "v2"):
        (store / f"{v}.snapshot.json").write_bytes((SHOP / f"{v}.json").read_bytes())
    expected = _consumer_rows(json.loads(_diff(str(RULES)).stdout))
    assert expected
    clients = hook_clients()
    make = next(clients)
    unused = f"127.0.0.1:{free_port()}"
    try:
        with running_prometheus(tmp_path / "prom", unused, RULES.read_text()) as url:
            client = make(
                snapshot_dir=str(tmp_path / "store"),
                consumers=(f"prometheus:{url}",),
                live_consumers_max_age=10.0,
            )

            def check() -> httpx.Response:
                return client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH)  # type: ignore[no-any-return]

            first = check()
            assert first.status_code == 200, first.text
            assert _consumer_rows(first.json()) == expected
            reads = _rules_reads(url)
            # Prometheus drops every rule; within the max age the hook still judges with the
            # rules it read (and does not ask again).
            (tmp_path / "prom" / "rules.yml").write_text("groups: []\n")
            assert httpx.post(f"{url}/-/reload").status_code == 200
            assert httpx.get(f"{url}/api/v1/rules").json()["data"]["groups"] == []
            now[0] += 9.9
            assert _consumer_rows(check().json()) == expected
            assert _rules_reads(url) == reads + 1  # only the test's own look above
            now[0] += 0.2  # past the age: eight checks at once, one read
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: check(), range(8)))
            assert [a.status_code for a in answers] == [200] * 8
            assert all(_consumer_rows(a.json()) == set() for a in answers)
            assert _rules_reads(url) == reads + 2
        now[0] += 10.1  # Prometheus is gone and the rules are due
        gone = check()
        assert gone.status_code == 503
        assert gone.json()["error"] == (
            f"live consumers unavailable: {url}/api/v1/rules: cannot ask Prometheus: "
            "connection refused"
        )
    finally:
        clients.close()


def test_checks_waiting_for_a_failed_live_read_share_its_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prometheus down: the checks that waited while one check asked it get that answer ("cannot
    tell") instead of each asking again in turn (each up to the client's timeout); a check that
    comes after the failure asks again."""
    import threading
    import time

    from compatcheck.consumers import live
    from compatcheck.errors import UnavailableError
    from compatcheck.serve.inputs import _LiveCache

    real_fetch = live.fetch_live_rules
    asked, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def fetch(spec: str, *, timeout: float = 10.0) -> Any:
        calls.append(spec)
        asked.set()
        assert release.wait(10)
        return real_fetch(spec, timeout=timeout)  # refused: nothing listens there

    monkeypatch.setattr(live, "fetch_live_rules", fetch)
    spec = f"prometheus:http://127.0.0.1:{free_port()}"
    cache = _LiveCache(max_age=10.0, timeout=2.0)
    errors: list[str] = []

    def check() -> None:
        try:
            cache.read(spec)
        except UnavailableError as exc:
            errors.append(str(exc))

    first = threading.Thread(target=check)
    first.start()
    assert asked.wait(10)
    waiting = [threading.Thread(target=check) for _ in range(3)]
    for t in waiting:
        t.start()
    time.sleep(0.3)  # they wait on the source's lock meanwhile
    release.set()
    for t in [first, *waiting]:
        t.join(20)
    assert len(calls) == 1
    assert len(errors) == 4 and len(set(errors)) == 1 and "connection refused" in errors[0]
    check()  # later: asked again
    assert len(calls) == 2 and len(errors) == 5
