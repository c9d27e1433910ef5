"""The rough edges a newcomer hit, each through the real CLI in a child process: one
line on stderr naming the input and the problem, the contract's exit code, never a traceback."""

from __future__ import annotations

import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import one_line, run, run_here
from tests.httpserve import QuietHandler, serve_http

REPO = Path(__file__).resolve().parent.parent
RENAMED = REPO / "fixtures" / "metrics" / "renamed"
OLD, NEW = str(RENAMED / "old.prom"), str(RENAMED / "new.prom")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_snapshot_output_folder_is_created(tmp_path: Path) -> None:
    out = tmp_path / "does" / "not" / "exist" / "v1.json"
    proc = run("snapshot", NEW, "-o", str(out), "--label", "v1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["label"] == "v1"


@pytest.mark.parametrize("command", ["diff", "snapshot"])
def test_output_that_is_a_directory_is_refused_before_anything_runs(
    tmp_path: Path, command: str
) -> None:
    args = [OLD, NEW] if command == "diff" else [NEW]
    line = one_line(run(command, *args, "-o", str(tmp_path)), 2)
    assert line == f"compatcheck: error: {tmp_path}: is a directory, expected a file to write"


def test_report_output_folder_is_created(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "r.txt"
    proc = run("diff", OLD, NEW, "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    assert out.read_text().splitlines()[0] == "compatcheck rollback new → old"
    # The confirmation is the report's summary: no "1 warnings".
    summary = "NO-GO: 5 blocking problems (5 findings); 1 info (rollback new → old)"
    assert proc.stderr == f"compatcheck: {summary} → {out}\n"


@pytest.mark.parametrize("value", ["-1", "0", "nan", "soon"])
def test_timeout_must_be_a_positive_number(value: str) -> None:
    line = one_line(
        run("diff", f"http://127.0.0.1:{_closed_port()}/metrics", NEW, "--timeout", value), 2
    )
    assert line.startswith(f"compatcheck diff: error: argument --timeout: '{value}'")
    assert line.endswith("(see `compatcheck diff --help`)")


def test_ipv6_url_without_bracket_is_named() -> None:
    line = one_line(run("diff", "http://[::1", NEW), 2)
    assert line == "compatcheck: error: http://[::1: not an http(s) URL"


def test_unsupported_scheme_is_named() -> None:
    line = one_line(run("diff", "ftp://example.org/metrics", NEW), 2)
    assert line == (
        "compatcheck: error: ftp://example.org/metrics: unsupported URL scheme `ftp` "
        "(expected http:// or https://, a file, or oci:IMAGE@sha256:…)"
    )


def test_directory_where_a_file_is_expected() -> None:
    line = one_line(run("diff", str(RENAMED), NEW), 2)
    assert line == (
        f"compatcheck: error: {RENAMED}: is a directory, expected an exposition or snapshot file"
    )


@pytest.mark.parametrize("command", ["check", "snapshot", "diff"])
def test_unknown_option_points_at_the_subcommand_help(command: str) -> None:
    line = one_line(run(command, *([OLD, NEW] if command == "diff" else []), "--bogus"), 2)
    assert line == (
        f"compatcheck {command}: error: unrecognized arguments: --bogus "
        f"(see `compatcheck {command} --help`)"
    )


def test_snapshot_target_without_config(tmp_path: Path) -> None:
    line = one_line(run("snapshot", NEW, "--target", "old", "-o", str(tmp_path / "x.json")), 2)
    assert line == (
        "compatcheck: error: snapshot: --target old|new picks a target of a config: add -c FILE"
    )


def test_snapshot_of_a_closed_port_fails_fast_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = run("snapshot", f"{url}/metrics", "-o", str(tmp_path / "x.json"), timeout=8)
    assert proc.returncode == 3, proc.stderr
    # Progress names the URL, not a role this command does not have (`[new ...]`).
    assert proc.stderr.splitlines() == [
        f"compatcheck: [{url}/metrics] using {url}",
        f"compatcheck: [{url}/metrics] unavailable: nothing listens on {url} (connection refused)",
        f"compatcheck: error: {url}/metrics: nothing listens on {url} (connection refused)",
    ]
    assert not (tmp_path / "x.json").exists()


class _NotReady(QuietHandler):
    """A release that is up but never ready: /readyz answers 503 with its reason."""

    def do_GET(self) -> None:
        if self.path == "/readyz":
            body, status, ctype = b'{"db_connected": false}', 503, "application/json"
        else:
            body, status, ctype = RENAMED.joinpath("new.prom").read_bytes(), 200, "text/plain"
        self.send(status, body, ctype)


@pytest.fixture
def not_ready() -> Iterator[str]:
    with serve_http(_NotReady) as url:
        yield url


@pytest.mark.slow
def test_waiting_for_readiness_says_what_it_waits_for(not_ready: str, tmp_path: Path) -> None:
    """A wait past 5 s prints a heartbeat with the last answer; the failure names the path and
    the last answer's body."""
    proc = run("snapshot", not_ready, "--timeout", "6.5", "-o", str(tmp_path / "x.json"))
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    beats = [ln for ln in lines if "waiting for" in ln]
    assert [re.sub(r"\(\d+ s of", "(N s of", b) for b in beats] == [
        f"compatcheck: [{not_ready}] waiting for {not_ready} /readyz: HTTP 503 "
        '{"db_connected": false} (N s of 6.5 s)'
    ]
    assert lines[-1] == (
        f"compatcheck: error: {not_ready}: `/readyz` not ready within 6.5 s "
        '(last answer HTTP 503 {"db_connected": false})'
    )


def test_snapshot_readiness_none_scrapes_without_waiting(not_ready: str, tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    proc = run("snapshot", not_ready, "--readiness", "none", "-o", str(out), "--label", "v2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert (doc["label"], doc["readiness"]) == ("v2", None)
    assert {f["name"] for f in doc["metrics"]["families"]} >= {
        "http_server_requests_total",
        "worker_threads",
    }


ALEMBIC = REPO / "fixtures" / "alembic" / "batch_mode"


@pytest.mark.parametrize(
    ("url", "hidden", "line"),
    [
        (
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
            "psycopg",
            "no database driver `psycopg`: install compatcheck[postgres] "
            "(pip install 'compatcheck[postgres]')",
        ),
        (
            "mysql+pymysql://root@127.0.0.1:3306/mysql",
            "pymysql",
            "no database driver `pymysql`: install compatcheck[mysql] "
            "(pip install 'compatcheck[mysql]')",
        ),
        (
            "mysql+mysqldb://root@127.0.0.1:3306/mysql",
            None,
            "no database driver `MySQLdb`: use a mysql+pymysql:// URL and install "
            "compatcheck[mysql]",
        ),
    ],
)
def test_missing_database_driver_names_the_extra(url: str, hidden: str | None, line: str) -> None:
    """The console entry point in a child process whose driver cannot be imported (as after a
    plain `pip install compatcheck`): exit 2 and the extra to install."""
    hide = f"sys.modules[{hidden!r}] = None; " if hidden else ""
    code = (
        f"import sys; {hide}from compatcheck.cli import main; "
        f"sys.exit(main(['migrations', '--script-location', {str(ALEMBIC)!r}, '--old', 'base', "
        f"'--new', 'head', '--db-url', {url!r}, '-q']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert one_line(proc, 2) == f"compatcheck: error: {line}"


@pytest.mark.parametrize("command", [[], ["diff"], ["check"], ["snapshot"], ["migrations"]])
def test_help_lists_the_exit_codes(command: list[str]) -> None:
    proc = run(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    tail = proc.stdout.split("exit codes:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in tail] == ["0", "1", "2", "3"]


def test_rules_markdown_carries_why_and_fix() -> None:
    from compatcheck.checks import catalogued_rules

    proc = run("rules", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    cat = catalogued_rules()
    sections = re.findall(r"^### `([^`]+)`$", proc.stdout, re.M)
    assert sections == list(cat)
    for rule in cat.values():
        block = proc.stdout.split(f"### `{rule.kind}`\n", 1)[1].split("\n### ", 1)[0]
        assert f"**Why it matters:** {rule.why}\n" in block
        assert f"**Fix:** {rule.fix}\n" in block


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_only_path_formats_ask_for_the_workspace(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """The workspace (a `git rev-parse` process) is only asked for by the formats that print
    paths relative to it: the snapshot gate's text or JSON verdict starts no process."""
    import compatcheck.output

    asked: list[str] = []
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    real = compatcheck.output._workspace
    monkeypatch.setattr(compatcheck.output, "_workspace", lambda: asked.append(fmt) or real())
    proc = run_here("diff", OLD, NEW, "--format", fmt)
    assert proc.returncode == 1, proc.stderr
    assert asked == ([fmt] if fmt in ("sarif", "github") else [])


@pytest.mark.parametrize("how", ["GITHUB_WORKSPACE", "git top level"])
def test_github_and_sarif_paths_are_relative_to_the_repository(tmp_path: Path, how: str) -> None:
    """Consumers given by absolute path still annotate `fixtures/consumers/...`: GitHub resolves
    annotation and code-scanning paths against the repository root."""
    import os

    env = dict(os.environ)
    env.pop("GITHUB_WORKSPACE", None)
    if how == "GITHUB_WORKSPACE":
        env["GITHUB_WORKSPACE"] = str(REPO)
    cwd = tmp_path if how == "GITHUB_WORKSPACE" else REPO
    consumers = str(REPO / "fixtures" / "consumers" / "shop")
    files: dict[str, set[str]] = {}
    for fmt in ("github", "sarif"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "compatcheck",
                "diff",
                OLD,
                NEW,
                "--consumers",
                consumers,
                "--format",
                fmt,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
            env=env,
        )
        assert proc.returncode == 1, proc.stderr
        if fmt == "github":
            files[fmt] = set(re.findall(r"file=([^,:]+)", proc.stdout))
        else:
            doc = json.loads(proc.stdout)
            files[fmt] = {
                loc["physicalLocation"]["artifactLocation"]["uri"]
                for r in doc["runs"][0]["results"]
                for loc in r["locations"]
                if "physicalLocation" in loc
            }
    consumer_files = {
        "fixtures/consumers/shop/rules/shop-alerts.yml",
        "fixtures/consumers/shop/dashboards/shop.json",
    }
    anchor = "fixtures/metrics/renamed/new.prom"  # where findings without a consumer point
    assert files["github"] == files["sarif"] == consumer_files | {anchor}


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        (
            "0001_bat",
            "head",
            "OLD's head `0001_bat` is not a revision of this history. "
            "Close matches: `0002_batch`, `0001_users`.",
        ),
        ("deadbeef", "head", "OLD's head `deadbeef` is not a revision of this history."),
        (
            "base",
            "0002_bach",
            "NEW's head `0002_bach` is not a revision of this history. "
            "Close matches: `0002_batch`.",
        ),
    ],
)
def test_unknown_revision_on_the_command_line_is_a_usage_error(
    old: str, new: str, line: str
) -> None:
    script = str(REPO / "fixtures" / "alembic" / "batch_mode")
    proc = run_here(
        "migrations",
        "--script-location",
        script,
        "--old",
        old,
        "--new",
        new,
        "--static",
    )
    assert one_line(proc, 2) == f"compatcheck: error: --script-location {script}: {line}"


@pytest.mark.parametrize(
    ("config", "line", "problem"),
    [
        (
            "service: shop\nold: {stored: v1}\nnew: {url: 'http://127.0.0.1:9'}\n",
            2,
            "`old.stored` needs `snapshot_dir` or --snapshot-dir",
        ),
        (
            "service: shop\nold: {url: 'http://127.0.0.1:9'}\nnew:\n"
            "  command: [serve, '{database_url}']\n",
            3,
            "`new` takes `{database_url}` but the config has no `migrations:` section to build "
            "that database from",
        ),
        (
            "service: shop\nold: {url: 'http://127.0.0.1:9'}\nnew:\n  command: [serve]\n"
            "  cwd: tree\n  env: {DB: '{database_url}'}\nmigrations:\n  script_location: nope\n",
            8,
            "new's migrations folder {tmp}/tree/nope does not exist",
        ),
    ],
)
def test_config_problems_stop_check_before_anything_starts(
    tmp_path: Path, config: str, line: int, problem: str
) -> None:
    """`file:line`, exit 2, and no progress line: nothing was started."""
    (tmp_path / "tree").mkdir()
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(config)
    proc = run("check", "-c", str(cfg))
    problem = problem.replace("{tmp}", str(tmp_path))
    expected = f"compatcheck: error: {cfg}:{line}: {problem}"
    assert one_line(proc, 2) == expected


_BROKEN_YAML = (
    "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n   bad: [\n"
)
_BAD_PROMQL = "groups:\n  - name: g\n    rules:\n      - alert: Lost\n        expr: sum(up\n"


@pytest.mark.parametrize(
    ("files", "consumers", "message"),
    [
        (
            {"rules.yml": _BROKEN_YAML},
            "rules.yml",
            "rules.yml:6: cannot be read as a consumer: invalid YAML: "
            "did not find expected '-' indicator",
        ),
        (
            {"rules.yml": _BAD_PROMQL},
            "rules.yml",
            "rules.yml:5: alert `Lost`: PromQL does not parse: unclosed left parenthesis",
        ),
        (
            {"mon/a.yml": _BROKEN_YAML, "mon/b.yml": _BAD_PROMQL},
            "mon",
            "mon/a.yml:6: cannot be read as a consumer: invalid YAML: "
            "did not find expected '-' indicator (and 1 more)",
        ),
        ({}, "gone.yml", "gone.yml: no such file or folder"),
    ],
)
def test_serve_refuses_to_start_on_broken_consumers(
    tmp_path: Path, files: dict[str, str], consumers: str, message: str
) -> None:
    """Found at start-up, in the operator's words, instead of a 500 (or a parse-error warning) in
    every verdict the hook would give."""
    (tmp_path / "snaps").mkdir()
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    proc = run(
        "serve", "--port", "0", "--snapshot-dir", "snaps", "--consumers", consumers, cwd=tmp_path
    )
    assert one_line(proc, 2) == f"compatcheck: error: {message}"


def test_serve_refuses_to_start_on_broken_files_from_its_config(tmp_path: Path) -> None:
    """The same through ``-c``: every file the hook will read (consumers, policy, store)."""
    (tmp_path / "rules.yml").write_text(_BROKEN_YAML)
    (tmp_path / "policy.yaml").write_text("severity: {bogus/kind: error}\n")
    cases = {
        "snapshot_dir: snaps\n": "snaps: snapshot store is not a directory",
        "snapshot_dir: .\npolicy: [missing.yaml]\n": "missing.yaml",
        "snapshot_dir: .\npolicy: [policy.yaml]\n": "policy.yaml:1: unknown finding kind",
        "snapshot_dir: .\nconsumers: [rules.yml]\n": "rules.yml:6: cannot be read as a consumer",
    }
    for text, fragment in cases.items():
        (tmp_path / "compatcheck.yaml").write_text(text)
        proc = run("serve", "--port", "0", "-c", "compatcheck.yaml", cwd=tmp_path)
        line = one_line(proc, 2)
        assert line.startswith("compatcheck: error: ") and fragment in line, line


class _SlowWarmup(QuietHandler):
    """A ready release whose warm-up endpoint takes 2.2 s per answer (a cold cache)."""

    def do_GET(self) -> None:
        if self.path == "/warm":
            time.sleep(2.2)
            body, ctype = b'{"warm": true}', "application/json"
        elif self.path == "/readyz":
            body, ctype = b"{}", "application/json"
        else:
            body, ctype = RENAMED.joinpath("new.prom").read_bytes(), "text/plain"
        self.send(200, body, ctype)


@pytest.mark.slow
def test_a_long_warm_up_says_what_it_waits_for(tmp_path: Path) -> None:
    """Not only readiness: any wait past 5 s (here three slow warm-up requests, ~6.6 s) prints a
    heartbeat naming what it waits for and the last answer, and the run still succeeds."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowWarmup)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = tmp_path / "compatcheck.yaml"
        cfg.write_text(
            f"service: shop\nold: {{url: '{url}'}}\nnew: {{url: '{url}'}}\n"
            "warmup:\n  - {path: /warm, repeat: 3}\n"
        )
        out = tmp_path / "v2.json"
        proc = run("snapshot", "-c", str(cfg), "--target", "new", "-o", str(out))
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr
    beats = [ln for ln in proc.stderr.splitlines() if "warm-up" in ln and "waiting" in ln]
    host = url.removeprefix("http://")
    assert beats == [
        f"compatcheck: [new {host}] waiting for the warm-up requests: "
        '2 of 3 answered, GET /warm: HTTP 200 {"warm": true} (5 s)'
    ]
    assert json.loads(out.read_text())["metrics"]["families"]
