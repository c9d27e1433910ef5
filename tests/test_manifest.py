"""Probes read from Kubernetes manifests measure what the kubelet measures, or are refused.

Parsing is tested on fixture manifests (a multi-document release with a List, a CronJob, an alert
carrying ``{{ $labels }}`` and two workloads; a Helm chart template), then for real through the
CLI: a small stdlib service whose ``/readyz`` answers 200 only over TLS with the manifest's
``Host`` header (plain HTTP gets 503), probed with the scheme the manifest declares.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from compatcheck.config import load_config
from compatcheck.errors import UsageError
from compatcheck.manifest import ManifestProbe, probes_from_manifest
from tests.cli import run

from .conftest import skip_or_fail

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "fixtures" / "k8s"
MULTI = K8S / "multi-document.yaml"
HELM = K8S / "helm-deployment.yaml"
RENDER = "render the chart first, e.g. `helm template RELEASE CHART > manifest.yaml`"


def refusal(path: Path, *names: str) -> str:
    """The one-line usage error reading the manifest ends in (its message: exact, as a person
    reads it)."""
    with pytest.raises(UsageError) as err:
        probes_from_manifest(path, *names)
    return str(err.value)


def test_every_document_and_workload_is_searched() -> None:
    """`app` is in the fourth document, `worker` in the last: not only the first workload."""
    assert probes_from_manifest(MULTI, "app") == {
        "readiness": ManifestProbe("/readyz", 8443, 67, "https", {"Host": "shop.example.com"}),
        "liveness": ManifestProbe("/healthz", 8081, 74, "http", {}),
    }
    assert probes_from_manifest(MULTI, "worker") == {
        "readiness": ManifestProbe("/worker/ready", 9090, 92, "http", {}),
    }
    # The CronJob inside the `kind: List` is found too: it has no probe to read.
    assert probes_from_manifest(MULTI, "report") == {}
    assert refusal(MULTI) == (
        f"{MULTI}: 3 containers (CronJob/shop-report report, Deployment/shop app, "
        "StatefulSet/shop-worker worker); set `readiness.container`"
    )


def test_a_container_in_two_workloads_needs_the_workload_named(tmp_path: Path) -> None:
    canary = MULTI.read_text().replace("name: shop-worker", "name: shop-canary")
    canary = canary.replace("- name: worker", "- name: app")
    path = tmp_path / "canary.yaml"
    path.write_text(canary)
    assert refusal(path, "app") == (
        f"{path}: container 'app' is in 2 workloads (Deployment/shop, StatefulSet/shop-canary); "
        "set `readiness.workload`"
    )
    assert probes_from_manifest(path, "app", "StatefulSet/shop-canary")["readiness"].path == (
        "/worker/ready"
    )
    assert probes_from_manifest(path, "app", "shop")["readiness"].scheme == "https"
    with pytest.raises(UsageError, match=r"no workload 'web' \(found: CronJob/shop-report, "):
        probes_from_manifest(path, "app", "web")


@pytest.mark.parametrize(
    ("text", "line", "shown"),
    [
        # Unquoted: YAML reads it as a mapping, which used to become the default path `/`.
        ("path: {{ .Values.path }}", 13, "{{ .Values.path }}"),
        # Quoted: valid YAML, but the value is still a template.
        ('path: "{{ .Values.path }}"', 13, "{{ .Values.path }}"),
        # A control line: the YAML does not even parse.
        ("path: /readyz\n{{- end }}", 14, "{{- end }}"),
    ],
)
def test_an_unrendered_template_names_its_line(
    tmp_path: Path, text: str, line: int, shown: str
) -> None:
    body = (
        textwrap.dedent(
            """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: shop
        spec:
          template:
            spec:
              containers:
                - name: app
                  readinessProbe:
                    httpGet:
                      port: 8080
        """
        )
        + textwrap.indent(text, " " * 14)
        + "\n"
    )
    path = tmp_path / "deployment.yaml"
    path.write_text(body)
    assert refusal(path, "app") == (
        f"{path}:{line}: unrendered template `{shown}`: {RENDER}, and point `from_manifest` at "
        "the output"
    )


def test_a_rendered_alert_template_is_not_a_chart_template() -> None:
    """`{{ $labels.instance }}` inside the PrometheusRule's strings is content, not Helm."""
    assert "{{ $labels.instance }}" in MULTI.read_text()
    assert probes_from_manifest(MULTI, "worker")["readiness"].port == 9090


def test_a_scheme_kubernetes_does_not_know_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MULTI.read_text().replace("scheme: HTTPS", "scheme: https"))
    assert refusal(path, "app") == (
        f"{path}:70: readinessProbe.httpGet.scheme is `https` (Kubernetes accepts HTTP or HTTPS)"
    )


def _config(tmp_path: Path, manifest: Path, extra: str = "") -> Path:
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(
        "service: shop\n"
        "old: {url: 'http://127.0.0.1:9001'}\nnew: {url: 'http://127.0.0.1:9002'}\n"
        f"readiness: {{from_manifest: '{manifest}', container: app{extra}}}\n"
    )
    return cfg


def test_the_config_carries_scheme_and_headers(tmp_path: Path) -> None:
    rc = load_config(_config(tmp_path, MULTI)).readiness
    assert (rc.path, rc.healthz) == ("/readyz", "/healthz")
    assert rc.schemes == {"readiness": "https"}
    assert rc.headers == {"readiness": {"Host": "shop.example.com"}}
    assert rc.probe_url("http://127.0.0.1:5000", "readiness") == "https://127.0.0.1:5000/readyz"
    assert rc.probe_url("http://127.0.0.1:5000", "liveness") == "http://127.0.0.1:5000/healthz"


def test_a_helm_template_is_a_one_line_usage_error_through_the_cli(tmp_path: Path) -> None:
    cfg = _config(tmp_path, HELM)
    proc = run("check", "-c", str(cfg))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        f"compatcheck: error: {cfg}:4: {HELM}:6: unrendered template "
        f'`{{{{ include "shop.fullname" . }}}}`: {RENDER}, and point `from_manifest` at the '
        "output\n"
    )


# --- HTTPS, for real -------------------------------------------------------------------------

SERVICE = '''
"""A release whose readiness is only on its TLS side (plain HTTP gets 503), one port for both."""
import argparse, json, socket, ssl
from http.server import ThreadingHTTPServer

from tests.httpserve import QuietHandler

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--cert", required=True)
p.add_argument("--version", required=True)
args = p.parse_args()
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(args.cert)


class Server(ThreadingHTTPServer):
    def get_request(self):
        sock, addr = self.socket.accept()
        if sock.recv(1, socket.MSG_PEEK) == b"\\x16":  # a TLS ClientHello
            sock = context.wrap_socket(sock, server_side=True)
        return sock, addr


class Handler(QuietHandler):
    def do_GET(self):
        tls = isinstance(self.connection, ssl.SSLSocket)
        if self.path == "/readyz":
            ok = tls and self.headers.get("Host") == "shop.example.com"
            body = {"tls": tls, "host": self.headers.get("Host")}
            self.send(200 if ok else 503, json.dumps(body).encode())
        elif self.path == "/healthz":
            self.send(200, json.dumps({"tls": tls}).encode())
        elif self.path == "/metrics":
            text = f'shop_build_info{{version="{args.version}"}} 1\\n'
            self.send(200, text.encode(), "text/plain")
        else:
            self.send(404, b"{}")


Server(("127.0.0.1", args.port), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def tls_service(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        skip_or_fail("openssl is not installed: no certificate for the HTTPS service")
    folder = tmp_path_factory.mktemp("tls")
    pem = folder / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=shop.example.com", "-keyout", str(pem), "-out", str(pem)],
        check=True, capture_output=True,
    )  # fmt: skip
    service = folder / "service.py"
    service.write_text(SERVICE)
    return service, pem


def _tls_config(tmp_path: Path, service: Path, pem: Path, manifest: Path) -> Path:
    def target(version: str) -> str:
        argv = ["{python}", str(service), "--port", "{port}", "--cert", str(pem)]
        env = {"PYTHONPATH": str(REPO)}  # the release imports tests.httpserve
        return json.dumps({"command": [*argv, "--version", version], "label": version, "env": env})

    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(
        f"service: shop\nold: {target('1.0.0')}\nnew: {target('2.0.0')}\n"
        f"readiness: {{from_manifest: '{manifest}', container: app, timeout: 3s}}\n"
        "metrics: {scrapes: 1}\n"
    )
    return cfg


def test_an_https_probe_is_sent_over_tls_with_its_headers(
    tmp_path: Path, tls_service: tuple[Path, Path]
) -> None:
    """The manifest says HTTPS: the probe is a TLS request (self-signed certificate accepted, as
    the kubelet does) with the manifest's Host header, and the release is ready."""
    cfg = _tls_config(tmp_path, *tls_service, MULTI)
    out = tmp_path / "new.snapshot.json"
    proc = run("snapshot", "-c", str(cfg), "--target", "new", "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    readiness = json.loads(out.read_text())["readiness"]
    assert readiness["/readyz"]["status"] == 200
    assert readiness["/readyz"]["json"] == {"tls": True, "host": "shop.example.com"}
    assert readiness["/healthz"]["json"] == {"tls": False}  # the livenessProbe says HTTP
    proc = run("check", "-c", str(cfg), "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-3] == "GO: no blocking problem (rollback 2.0.0 → 1.0.0)"


def test_the_same_probe_over_plain_http_is_not_ready(
    tmp_path: Path, tls_service: tuple[Path, Path]
) -> None:
    """Control: without `scheme: HTTPS` the probe goes over HTTP and gets 503, so the test above
    can only pass when the scheme is honoured."""
    plain = tmp_path / "plain.yaml"
    plain.write_text(MULTI.read_text().replace("              scheme: HTTPS\n", ""))
    cfg = _tls_config(tmp_path, *tls_service, plain)
    proc = run("snapshot", "-c", str(cfg), "--target", "new", "-o", str(tmp_path / "s.json"))
    assert proc.returncode == 3
    assert "`/readyz` not ready within 3 s (last answer HTTP 503" in proc.stderr
