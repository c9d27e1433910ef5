"""The snapshot store: names that cannot escape it, one-line errors, the same answers from a
directory and from a real HTTP server, caps and timeouts, and stored snapshots that match what
``fixtures/snapshots/regenerate.py`` writes."""

from __future__ import annotations

import hashlib
import http.server
import time
from pathlib import Path
from typing import Any

import pytest

from compatcheck.engine import evaluate
from compatcheck.errors import InputError, UnavailableError
from compatcheck.store import NotFound, SnapshotStore, resolve_version, validate_name
from tests._support import load_script

from .test_serve_helpers import REPO, SNAPSHOTS, serve_http, static_handler

VERSIONS = ("v0", "v1", "v2", "v3", "v4")


def test_get_and_digest_from_directory() -> None:
    store = SnapshotStore(str(SNAPSHOTS))
    for version in VERSIONS:
        path = SNAPSHOTS / "shop" / f"{version}.snapshot.json"
        assert store.digest("shop", version) == hashlib.sha256(path.read_bytes()).hexdigest()
        snap = store.get("shop", version)
        assert snap.label == version
        assert snap.metrics is not None
    assert len({store.digest("shop", v) for v in VERSIONS}) == len(VERSIONS)


@pytest.mark.parametrize(
    ("service", "version", "missing"),
    [("shop", "v9", "version 'v9'"), ("cart", "v1", "service 'cart'")],
)
def test_unknown_is_not_found_in_one_line(service: str, version: str, missing: str) -> None:
    store = SnapshotStore(str(SNAPSHOTS))
    with pytest.raises(NotFound) as info:
        store.get(service, version)
    assert isinstance(info.value, InputError)
    assert missing in str(info.value)
    assert "\n" not in str(info.value)


BAD_NAMES = [
    "..",
    "../shop",
    "shop/..",
    "a/b",
    ".hidden",
    "-dash",
    "",
    "v1..2",
    "x" * 129,
    "a\x00b",
    "a b",
    "é",
    "%2e%2e",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_could_escape_are_refused(name: str) -> None:
    store = SnapshotStore(str(SNAPSHOTS))
    with pytest.raises(InputError) as info:
        store.get(name, "v1")
    assert not isinstance(info.value, NotFound)
    assert "invalid service name" in str(info.value)
    with pytest.raises(InputError, match="invalid version name"):
        store.get("shop", name)


@pytest.mark.parametrize("name", ["v1", "1.4.2", "v1.4.2-rc.1", "shop_api", "A" * 128])
def test_valid_names(name: str) -> None:
    assert validate_name(name, "version") == name


def test_non_string_name_is_refused() -> None:
    with pytest.raises(InputError, match="invalid version name '<invalid>'"):
        validate_name(["v1"], "version")


def test_store_base_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a directory"):
        SnapshotStore(str(tmp_path / "missing"))


def test_size_cap_and_corrupt_snapshot(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "bad.snapshot.json").write_text('{"schema": "nope"}')
    store = SnapshotStore(str(tmp_path))
    with pytest.raises(InputError, match=r"^shop/bad\.snapshot\.json: not a compatcheck snapshot"):
        store.get("shop", "bad")
    small = SnapshotStore(str(SNAPSHOTS), max_bytes=100)
    with pytest.raises(InputError, match=r"shop/v1\.snapshot\.json: snapshot is over the 100 byte"):
        small.get("shop", "v1")


def test_http_store_answers_like_the_directory() -> None:
    local = SnapshotStore(str(SNAPSHOTS))
    with serve_http(static_handler(SNAPSHOTS)) as base:
        remote = SnapshotStore(base + "/")
        for version in VERSIONS:
            assert remote.digest("shop", version) == local.digest("shop", version)
            assert remote.get("shop", version) == local.get("shop", version)
        with pytest.raises(NotFound, match="version 'v9'"):
            remote.get("shop", "v9")
        capped = SnapshotStore(base, max_bytes=100)
        with pytest.raises(InputError, match="over the 100 byte cap"):
            capped.get("shop", "v1")


class _Chunked(http.server.BaseHTTPRequestHandler):
    """Streams an endless body without Content-Length: only counting bytes stops it."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 4096
        try:
            for _ in range(10_000):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


class _Failing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Hanging(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(3)

    def log_message(self, *args: Any) -> None:
        pass


def test_http_store_caps_a_streamed_body() -> None:
    with serve_http(_Chunked) as base:
        store = SnapshotStore(base, max_bytes=64 * 1024)
        with pytest.raises(InputError, match="over the 65536 byte cap"):
            store.get("shop", "v1")


def test_http_store_failures_are_unavailable() -> None:
    with serve_http(_Failing) as base, pytest.raises(UnavailableError, match="HTTP 500"):
        SnapshotStore(base).get("shop", "v1")
    with serve_http(_Hanging) as base:
        started = time.monotonic()
        with pytest.raises(UnavailableError, match="snapshot store unreachable"):
            SnapshotStore(base, timeout=0.5).get("shop", "v1")
        assert time.monotonic() - started < 2.5
    with serve_http(_Failing) as base:
        dead = base
    with pytest.raises(UnavailableError, match="unreachable"):
        SnapshotStore(dead).get("shop", "v1")


def test_resolve_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(str(SNAPSHOTS))
    assert resolve_version("v1", None, "shop") is None
    assert resolve_version("http://127.0.0.1:1/metrics", store, "shop") is None
    assert resolve_version("some/file.prom", store, "shop") is None
    snap = resolve_version("v2", store, "shop")
    assert snap == store.get("shop", "v2")
    with pytest.raises(NotFound):
        resolve_version("v9", store, "shop")
    with pytest.raises(InputError, match="--snapshot-dir needs --service"):
        resolve_version("v1", store, None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.prom").write_text("# TYPE up gauge\nup 1\n")
    assert resolve_version("local.prom", store, "shop") is None


def test_stored_diff_answers_well_under_a_second() -> None:
    store = SnapshotStore(str(SNAPSHOTS))
    # CPU time of this thread, not wall time: other jobs on a shared machine do not count.
    started = time.thread_time()
    report = evaluate(store.get("shop", "v3"), store.get("shop", "v4"))
    elapsed = time.thread_time() - started
    assert report.verdict == "no-go"
    assert elapsed < 0.5, elapsed


def test_committed_snapshots_are_what_regenerate_writes(tmp_path: Path) -> None:
    regen = load_script(SNAPSHOTS / "regenerate.py")
    written = regen.build(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        f"shop/{v}.snapshot.json" for v in VERSIONS
    ]
    for path in written:
        committed = SNAPSHOTS / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), (
            f"{committed.relative_to(REPO)} is stale: run python fixtures/snapshots/regenerate.py"
        )
