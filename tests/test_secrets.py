"""No secret in any output: every place a credential can be given carries its own distinct secret,
the real CLI runs (diff, check, snapshot, migrations, serve) in every report format, and every
byte it prints or writes is searched for every secret.

The places: a metrics URL's userinfo and its ``?token=``, a config target's userinfo and
``?access_token=``, a registry URL's userinfo, a snapshot source's ``?sig=``, a snapshot store's
userinfo, a database URL's password and SQLAlchemy ``?password=``, a live database's
``?password=``, the hook's store and a caller's URL targets.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from compatcheck.cli import REPORT_FORMATS, main
from compatcheck.masking import mask_secrets
from compatcheck.targets import free_port
from tests.cli import run, run_all
from tests.httpserve import QuietHandler

from .test_serve_helpers import AUTH, METRICS, REPO, SNAPSHOTS, hook_process, serve_http

EXPOSITION = (METRICS / "compatible" / "new.prom").read_bytes()


def _secret(place: str) -> str:
    return f"S3cr3t{place}{secrets.token_hex(4)}"


SECRETS = {
    place: _secret(place)
    for place in (
        "DiffUser", "DiffToken", "StoreUser", "SnapSig", "CheckUser", "CheckToken",
        "Registry", "DbPassword", "DbQuery", "LiveQuery", "HookStore", "HookUrlUser",
        "HookUrlToken", "HookDown",
    )
}  # fmt: skip


class _Release(QuietHandler):
    """A release and a snapshot store on one port: /metrics, /readyz, /store/<service>/<file>
    (a 500 for the service ``broken``). Query strings and userinfo are ignored, as real
    services do with credentials they do not check."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/store/"):
            if "/broken/" in path:
                self.send(500, b"no", "text/plain")
                return
            file = SNAPSHOTS / path.removeprefix("/store/")
            if file.is_file():
                self.send(200, file.read_bytes(), "application/json")
            else:
                self.send(404, b"{}", "application/json")
        elif path.startswith("/readyz"):
            self.send(200, b'{"ready": true}', "application/json")
        else:
            self.send(200, EXPOSITION, "text/plain; version=0.0.4")


@pytest.fixture(scope="module")
def release() -> Iterator[str]:
    with serve_http(_Release) as base:
        yield base.removeprefix("http://")


def _in_every_format(
    argv: list[str], out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Run ``compatcheck ARGV`` in this process and render its one report in every format, as
    ``out/report.FORMAT``; its exit code and what it printed.

    The formats differ only in the renderer the CLI's one report writer calls, so one run (not
    one run per format, each a capture or a round trip) shows every format its secrets."""
    import compatcheck.reporters as reporters

    original = reporters.render
    formats: list[str] = []

    def render(report: Any, fmt: str, *, color: bool = False) -> str:
        for other in REPORT_FORMATS:
            (out / f"report.{other}").write_text(original(report, other), encoding="utf-8")
            formats.append(other)
        return original(report, fmt, color=color)

    monkeypatch.setattr(reporters, "render", render)
    capsys.readouterr()
    code = main([*argv, "--format", "json", "-o", str(out / "cli.json")])
    captured = capsys.readouterr()
    assert formats == list(REPORT_FORMATS), "the CLI no longer renders through reporters.render"
    return code, captured.out + captured.err


def _assert_clean(where: str, text: str) -> None:
    leaked = sorted(place for place, secret in SECRETS.items() if secret in text)
    assert not leaked, f"{where} shows the secrets of {leaked}:\n{text[:3000]}"


def _assert_files_clean(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            _assert_clean(str(path), path.read_text(encoding="utf-8", errors="replace"))


def test_the_masker_keeps_what_is_not_a_secret() -> None:
    assert mask_secrets(
        "postgresql+psycopg://app:pw@db:5432/shop?password=pw2&sslmode=require"
    ) == ("postgresql+psycopg://app:***@db:5432/shop?password=***&sslmode=require")
    assert mask_secrets("https://ghp_x@github.com/a?X-Amz-Signature=s&v=1") == (
        "https://***@github.com/a?X-Amz-Signature=***&v=1"
    )
    assert mask_secrets("host=db password=pw user=app") == "host=db password=*** user=app"
    assert mask_secrets("missing or wrong bearer token") == "missing or wrong bearer token"
    plain = '`http_requests_total{code="500"}` removed; see https://example.com/x?page=2'
    assert mask_secrets(plain) == plain
    for text in ("http://u:p@h/?sig=1", "postgresql://u@h/db?password=x"):
        assert mask_secrets(mask_secrets(text)) == mask_secrets(text)


def test_diff_shows_no_secret_in_any_format(
    release: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = f"http://user:{SECRETS['DiffUser']}@{release}/metrics"
    new = f"http://{release}/metrics?token={SECRETS['DiffToken']}"
    store = f"http://u:{SECRETS['StoreUser']}@{release}/store"
    procs = run_all(
        ["diff", old, new],  # the report on stdout
        ["diff", "--snapshot-dir", store, "--service", "shop", "v1", "v2"],
        ["diff", "--snapshot-dir", store, "--service", "broken", "v1", "v2"],
        cwd=tmp_path,
    )
    assert [p.returncode for p in procs] == [0, 0, 3], [p.stderr for p in procs]
    assert "answered HTTP 500" in procs[-1].stderr
    for proc in procs:
        _assert_clean(f"{proc.args} output", proc.stdout + proc.stderr)
    code, printed = _in_every_format(["diff", old, new], tmp_path, monkeypatch, capsys)
    assert code == 0, printed
    assert "token=***" in (tmp_path / "report.json").read_text()
    _assert_clean("diff in process", printed)
    _assert_files_clean(tmp_path)


def test_check_shows_no_secret_in_any_format(
    release: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path.parent / f"{tmp_path.name}-compatcheck.yaml"  # an input, not an output
    config.write_text(
        "service: shop\n"
        f"old: {{url: 'http://u:{SECRETS['CheckUser']}@{release}', image: '127.0.0.1:9/shop:v1',\n"
        f"      registry: 'http://u:{SECRETS['Registry']}@127.0.0.1:{free_port()}'}}\n"
        f"new: {{url: 'http://{release}/?access_token={SECRETS['CheckToken']}'}}\n"
        "readiness: {path: /readyz, timeout: 5s}\n"
    )
    (proc,) = run_all(["check", "-c", str(config)], cwd=tmp_path)
    _assert_clean(f"{proc.args} output", proc.stdout + proc.stderr)
    code, printed = _in_every_format(["check", "-c", str(config)], tmp_path, monkeypatch, capsys)
    # The registry cannot be reached: could not evaluate (3), its URL named without the password.
    assert (proc.returncode, code) == (3, 3), proc.stderr + printed
    assert "registry `http://u:***@127.0.0.1:" in (tmp_path / "report.text").read_text()
    _assert_clean("check in process", printed)
    _assert_files_clean(tmp_path)


def test_snapshot_files_never_store_a_token(release: str, tmp_path: Path) -> None:
    source = f"http://{release}/metrics?sig={SECRETS['SnapSig']}"
    out = tmp_path / "v1.snapshot.json"
    proc = run("snapshot", source, "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["source"] == f"http://{release}/metrics?sig=***"
    _assert_clean("snapshot stderr", proc.stderr)
    _assert_files_clean(tmp_path)


@pytest.mark.postgres
def test_migrations_show_no_database_password_in_any_format(
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db_url = (
        postgres_url.replace("postgres@", f"postgres:{SECRETS['DbPassword']}@")
        + f"?password={SECRETS['DbQuery']}"
    )
    # The live URL travels through the environment (never the command line); a file would put
    # the secret under tmp_path, which this test searches.
    monkeypatch.setenv("LIVE_DB_URL", f"{postgres_url}?password={SECRETS['LiveQuery']}")
    case = str(REPO / "fixtures" / "alembic" / "destructive_downgrade")
    argv = ["migrations", "--script-location", case, "--old", "0001", "--db-url", db_url,
            "--live-db-url", "env:LIVE_DB_URL"]  # fmt: skip
    bad = f"nonsense://u:{SECRETS['DbPassword']}@h/db?password={SECRETS['DbQuery']}"
    procs = run_all(
        argv,
        ["migrations", "--script-location", case, "--old", "0001", "--db-url", bad],
        cwd=tmp_path,
    )
    assert [p.returncode for p in procs] == [0, 2], [p.stderr for p in procs]
    assert "password=***" in procs[0].stderr
    assert "database URL nonsense://u:***@h/db?password=***: unsupported" in procs[-1].stderr
    for proc in procs:
        _assert_clean(f"{proc.args} output", proc.stdout + proc.stderr)
    code, printed = _in_every_format(argv, tmp_path, monkeypatch, capsys)
    assert code == 0, printed
    _assert_clean("migrations in process", printed)
    _assert_files_clean(tmp_path)


@pytest.mark.slow
def test_the_hook_shows_no_secret_in_answers_or_logs(release: str, tmp_path: Path) -> None:
    store = f"http://u:{SECRETS['HookStore']}@{release}/store"
    log = tmp_path / "hook.log"
    answers: list[str] = []
    with hook_process(["--snapshot-dir", store, "--allow-url-targets"], log) as hook:
        url = f"http://u:{SECRETS['HookUrlUser']}@{release}/metrics?token={SECRETS['HookUrlToken']}"
        down = f"http://127.0.0.1:{free_port()}/metrics?access_token={SECRETS['HookDown']}"
        requests = [
            ({"service": "shop", "old": {"version": "v1"}, "new": {"url": url}}, 200),
            ({"service": "shop", "old": {"url": url}, "new": {"url": down}}, 503),
            ({"service": "broken", "old": {"version": "v1"}, "new": {"version": "v2"}}, 503),
        ]
        for req, status in requests:
            for path in ("/v1/check", "/v1/checks"):
                resp = httpx.post(f"{hook.url}{path}", json=req, headers=AUTH, timeout=30)
                answers.append(resp.text)
                if path == "/v1/check":
                    assert resp.status_code == status, resp.text
                elif resp.status_code == 202:
                    location = resp.json()["location"]
                    for _ in range(100):
                        job = httpx.get(f"{hook.url}{location}", headers=AUTH, timeout=10)
                        if job.json()["status"] != "RUNNING":
                            break
                    answers.append(job.text)
        assert "token=***" in answers[0]
    text = log.read_text()
    assert "snapshot store unavailable: http://u:***@" in text
    _assert_clean("hook log", text)
    for answer in answers:
        _assert_clean("hook answer", answer)
