"""``compatcheck verify`` against a real Prometheus scraping the real shop, rolled back for real.

Prometheus scrapes one loopback address every second; a release of the shop is started there,
stopped, and another started in its place, which is what a rollback looks like from Prometheus.
Each test waits for what Prometheus has seen (not for a fixed time) before it asks verify.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from compatcheck.cli import main
from compatcheck.schemas import validate
from compatcheck.verify.section import VerifySection
from tests._support import failing_verify_section
from tests.prometheus import (
    ALERT_RULES,
    free_port,
    prometheus_binary,
    running_prometheus,
    running_shop,
    scraped_v1,
    traffic,
    wait_for,
    wait_for_scrapes,
)

SELECTOR = '{job="shop"}'
#: The default error rate verify builds from shop v1's contract with --error-rate-range 5s.
ERROR_RATE = (
    '(sum(rate(shop_http_requests_total{job="shop", status=~"5.."}[5s])) or vector(0)) '
    '/ sum(rate(shop_http_requests_total{job="shop"}[5s]))'
)
CHECKS = ("build", "targets", "series", "error-rate", "alerts")

#: What the team's monitoring reads: the alert Prometheus loads, and an orders panel's query.
CONSUMERS = ALERT_RULES + (
    "  - name: shop-orders\n"
    "    rules:\n"
    "      - record: shop:orders:rate1m\n"
    "        expr: sum by (status) (rate(shop_orders_total[1m]))\n"
)


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """shop v1's contract, recorded from the running release after some traffic."""
    prometheus_binary()  # skip (or fail) before starting anything
    tmp = tmp_path_factory.mktemp("contract")
    out = tmp / "v1.snapshot.json"
    with running_shop(tmp, "v1", free_port()) as shop, traffic(shop):
        wait_for_metrics(shop)
        assert main(["snapshot", shop, "-o", str(out), "--label", "v1", "-q"]) == 0
    return out


def wait_for_metrics(shop: str) -> None:
    import time

    import httpx

    for _ in range(100):
        body = httpx.get(f"{shop}/metrics", timeout=5).text
        if 'shop_orders_total{status="created"}' in body and "shop_http_requests_total{" in body:
            return
        time.sleep(0.05)
    raise AssertionError("shop v1 has no order and request series")


@pytest.fixture
def consumers(tmp_path: Path) -> Path:
    path = tmp_path / "consumers" / "shop-rules.yml"
    path.parent.mkdir()
    path.write_text(CONSUMERS)
    return path


def verify_argv(prom: str, contract: Path, consumers: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "compatcheck",
        "verify",
        "--prometheus",
        prom,
        "--selector",
        SELECTOR,
        "--expect",
        str(contract),
        "--interval",
        "500ms",
        "--error-rate-range",
        "5s",
        "--consumers",
        str(consumers),
        "--format",
        "json",
        *extra,
    ]


class Verify:
    """``compatcheck verify`` as a child process, its stderr read line by line as it comes."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_line(self, needle: str, timeout: float = 30.0) -> str:
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(needle in ln for ln in self.lines) or self.proc.poll() is not None,
                timeout,
            )
            hit = [ln for ln in self.lines if needle in ln]
        assert found and hit, f"no `{needle}` on stderr: {self.lines}"
        return hit[0]

    def finish(self, timeout: float = 60.0) -> tuple[int, dict[str, object]]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code, json.loads(out) if out.strip() else {}


def _kinds(report: dict[str, object]) -> set[tuple[str, str]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return {(f["kind"], f["subject"]) for f in findings}


def _statuses(report: dict[str, object]) -> dict[str, str]:
    section = report["verify"]
    assert isinstance(section, dict)
    return {c["name"]: c["status"] for c in section["checks"]}


@pytest.mark.slow
def test_verify_waits_through_the_rollback_then_verifies(
    tmp_path: Path, contract: Path, consumers: Path
) -> None:
    port = free_port()
    with running_prometheus(tmp_path / "prometheus", f"127.0.0.1:{port}") as prom:
        with running_shop(tmp_path, "v2", port) as shop, traffic(shop):
            wait_for(prom, 'shop_build_info{version="2.0.0"}', bool)
            verify = Verify(verify_argv(prom, contract, consumers, "--window", "60s"))
            waiting = verify.wait_line("waiting for build")
        # the rollback: v2 stops, v1 starts on the same address. Nobody orders until v1 has
        # been scraped twice with requests counted: until then the error rate has no data (it
        # would be "skipped"), and the missing order series keeps verify waiting meanwhile.
        with running_shop(tmp_path, "v1", port) as shop:
            with traffic(shop, orders=False):
                wait_for_scrapes(prom, 'shop_build_info{job="shop", version="1.0.0"}')
                wait_for(prom, ERROR_RATE, bool)
            with traffic(shop):
                code, report = verify.finish()
    assert code == 0, verify.lines
    # the waiting line names who is still wrong
    assert (
        "waiting for build (0 of 1 instances report revision `1a2b3c4`, version `1.0.0`; "
        f"127.0.0.1:{port}: reports revision `2b3c4d5`, version `2.0.0`)"
    ) in waiting
    assert verify.lines[-1].split(": ", 2)[-1].startswith("verified"), verify.lines
    assert validate(report, "report") is None
    assert report["verdict"] == "go"
    assert _kinds(report) == set()
    assert _statuses(report) == dict.fromkeys(CHECKS, "ok")
    rate = next(c for c in report["verify"]["checks"] if c["name"] == "error-rate")  # type: ignore[index]
    assert (rate["value"], rate["query"]) == (0.0, ERROR_RATE)  # no 5xx series: 0, not empty
    section = report["verify"]
    assert isinstance(section, dict)
    assert section["verified"] is True and section["polls"] >= 2
    assert section["selector"] == SELECTOR and section["expect"] == "v1"
    assert VerifySection.from_json(section).to_json() == section
    assert report["new"] == {
        "label": SELECTOR,
        "source": prom,
        "build": {"version": "1.0.0", "revision": "1a2b3c4"},
    }


@pytest.mark.slow
def test_verify_fails_when_the_old_release_fails_requests(
    tmp_path: Path, contract: Path, consumers: Path
) -> None:
    with scraped_v1(tmp_path, error_rate=0.3) as prom:
        wait_for(prom, 'ALERTS{alertname="ShopHighErrorRate", alertstate="firing"}', bool)
        verify = Verify(verify_argv(prom, contract, consumers, "--window", "2s"))
        code, report = verify.finish()
    assert code == 1, verify.lines
    assert report["verdict"] == "no-go"
    assert _kinds(report) == {
        ("verify/error-rate-high", SELECTOR),
        ("verify/alert-firing", "ShopHighErrorRate"),
    }
    assert _statuses(report) == {
        "build": "ok",
        "targets": "ok",
        "series": "ok",
        "error-rate": "failing",
        "alerts": "failing",
    }
    section = report["verify"]
    assert isinstance(section, dict)
    rate = next(c for c in section["checks"] if c["name"] == "error-rate")
    assert 0.2 < rate["value"] < 0.4  # 3 requests in 10 fail
    assert rate["query"] == ERROR_RATE
    assert "waiting for error-rate" in "\n".join(verify.lines)


@pytest.mark.slow
def test_verify_fails_while_a_series_consumers_need_stays_missing(
    tmp_path: Path, contract: Path, consumers: Path
) -> None:
    # v1 runs, but nobody orders: `shop_orders_total` (a labelled counter) has no series
    with scraped_v1(tmp_path, orders=False) as prom:
        wait_for(prom, 'shop_http_requests_total{job="shop"}', bool)
        argv = verify_argv(prom, contract, consumers, "--window", "2s", "--format", "text")
        verify = Verify(argv)
        assert verify.proc.stdout is not None
        text = verify.proc.stdout.read()
        code = verify.proc.wait(30)
    assert code == 1, verify.lines
    lines = text.splitlines()
    assert any(
        re.fullmatch(
            r"  1\. \[ERROR\] verify/series-missing shop_orders_total \(fp [0-9a-f]{8}\)", x
        )
        for x in lines
    ), text
    assert '     `shop_orders_total` has no series for `{job="shop"}`.' in lines
    assert "       record shop:orders:rate1m in group shop-orders (" in text
    assert "failing  series" in text
    assert 'NOT VERIFIED: 1 blocking problem (1 finding) (rollback {job="shop"} → v1)' in lines


@pytest.mark.slow
def test_an_error_rate_without_data_is_not_checked_not_ok(tmp_path: Path, contract: Path) -> None:
    """v1 runs and is scraped, but nobody sends a request: there is no rate to judge. The check
    says "skipped" with "no data" and no value, and the verified line names it as not checked."""
    with scraped_v1(tmp_path, requests=False) as prom:
        wait_for_scrapes(prom, 'shop_build_info{job="shop"}')
        argv = verify_argv(prom, contract, tmp_path / "none", "--window", "2s")
        argv.remove("--consumers")
        argv.remove(str(tmp_path / "none"))
        verify = Verify(argv)
        code, report = verify.finish()
    assert code == 0, verify.lines
    assert _statuses(report) == {
        "build": "ok",
        "targets": "ok",
        "series": "skipped",
        "error-rate": "skipped",
        "alerts": "ok",
    }
    rate = next(c for c in report["verify"]["checks"] if c["name"] == "error-rate")  # type: ignore[index]
    assert rate["summary"].startswith("no data: ") and rate["value"] is None
    assert rate["query"] == ERROR_RATE
    last = verify.lines[-1]
    assert "verified (build, targets, alerts hold; not checked: series: " in last
    assert "; not checked: error-rate: no data: " in last


@pytest.mark.slow
def test_verify_expects_the_contract_attached_to_an_image_digest(
    tmp_path: Path, contract: Path, consumers: Path
) -> None:
    """``--expect oci-layout:DIR@sha256:…`` resolves the contract attached to the image, as
    ``diff`` does, and verifies the running release against it."""
    import shutil

    layout = tmp_path / "layout"
    shutil.copytree(Path(__file__).parent.parent / "fixtures/oci/labelled", layout)
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    image = f"oci-layout:{layout}@{digest}"
    assert main(["snapshot", str(contract), "--attach", image, "-q"]) == 0
    with scraped_v1(tmp_path) as prom:
        wait_for_scrapes(prom, 'shop_build_info{job="shop"}')
        wait_for(prom, ERROR_RATE, bool)
        wait_for(prom, 'shop_orders_total{job="shop"}', bool)
        argv = verify_argv(prom, contract, consumers, "--window", "5s")
        argv[argv.index(str(contract))] = image
        verify = Verify(argv)
        code, report = verify.finish()
    assert code == 0, verify.lines
    assert _statuses(report) == dict.fromkeys(CHECKS, "ok")
    assert report["verify"]["expect"] == "v1"  # type: ignore[index]
    source = report["old"]["source"]  # type: ignore[index]
    named = rf"{re.escape(image)} \(contract sha256:[0-9a-f]{{64}}, created .+\)"
    assert re.fullmatch(named, source), source


def test_verify_refuses_an_image_tag_as_expect(capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["verify", "--prometheus", "http://127.0.0.1:9", "--selector", SELECTOR]
    assert main([*argv, "--expect", "oci:registry.example.com/team/shop:v1", "-q"]) == 2
    assert capsys.readouterr().err == (
        "compatcheck: error: oci:registry.example.com/team/shop:v1: artifact/not-pinned: a tag "
        "can be moved to another image, so it names no contract; give the image digest "
        "(`registry.example.com/team/shop@sha256:…`)\n"
    )


@pytest.mark.slow
def test_the_hook_verifies_with_the_operators_policy(tmp_path: Path) -> None:
    """``POST /v1/verify`` judges with the policy the hook keeps loaded (here: a build mismatch
    is only info), not with none: the same request is no-go without it."""
    from tests.test_serve_helpers import AUTH, hook_clients

    store = tmp_path / "store" / "shop"
    store.mkdir(parents=True)
    fixture = Path(__file__).parent.parent / "fixtures/snapshots/shop/v1.snapshot.json"
    (store / "v1.4.2.snapshot.json").write_bytes(fixture.read_bytes())  # another build
    policy = tmp_path / "policy.yaml"
    policy.write_text("severity:\n  verify/build-mismatch: info\n")
    clients = hook_clients()
    make = next(clients)
    try:
        with scraped_v1(tmp_path, requests=False) as prom:
            wait_for_scrapes(prom, 'shop_build_info{job="shop"}')
            body = {"prometheus": prom, "selector": SELECTOR, "expect": {"version": "v1.4.2"}}
            answers = {}
            for name, files in (("with", (str(policy),)), ("without", ())):
                client = make(
                    snapshot_dir=str(tmp_path / "store"), allow_prometheus=(prom,), policy=files
                )
                answers[name] = client.post("/v1/verify", json=body, headers=AUTH).json()
    finally:
        clients.close()
    for answer in answers.values():
        assert [f["kind"] for f in answer["findings"]] == ["verify/build-mismatch"], answer
    assert (answers["with"]["go"], answers["without"]["go"]) == (True, False)
    assert answers["with"]["findings"][0]["severity"] == "info"


@pytest.mark.slow
def test_the_hook_verifies_against_the_contract_attached_to_an_image(
    tmp_path: Path, contract: Path
) -> None:
    """``/v1/verify`` with ``expect: {"image": "REPO@sha256:…"}``: the contract attached to that
    digest in a real registry, within the hook's ``allow_images``; a tag is refused."""
    from compatcheck.artifact.contract import attach_contract
    from tests.test_artifact_registry import ML, Pusher, _start_registry, _stop
    from tests.test_serve_helpers import AUTH, hook_clients

    registry = _start_registry(tmp_path / "registry")
    clients = hook_clients()
    try:
        digest = Pusher(registry.url).image("team/shop", "v1", ML.image(ML.FULL_LABELS))
        image = f"{registry.host}/team/shop@{digest}"
        attach_contract(f"oci:{image}", contract.read_bytes(), "2026-05-01T00:00:00Z")
        with scraped_v1(tmp_path, requests=False) as prom:
            wait_for_scrapes(prom, 'shop_build_info{job="shop"}')
            client = next(clients)(
                snapshot_dir=None,
                allow_prometheus=(prom,),
                allow_images=(f"{registry.host}/team/*",),
            )

            def verify(expect: dict[str, str]) -> object:
                body = {"prometheus": prom, "selector": SELECTOR, "expect": expect}
                return client.post("/v1/verify", json=body, headers=AUTH)

            ok = verify({"image": image})
            tagged = verify({"image": f"{registry.host}/team/shop:v1"})
            elsewhere = verify({"image": image.replace("/team/", "/other/")})
    finally:
        clients.close()
        _stop(registry.process)
    assert ok.status_code == 200, ok.text  # type: ignore[attr-defined]
    report = ok.json()  # type: ignore[attr-defined]
    assert report["go"] is True and report["verify"]["expect"] == "v1"
    assert report["old"]["source"].startswith(f"oci:{image} (contract sha256:")
    assert tagged.status_code == 400 and "artifact/not-pinned" in tagged.text  # type: ignore[attr-defined]
    assert elsewhere.status_code == 403  # type: ignore[attr-defined]


def test_verify_exits_3_when_prometheus_cannot_be_asked(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    contract = Path(__file__).parent.parent / "fixtures/snapshots/shop/v1.snapshot.json"
    port = free_port()  # nothing listens there
    argv = ["verify", "--prometheus", f"http://127.0.0.1:{port}", "--selector", SELECTOR]
    assert main([*argv, "--expect", str(contract), "--window", "5s", "-q"]) == 3
    err = capsys.readouterr().err
    assert err == (
        f"compatcheck: error: http://127.0.0.1:{port}/api/v1/query: cannot ask Prometheus: "
        "connection refused\n"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--selector", "shop"],
            "compatcheck: error: --selector 'shop': expected label matchers like "
            "'{job=\"shop\"}'\n",
        ),
        (
            ["--selector", SELECTOR, "--error-rate", "sum(rate(x[5m]"],
            "compatcheck: error: --error-rate 'sum(rate(x[5m]': not PromQL: ",
        ),
        (
            ["--selector", SELECTOR, "--expect", "stored:v1"],
            "compatcheck: error: --expect stored:v1: needs --snapshot-dir and --service\n",
        ),
    ],
)
def test_verify_bad_arguments_exit_2(args: list[str], line: str, capsys) -> None:  # type: ignore[no-untyped-def]
    contract = Path(__file__).parent.parent / "fixtures/snapshots/shop/v1.snapshot.json"
    base = ["verify", "--prometheus", "http://127.0.0.1:9", "--expect", str(contract)]
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1


def _section_report() -> object:
    from compatcheck.engine import EvaluateOptions, evaluate
    from compatcheck.model import Finding
    from compatcheck.snapshot import Snapshot

    section = failing_verify_section()
    finding = Finding(
        "verify/error-rate-high",
        SELECTOR,
        f"The error rate of `{SELECTOR}` is 0.3, over the limit 0.015.",
        {"query": "sum(rate(x[5m]))", "value": 0.3, "limit": 0.015},
    )
    return evaluate(
        Snapshot(label="v1", build={"version": "1.0.0"}),
        Snapshot(label=SELECTOR, source="http://prom:9090"),
        EvaluateOptions(extra_findings=(finding,), verify=section),
    )


def test_the_verify_section_in_every_format() -> None:
    from compatcheck.reporters import FORMATS, render

    report = _section_report()
    out = {fmt: render(report, fmt) for fmt in FORMATS}  # type: ignore[arg-type]
    doc = json.loads(out["json"])
    assert validate(doc, "report") is None
    assert VerifySection.from_json(doc["verify"]).to_json() == doc["verify"]
    assert [c["status"] for c in doc["verify"]["checks"]] == [
        "ok",
        "ok",
        "skipped",
        "failing",
        "ok",
    ]
    assert "failing  error-rate  0.3 > 0.015" in out["text"]
    assert "      query: sum(rate(x[5m]))" in out["text"]
    assert "NOT VERIFIED: 1 blocking problem (1 finding) (rollback" in out["text"]
    assert out["markdown"].startswith("## compatcheck: NOT VERIFIED for rollback")
    assert "### Verification" in out["markdown"]
    assert (
        "| `error-rate` | failing | 0.3 \\> 0.015<br>{}: 0.3 | `sum(rate(x[5m]))` |"
        in (out["markdown"])
    )
    assert 'name="verify error-rate" value="failing: 0.3 &gt; 0.015"' in out["junit"]
    sarif = json.loads(out["sarif"])
    assert sarif["runs"][0]["properties"]["verify"] == doc["verify"]
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["verify/error-rate-high"]
    assert "compatcheck: verify error-rate: failing: 0.3 > 0.015" in out["github"]
    assert "::error " in out["github"]
    assert '<h2 id="verify">Verification</h2>' in out["html"]
    assert (
        '<tr><td><code>error-rate</code></td><td class="unsafe">failing</td>'
        "<td>0.3 &gt; 0.015<br>{}: 0.3</td><td><code>sum(rate(x[5m]))</code></td></tr>"
    ) in out["html"]


def test_a_hook_verify_request_without_a_window_is_one_poll(tmp_path: Path) -> None:
    """Argo repeats the measurement itself: a `/v1/verify` body without `window` is one poll
    (a window of 0), not a refusal of the CLI's own `--window=0s`."""
    from compatcheck.serve.verify import parse_verify_request

    body = {"prometheus": "http://prom:9090", "selector": SELECTOR, "expect": {"version": "v1"}}
    req = parse_verify_request(
        body, allow=("http://prom:9090",), snapshot_dir=str(tmp_path), fail_on="error"
    )
    assert req.window == 0.0 and req.args.window == 0.0
    req = parse_verify_request(
        {**body, "window": "20s"},
        allow=("http://prom:9090",),
        snapshot_dir=str(tmp_path),
        fail_on="error",
    )
    assert req.window == 20.0
