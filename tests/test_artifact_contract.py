"""Contracts attached to image digests: attach, resolve, tamper, auth.

Three places a contract is stored, each real:

- an OCI image layout (a copy of ``fixtures/oci/labelled``): the artifact is listed in
  ``index.json`` and found by its subject;
- Debian's ``docker-registry`` (distribution 2.8), which has no referrers API: the referrers tag
  schema (``sha256-<hex>``) is what gets written and read;
- the same registry behind :class:`ReferrersFront`, a small HTTP server on loopback that adds
  what OCI distribution 1.1 registries add — ``OCI-Subject`` on a manifest push with a subject,
  and ``GET /v2/<name>/referrers/<digest>`` — and forwards everything else to the registry. No
  registry with the referrers API is packaged here (zot and distribution 3 are not in Debian), so
  this is how the referrers-API path meets real HTTP; what it indexes is what was pushed through
  it, the bytes stay in the real registry.

Commands run as child processes through the console entry point (exit codes, stderr lines).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from compatcheck.artifact.auth import load_registry_config
from compatcheck.artifact.contract import (
    ARTIFACT_TYPE,
    attach_contract,
    referrers_tag,
    resolve_contract,
)
from compatcheck.artifact.oci import ArtifactUnavailable
from tests.cli import run
from tests.conftest import REPO
from tests.httpserve import Background, QuietHandler
from tests.test_artifact_registry import ML, Pusher, Registry, TokenIssuer, _start_registry, _stop

METRICS = REPO / "fixtures" / "metrics" / "renamed"
LABELLED = REPO / "fixtures" / "oci" / "labelled"
PASSWORD = "s3cr3t-Pa55word-never-shown"


def _snapshot(tmp: Path, name: str, captured_at: str | None = None) -> Path:
    """A snapshot of a fixture exposition (``old``/``new``), optionally re-dated."""
    out = tmp / f"{name}-{captured_at or 'now'}.json"
    proc = run("snapshot", str(METRICS / f"{name}.prom"), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    if captured_at:
        doc = json.loads(out.read_text())
        doc["captured_at"] = captured_at
        out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return out


def _layout(tmp: Path) -> tuple[Path, str]:
    root = tmp / "layout"
    shutil.copytree(LABELLED, root)
    index = json.loads((root / "index.json").read_text())
    return root, str(index["manifests"][0]["digest"])


def _report(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode in (0, 1), proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def _kinds(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in report["findings"]}


# --- OCI layout -------------------------------------------------------------------------------


def test_layout_attach_is_idempotent_and_diff_resolves_the_contract(tmp_path: Path) -> None:
    root, digest = _layout(tmp_path)
    snap = _snapshot(tmp_path, "old")
    target = f"oci-layout:{root}@{digest}"
    first = run("snapshot", str(snap), "--attach", target)
    assert first.returncode == 0, first.stderr
    artifact = re.search(r"contract (sha256:[0-9a-f]{64}) attached", first.stderr)
    assert artifact is not None and "(layout index)" in first.stderr
    again = run("snapshot", str(snap), "--attach", target)
    assert again.returncode == 0 and f"contract {artifact[1]} already attached" in again.stderr
    entries = json.loads((root / "index.json").read_text())["manifests"]
    assert [(e["digest"], e.get("artifactType")) for e in entries] == [
        (digest, None),
        (artifact[1], ARTIFACT_TYPE),
    ]
    # The contract judges exactly as the snapshot file does.
    via_oci = _report(run("diff", target, str(METRICS / "new.prom"), "--format", "json"))
    via_file = _report(run("diff", str(snap), str(METRICS / "new.prom"), "--format", "json"))
    assert _kinds(via_oci) == _kinds(via_file) != set()
    assert via_oci["old"]["source"] == (
        f"{target} (contract {artifact[1]}, created {json.loads(snap.read_text())['captured_at']})"
    )


def test_newest_contract_by_created_wins_and_is_named(tmp_path: Path) -> None:
    root, digest = _layout(tmp_path)
    target = f"oci-layout:{root}@{digest}"
    dates = ("2026-01-02T00:00:00+00:00", "2026-03-01T08:00:00Z", "2025-12-31T23:00:00+00:00")
    pushed = {}
    for i, when in enumerate(dates):
        snap = _snapshot(tmp_path, "old" if i != 1 else "new", when)
        pushed[when] = attach_contract(target, snap.read_bytes(), when).digest
    contract = resolve_contract(target)
    assert (contract.digest, contract.created, contract.count) == (
        pushed["2026-03-01T08:00:00Z"],
        "2026-03-01T08:00:00Z",
        3,
    )
    report = _report(run("diff", target, str(METRICS / "new.prom"), "--format", "json"))
    assert report["findings"] == []  # the newest is NEW's own contract
    assert report["old"]["source"].endswith("created 2026-03-01T08:00:00Z, newest of 3)")


def test_tampered_snapshot_blob_is_refused(tmp_path: Path) -> None:
    root, digest = _layout(tmp_path)
    snap = _snapshot(tmp_path, "old")
    target = f"oci-layout:{root}@{digest}"
    assert run("snapshot", str(snap), "--attach", target, "-q").returncode == 0
    blob = root / "blobs" / "sha256" / ML.digest(snap.read_bytes()).split(":")[1]
    blob.write_bytes(blob.read_bytes().replace(b'"old"', b'"bad"'))
    proc = run("diff", target, str(METRICS / "new.prom"))
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "as addressed" in proc.stderr and "is larger" not in proc.stderr


def test_unusable_contracts_are_skipped_with_the_reason(tmp_path: Path) -> None:
    """A listed artifact whose manifest lies about its snapshot size (over 16 MiB) is not used;
    with nothing else attached the image has no contract (exit 3, reason named)."""
    root, digest = _layout(tmp_path)
    target = f"oci-layout:{root}@{digest}"
    manifest = json.loads(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": ML.OCI_MANIFEST,
                "artifactType": ARTIFACT_TYPE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                           "digest": ML.digest(b"{}"), "size": 2},
                "layers": [{"mediaType": ARTIFACT_TYPE, "digest": ML.digest(b"x"),
                            "size": 17 * 1024 * 1024}],
                "subject": {"mediaType": ML.OCI_INDEX, "digest": digest, "size": 491},
                "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
            }
        )
    )  # fmt: skip
    body = ML.canonical(manifest)
    (root / "blobs" / "sha256" / ML.digest(body).split(":")[1]).write_bytes(body)
    index = json.loads((root / "index.json").read_text())
    index["manifests"].append(
        {"mediaType": ML.OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
         "digest": ML.digest(body), "size": len(body)}
    )  # fmt: skip
    (root / "index.json").write_text(json.dumps(index))
    proc = run("diff", target, str(METRICS / "new.prom"))
    assert proc.returncode == 3
    assert "has no compatcheck contract attached" in proc.stderr
    assert "1 unusable: contract" in proc.stderr and "limit 16 MiB" in proc.stderr


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("oci:127.0.0.1:5000/team/shop:v1", "`127.0.0.1:5000/team/shop@sha256:…`"),
        ("oci:reg.example/shop", "`reg.example/shop@sha256:…`"),
        ("oci-layout:fixtures/oci/labelled:v1", "`oci-layout:fixtures/oci/labelled@sha256:…`"),
    ],
)
def test_a_tag_is_refused_as_not_pinned(source: str, needle: str) -> None:
    for args in (("diff", source, str(METRICS / "new.prom")),
                 ("snapshot", str(METRICS / "old.prom"), "--attach", source)):  # fmt: skip
        proc = run(*args)
        assert proc.returncode == 2
        assert proc.stderr == (
            f"compatcheck: error: {source}: artifact/not-pinned: a tag can be moved to another "
            f"image, so it names no contract; give the image digest ({needle})\n"
        )


def test_image_without_contract_is_unavailable(tmp_path: Path) -> None:
    root, digest = _layout(tmp_path)
    proc = run("diff", f"oci-layout:{root}@{digest}", str(METRICS / "new.prom"))
    assert proc.returncode == 3
    assert proc.stderr == (
        f"compatcheck: error: oci-layout:{root}@{digest}: OCI layout `{root}` has no compatcheck "
        f"contract attached to `{digest}` (looked up by layout index)\n"
    )


# --- a real registry: tag schema, referrers API, tampering, auth -----------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = _start_registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        _stop(reg.process)


def _push_image(url: str, repo: str = "team/shop") -> str:
    return str(Pusher(url).image(repo, "v1", ML.image(ML.FULL_LABELS)))


def test_registry_without_referrers_api_gets_the_tag_schema(
    registry: Registry, tmp_path: Path
) -> None:
    digest = _push_image(registry.url)
    # distribution 2.8 has no referrers API: this is the fallback case the spec describes.
    assert httpx.get(f"{registry.url}/v2/team/shop/referrers/{digest}").status_code == 404
    target = f"oci:{registry.host}/team/shop@{digest}"
    old, new = _snapshot(tmp_path, "old"), _snapshot(tmp_path, "new", "2030-01-01T00:00:00Z")
    first = attach_contract(target, old.read_bytes(), "2026-05-01T00:00:00Z")
    assert (first.how, first.already) == ("referrers tag schema", False)
    again = attach_contract(target, old.read_bytes(), "2026-05-01T00:00:00Z")
    assert (again.digest, again.how, again.already) == (first.digest, first.how, True)
    tag = referrers_tag(digest)
    listed = httpx.get(
        f"{registry.url}/v2/team/shop/manifests/{tag}", headers={"Accept": ML.OCI_INDEX}
    ).json()
    assert [m["digest"] for m in listed["manifests"]] == [first.digest]
    second = attach_contract(target, new.read_bytes(), "2030-01-01T00:00:00Z")
    listed = httpx.get(
        f"{registry.url}/v2/team/shop/manifests/{tag}", headers={"Accept": ML.OCI_INDEX}
    ).json()
    assert [m["digest"] for m in listed["manifests"]] == [first.digest, second.digest]
    contract = resolve_contract(target)
    assert (contract.digest, contract.count, contract.how) == (
        second.digest, 2, "referrers tag schema"
    )  # fmt: skip
    assert contract.snapshot == new.read_bytes()
    # The CLI end to end: diff two image digests of the same repository.
    other = _push_image(registry.url, "team/other")
    assert run("snapshot", str(old), "--attach", f"{registry.host}/team/other@{other}",
               "-q").returncode == 0  # fmt: skip
    report = _report(
        run("diff", f"oci:{registry.host}/team/other@{other}", target, "--format", "json")
    )
    assert _kinds(report) == _kinds(_report(run("diff", str(old), str(new), "--format", "json")))


def test_tampered_blob_in_the_registry_is_refused(registry: Registry, tmp_path: Path) -> None:
    digest = _push_image(registry.url)
    target = f"oci:{registry.host}/team/shop@{digest}"
    snap = _snapshot(tmp_path, "old")
    attach_contract(target, snap.read_bytes(), "2026-05-01T00:00:00Z")
    hexdigest = ML.digest(snap.read_bytes()).split(":")[1]
    data = (
        tmp_path / "registry" / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
        / hexdigest[:2] / hexdigest / "data"
    )  # fmt: skip
    data.write_bytes(data.read_bytes().replace(b'"old"', b'"bad"'))
    with pytest.raises(ArtifactUnavailable, match=f"not `sha256:{hexdigest}` as addressed"):
        resolve_contract(target)


class ReferrersFront(Background):
    """The referrers API (OCI distribution 1.1) in front of a registry that lacks it."""

    def __init__(self, backend: str) -> None:
        front = self
        self.referrers: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[str] = []

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self, method: str) -> None:
                front.requests.append(f"{method} {urlsplit(self.path).path}")
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                match = re.fullmatch(r"/v2/(.+)/referrers/(sha256:[0-9a-f]{64})", urlsplit(
                    self.path).path)  # fmt: skip
                if method == "GET" and match:
                    wanted = parse_qs(urlsplit(self.path).query).get("artifactType")
                    found = front.referrers.get(f"{match[1]}@{match[2]}", [])
                    if wanted:
                        found = [d for d in found if d.get("artifactType") in wanted]
                    doc = {"schemaVersion": 2, "mediaType": ML.OCI_INDEX, "manifests": found}
                    self._answer(200, ML.canonical(doc), {"Content-Type": ML.OCI_INDEX})
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                resp = httpx.request(method, backend + self.path, content=body, headers=headers)
                extra = {}
                put = re.fullmatch(r"/v2/(.+)/manifests/[^/]+", urlsplit(self.path).path)
                if method == "PUT" and put and resp.status_code == 201:
                    doc = json.loads(body)
                    if isinstance(doc.get("subject"), dict):
                        subject = doc["subject"]["digest"]
                        desc = {
                            "mediaType": doc.get("mediaType"),
                            "digest": ML.digest(body),
                            "size": len(body),
                            "artifactType": doc.get("artifactType"),
                        }
                        listed = front.referrers.setdefault(f"{put[1]}@{subject}", [])
                        if desc not in listed:
                            listed.append(desc)
                        extra["OCI-Subject"] = subject  # fmt: skip
                keep = ("content-type", "docker-content-digest", "location", "www-authenticate")
                out = {k: v for k, v in resp.headers.items() if k.lower() in keep}
                self._answer(resp.status_code, b"" if method == "HEAD" else resp.content,
                             {**out, **extra}, length=len(resp.content))  # fmt: skip

            def _answer(
                self, status: int, body: bytes, headers: dict[str, str], length: int | None = None
            ) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_HEAD(self) -> None:
                self._forward("HEAD")

            def do_PUT(self) -> None:
                self._forward("PUT")

            def do_POST(self) -> None:
                self._forward("POST")

        super().__init__(Handler)


def test_registry_with_referrers_api(registry: Registry, tmp_path: Path) -> None:
    digest = _push_image(registry.url)
    front = ReferrersFront(registry.url)
    try:
        target = f"oci:{front.host}/team/shop@{digest}"
        snap = _snapshot(tmp_path, "old")
        done = attach_contract(target, snap.read_bytes(), "2026-05-01T00:00:00Z")
        assert (done.how, done.already) == ("referrers API", False)
        again = attach_contract(target, snap.read_bytes(), "2026-05-01T00:00:00Z")
        assert (again.digest, again.how, again.already) == (done.digest, "referrers API", True)
        assert front.referrers == {
            f"team/shop@{digest}": [
                {"mediaType": ML.OCI_MANIFEST, "digest": done.digest,
                 "size": front.referrers[f"team/shop@{digest}"][0]["size"],
                 "artifactType": ARTIFACT_TYPE}
            ]
        }  # fmt: skip
        # No fallback tag was written: the registry behind never saw `sha256-<hex>`.
        tag = referrers_tag(digest)
        assert httpx.get(f"{registry.url}/v2/team/shop/manifests/{tag}").status_code == 404
        front.requests.clear()
        contract = resolve_contract(target)
        assert (contract.digest, contract.how, contract.count) == (done.digest, "referrers API", 1)
        assert f"GET /v2/team/shop/manifests/{tag}" not in front.requests
        assert f"GET /v2/team/shop/referrers/{digest}" in front.requests
    finally:
        front.close()


def _docker_config(tmp: Path, host: str, entry: dict[str, str]) -> Path:
    path = tmp / "config.json"
    path.write_text(json.dumps({"auths": {host: entry}}))
    return path


def test_basic_auth_from_docker_config_and_never_printed(tmp_path: Path) -> None:
    crypt = pytest.importorskip("crypt", reason="the stdlib crypt module makes the bcrypt hash")
    htpasswd = tmp_path / "htpasswd"
    # bcrypt's lowest cost (2^4 rounds): the registry checks the hash on every request, and the
    # default cost (2^12) makes each one take a quarter of a second of CPU for nothing tested.
    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)
    htpasswd.write_text(f"ci:{crypt.crypt(PASSWORD, salt)}\n")
    reg = _start_registry(tmp_path / "reg", {"htpasswd": {"realm": "r", "path": str(htpasswd)}})
    try:
        pusher = Pusher(reg.url)
        pusher.client.auth = httpx.BasicAuth("ci", PASSWORD)
        digest = _push_image_with(pusher)
        target = f"oci:{reg.host}/team/shop@{digest}"
        snap = _snapshot(tmp_path, "old")
        anonymous = run("snapshot", str(snap), "--attach", target)
        assert anonymous.returncode == 3
        assert "requires credentials" in anonymous.stderr and "(basic auth)" in anonymous.stderr
        wrong = _docker_config(tmp_path, reg.host, {"auth": _b64(f"ci:{PASSWORD}x")})
        proc = run("snapshot", str(snap), "--attach", target, "--registry-config", str(wrong))
        assert proc.returncode == 3 and "refused access" in proc.stderr
        config = _docker_config(tmp_path, f"http://{reg.host}", {"auth": _b64(f"ci:{PASSWORD}")})
        proc = run("snapshot", str(snap), "--attach", target, "--registry-config", str(config))
        assert proc.returncode == 0, proc.stderr
        diff = run("diff", target, str(METRICS / "new.prom"), "--registry-config", str(config))
        assert diff.returncode == 1, diff.stderr
        for out in (anonymous, proc, diff):
            assert PASSWORD not in out.stdout + out.stderr
            assert _b64(f"ci:{PASSWORD}") not in out.stdout + out.stderr
        assert repr(load_registry_config(str(config)).credentials(reg.host)) == (
            "Credentials(basic)"
        )
    finally:
        _stop(reg.process)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _push_image_with(pusher: Pusher) -> str:
    return str(pusher.image("team/shop", "v1", ML.image(ML.FULL_LABELS)))


class GatedIssuer:
    """A token service that grants only to the configured user (basic) or identity token (an
    OAuth2 refresh-token POST), signing with a :class:`TokenIssuer`'s key."""

    def __init__(self, signer: TokenIssuer, user: str, password: str, refresh: str) -> None:
        self.calls: list[tuple[str, str]] = []
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def _grant(self, query: dict[str, list[str]], key: str, how: str) -> None:
                gate.calls.append((self.command, how))
                body = json.dumps({key: signer.sign(query)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _deny(self) -> None:
                gate.calls.append((self.command, "denied"))
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                if self.headers.get("authorization") == f"Basic {_b64(f'{user}:{password}')}":
                    self._grant(query, "token", "basic")
                elif self.headers.get("authorization") is None and "push" not in str(query):
                    self._grant(query, "token", "anonymous")
                else:
                    self._deny()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [
                    refresh
                ]:
                    self._grant(form, "access_token", "identity token")
                else:
                    self._deny()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_bearer_token_flow_with_basic_and_identity_token_credentials(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to sign the test token issuer's JWTs")
    signer = TokenIssuer(tmp_path)
    refresh = "identity-token-" + "x" * 24
    gate = GatedIssuer(signer, "ci", PASSWORD, refresh)
    token = {"realm": gate.realm, "service": "compatcheck-test"}
    token |= {"issuer": "compatcheck-test-issuer", "rootcertbundle": str(signer.cert)}
    auth = {"token": token}
    reg = _start_registry(tmp_path / "reg", auth)
    try:
        digest = _push_image_with(_AuthedPusher(reg.url, gate.realm))
        target = f"oci:{reg.host}/team/shop@{digest}"
        snap = _snapshot(tmp_path, "old")
        anonymous = run("snapshot", str(snap), "--attach", target)
        assert anonymous.returncode == 3 and "answered 401" in anonymous.stderr
        for entry, how in (
            ({"auth": _b64(f"ci:{PASSWORD}")}, "basic"),
            ({"auth": "", "identitytoken": refresh}, "identity token"),
        ):
            config = _docker_config(tmp_path, reg.host, entry)
            gate.calls.clear()
            proc = run("snapshot", str(snap), "--attach", target, "--registry-config", str(config))
            assert proc.returncode == 0, proc.stderr
            assert set(gate.calls) == {("POST" if how != "basic" else "GET", how)}
            assert refresh not in proc.stderr and PASSWORD not in proc.stderr
        # Reading needs only a pull token: anonymous works, and so does the identity token.
        gate.calls.clear()
        diff = run("diff", target, str(METRICS / "new.prom"))
        assert diff.returncode == 1, diff.stderr
        assert set(gate.calls) == {("GET", "anonymous")}
    finally:
        _stop(reg.process)
        gate.close()
        signer.close()


class _AuthedPusher(Pusher):
    """The test's own pushes, as user ``ci`` (the gate refuses anonymous push scopes)."""

    def __init__(self, base: str, realm: str) -> None:
        super().__init__(base)
        self.client.auth = _RealmAuth(realm)


class _RealmAuth(httpx.Auth):
    """Basic credentials for the token realm only (the registry itself wants the bearer)."""

    def __init__(self, realm: str) -> None:
        self.realm = realm

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if str(request.url).startswith(self.realm):
            request.headers["Authorization"] = f"Basic {_b64(f'ci:{PASSWORD}')}"
        yield request
