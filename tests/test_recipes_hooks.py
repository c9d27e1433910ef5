"""The hook recipes against a real ``compatcheck serve``: Argo's AnalysisTemplate, Flagger's
webhook, Spinnaker's monitored webhook and the Kubernetes manifest (two replicas on Redis), then
post-rollback verification with a real Prometheus scraping the real shop. Each recipe's request
is taken from its YAML, not retyped here.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import yaml

from .test_serve_helpers import REPO, SNAPSHOTS, TOKEN, HookProcess, hook_process

RECIPES = REPO / "recipes"


# -- the hook recipes: a real uvicorn server ------------------------------------------------------


@pytest.fixture(scope="module")
def hook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookProcess]:
    log = tmp_path_factory.mktemp("hook") / "hook.log"
    with hook_process(["--snapshot-dir", str(SNAPSHOTS)], log) as proc:
        yield proc


def on_hook(hook: HookProcess, url: str) -> str:
    """The recipe's in-cluster URL, pointed at the test hook (same path and query)."""
    parts = urlsplit(url)
    return hook.url + parts.path + (f"?{parts.query}" if parts.query else "")


def substitute(value: Any, pattern: str, args: dict[str, str]) -> Any:
    """Replace the tool's placeholders (Argo ``{{args.x}}``, Spinnaker ``${parameters.x}``)."""
    if isinstance(value, str):
        return re.sub(pattern, lambda m: args[m.group(1)], value)
    if isinstance(value, list):
        return [substitute(v, pattern, args) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, pattern, args) for k, v in value.items()}
    return value


def json_path(doc: Any, path: str) -> Any:
    """The ``$.a.b`` subset of JSONPath the recipes use (Argo wraps it in ``{...}``)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    assert re.fullmatch(r"\$(\.\w+)+", path), path
    for key in path[2:].split("."):
        doc = doc[key]
    return doc


@pytest.mark.parametrize(
    ("old", "new", "phase"),
    [
        ("v1", "v2", "Successful"),
        ("v3", "v4", "Failed"),
        ("v0", "v1", "Error"),
        ("v9", "v1", "Error"),
    ],
)
def test_argo_analysis_template(hook: HookProcess, old: str, new: str, phase: str) -> None:
    template = yaml.safe_load((RECIPES / "argo-analysistemplate.yaml").read_text())
    assert template["kind"] == "AnalysisTemplate"
    (metric,) = template["spec"]["metrics"]
    args = {"service": "shop", "old-version": old, "new-version": new, "compatcheck-token": TOKEN}
    assert {a["name"] for a in template["spec"]["args"]} == set(args)
    web = substitute(metric["provider"]["web"], r"\{\{\s*args\.([\w-]+)\s*\}\}", args)
    headers = {h["key"]: h["value"] for h in web["headers"]}
    resp = httpx.request(
        web["method"],
        on_hook(hook, web["url"]),
        headers=headers,
        content=json.dumps(web["jsonBody"]),
        timeout=web["timeoutSeconds"],
    )
    # Argo: a non-2xx answer is an Error measurement; otherwise jsonPath then successCondition.
    if not 200 <= resp.status_code < 300:
        got = "Error"
    else:
        result = json_path(resp.json(), web["jsonPath"])
        assert metric["successCondition"] == "result == true"
        got = "Successful" if result is True else "Failed"
    assert got == phase


def flagger_call(hook: HookProcess, old: str, new: str) -> httpx.Response:
    canary = yaml.safe_load((RECIPES / "flagger-canary.yaml").read_text())
    (webhook,) = canary["spec"]["analysis"]["webhooks"]
    assert webhook["type"] == "pre-rollout"
    metadata = {**webhook["metadata"], "old": old, "new": new, "token": TOKEN}
    # Flagger's CanaryWebhookPayload, POSTed with only a Content-Type header.
    payload = {
        "name": canary["metadata"]["name"],
        "namespace": canary["metadata"]["namespace"],
        "phase": "Progressing",
        "checksum": "7c9f5d8b6d",
        "metadata": metadata,
    }
    return httpx.post(
        on_hook(hook, webhook["url"]),
        content=json.dumps(payload),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("old", "new", "status"), [("v1", "v2", 200), ("v3", "v4", 412), ("v0", "v1", 503)]
)
def test_flagger_webhook(hook: HookProcess, old: str, new: str, status: int) -> None:
    resp = flagger_call(hook, old, new)
    assert resp.status_code == status
    passes = 200 <= resp.status_code <= 202  # Flagger's rule; it retries 429 and 5xx
    assert passes == (status == 200)
    if status == 412:
        assert resp.json()["error"].startswith("no-go: rollback v4 → v3: ")


@pytest.mark.parametrize(
    ("old", "new", "final"),
    [("v1", "v2", "SUCCEEDED"), ("v3", "v4", "TERMINAL"), ("v0", "v1", "TERMINAL")],
)
def test_spinnaker_monitored_webhook(hook: HookProcess, old: str, new: str, final: str) -> None:
    stage = json.loads((RECIPES / "spinnaker-stage.json").read_text())
    params = {"service": "shop", "oldVersion": old, "newVersion": new, "compatcheckToken": TOKEN}
    stage = substitute(stage, r"\$\{parameters\.(\w+)\}", params)
    assert stage["waitForCompletion"] is True
    assert stage["statusUrlResolution"] == "locationHeader"
    assert 429 in stage["retryStatusCodes"]
    url = on_hook(hook, stage["url"])
    resp = httpx.request(
        stage["method"], url, headers=stage["customHeaders"], content=json.dumps(stage["payload"])
    )
    assert resp.status_code == 202
    status_url = urljoin(url, resp.headers["Location"])  # orca resolves it against the stage URL
    success = set(stage["successStatuses"].split(","))
    terminal = set(stage["terminalStatuses"].split(","))
    deadline = time.monotonic() + 20
    while True:
        poll = httpx.get(status_url, headers=stage["customHeaders"])
        assert poll.status_code == 200
        status = json_path(poll.json(), stage["statusJsonPath"])
        if status in success | terminal or time.monotonic() > deadline:
            break
        assert status == "RUNNING"
        time.sleep(0.05)
    assert status == final
    if final == "TERMINAL":
        assert json_path(poll.json(), stage["progressJsonPath"])


def test_spinnaker_unknown_version_fails_fast(hook: HookProcess) -> None:
    stage = json.loads((RECIPES / "spinnaker-stage.json").read_text())
    params = {"service": "shop", "oldVersion": "v9", "newVersion": "v1", "compatcheckToken": TOKEN}
    stage = substitute(stage, r"\$\{parameters\.(\w+)\}", params)
    resp = httpx.post(
        on_hook(hook, stage["url"]),
        headers=stage["customHeaders"],
        content=json.dumps(stage["payload"]),
    )
    assert resp.status_code in stage["failFastStatusCodes"]


def test_kubernetes_hook_manifest_runs_two_replicas_on_redis(tmp_path: Path) -> None:
    """The manifest's container args and ConfigMap, with the mounts materialised, are accepted by
    compatcheck's own parser and settings (the policy parsed, the state URL checked), and the
    Services, probes and NetworkPolicy point at what the Deployments run."""
    from urllib.parse import urlsplit

    from compatcheck.serve import create_app
    from compatcheck.serve.settings import settings_from_args
    from compatcheck.serve.state import parse_state_url

    from .test_serve import parse_serve_args

    docs = list(yaml.safe_load_all((RECIPES / "kubernetes-hook.yaml").read_text()))
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    hook = by[("Deployment", "compatcheck")]
    redis = by[("Deployment", "compatcheck-redis")]
    assert (hook["spec"]["replicas"], redis["spec"]["replicas"]) == (2, 1)
    labels = hook["spec"]["template"]["metadata"]["labels"]
    assert hook["spec"]["selector"]["matchLabels"] == labels
    assert by[("Service", "compatcheck")]["spec"]["selector"] == labels
    assert by[("PodDisruptionBudget", "compatcheck")]["spec"]["selector"]["matchLabels"] == labels
    policy = by[("NetworkPolicy", "compatcheck-redis")]["spec"]
    assert policy["podSelector"]["matchLabels"] == redis["spec"]["template"]["metadata"]["labels"]
    assert policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == labels

    pod = hook["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    etc = tmp_path / "etc"
    etc.mkdir()
    for name, text in by[("ConfigMap", "compatcheck-config")]["data"].items():
        (etc / name).write_text(text)
    (tmp_path / "token").write_text("t0ken\n")
    mounted = {
        "/etc/compatcheck/compatcheck.yaml": str(etc / "compatcheck.yaml"),
        "/var/run/compatcheck/token": str(tmp_path / "token"),
    }
    assert container["args"][0] == "serve"
    settings = settings_from_args(
        parse_serve_args(*(mounted.get(a, a) for a in container["args"][1:]))
    )
    assert (settings.host, settings.port, settings.token) == ("0.0.0.0", 8080, "t0ken")
    assert settings.allow_images == ("registry.example.com/team/*",)
    assert settings.check_timeout < pod["terminationGracePeriodSeconds"]
    assert settings.state is not None
    state = urlsplit(parse_state_url(settings.state).url)
    redis_service = by[("Service", "compatcheck-redis")]["spec"]
    assert (state.hostname, state.port) == ("compatcheck-redis", redis_service["ports"][0]["port"])
    create_app(settings)  # the policy parses; nothing connects before a request


# -- post-rollback verification: the hook, a real Prometheus, the real shop ----------------------


@pytest.fixture(scope="module")
def verify_hook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HookProcess, str]]:
    """shop v1 running and scraped by Prometheus; its contract recorded into the hook's store as
    ``shop/v1``, and another release's (``shop/v1.4.2``, another build) next to it; the hook
    allows that one Prometheus. Yields the hook and the Prometheus URL."""
    from compatcheck.cli import main
    from tests.prometheus import free_port, running_prometheus, running_shop, traffic, wait_for

    tmp = tmp_path_factory.mktemp("verify")
    store = tmp / "store" / "shop"
    store.mkdir(parents=True)
    (store / "v1.4.2.snapshot.json").write_bytes((SNAPSHOTS / "shop/v1.snapshot.json").read_bytes())
    port = free_port()
    with (
        running_shop(tmp, "v1", port) as shop,
        traffic(shop),
        running_prometheus(tmp / "prometheus", f"127.0.0.1:{port}") as prom,
    ):
        wait_for(prom, 'rate(shop_http_requests_total{job="shop"}[5m])', bool)
        out = str(store / "v1.snapshot.json")
        assert main(["snapshot", f"{shop}/metrics", "-o", out, "--label", "v1", "-q"]) == 0
        args = ["--snapshot-dir", str(tmp / "store"), "--allow-prometheus", prom]
        with hook_process(args, tmp / "hook.log") as proc:
            yield proc, prom


def argo_verify(hook: HookProcess, prom: str, version: str, **body: Any) -> tuple[str, Any]:
    """The recipe's measurement (``body`` overriding its jsonBody): Argo's phase and the answer."""
    template = yaml.safe_load((RECIPES / "argo-verify-analysistemplate.yaml").read_text())
    (metric,) = template["spec"]["metrics"]
    args = {"service": "shop", "version": version, "selector": '{job="shop"}',
            "prometheus": prom, "compatcheck-token": TOKEN}  # fmt: skip
    assert {a["name"] for a in template["spec"]["args"]} == set(args)
    web = substitute(metric["provider"]["web"], r"\{\{\s*args\.([\w-]+)\s*\}\}", args)
    resp = httpx.request(
        web["method"],
        on_hook(hook, web["url"]),
        headers={h["key"]: h["value"] for h in web["headers"]},
        content=json.dumps({**web["jsonBody"], **body}),
        timeout=web["timeoutSeconds"],
    )
    if not 200 <= resp.status_code < 300:
        return "Error", resp.json()
    assert metric["successCondition"] == "result == true"
    return ("Successful" if json_path(resp.json(), web["jsonPath"]) is True else "Failed"), (
        resp.json()
    )


def test_argo_verify_analysis_template_verifies_the_running_release(
    verify_hook: tuple[HookProcess, str],
) -> None:
    hook, prom = verify_hook
    phase, report = argo_verify(hook, prom, "v1")
    assert phase == "Successful", report
    assert {c["name"]: c["status"] for c in report["verify"]["checks"]} == {
        "build": "ok", "targets": "ok", "series": "skipped", "error-rate": "ok", "alerts": "ok",
    }  # fmt: skip
    assert (report["verify"]["prometheus"], report["verify"]["expect"]) == (prom, "v1")


def test_argo_verify_fails_when_another_build_runs(verify_hook: tuple[HookProcess, str]) -> None:
    hook, prom = verify_hook
    phase, report = argo_verify(hook, prom, "v1.4.2", window="1s", interval="500ms")
    assert phase == "Failed"
    assert {f["kind"] for f in report["findings"] if f["blocking"]} == {"verify/build-mismatch"}


def test_argo_verify_refuses_what_the_operator_did_not_allow(
    verify_hook: tuple[HookProcess, str],
) -> None:
    hook, prom = verify_hook
    other = "http://127.0.0.1:1"
    assert argo_verify(hook, prom, "v1", prometheus=other) == (
        "Error",
        {"error": f"Prometheus {other} is not allowed here (the hook asks only those given "
                  "with --allow-prometheus)"},
    )  # fmt: skip
    assert argo_verify(hook, prom, "v9") == (
        "Error",
        {"error": "no stored snapshot for service 'shop' version 'v9'"},
    )
    phase, answer = argo_verify(hook, prom, "v1", window="1h")
    assert (phase, answer) == (
        "Error",
        {"error": "`window` must be shorter than this hook's check timeout (30s): let the "
                  "AnalysisTemplate repeat it"},
    )  # fmt: skip
