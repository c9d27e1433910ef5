"""A real Go service: fixtures/services/goshop v1 and v2, built offline against Debian's
client_golang (Go, process and build-info collectors; v2 speaks OpenMetrics with exemplars).

The expected findings are fixtures/realworld/goshop/expected.yaml, written from the two main.go
files. Needs `go` (golang-go) and golang-github-prometheus-client-golang-dev: skipped with the
reason without them, failed under COMPATCHECK_REQUIRE_SERVERS=1 (CI installs both). Binaries go
to a temporary folder, the Go build cache to ~/.cache/compatcheck-tests/go-build.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from compatcheck.cli import main
from compatcheck.schemas import validate
from tests.realworld import GOSHOP, REPO, Missing, capture, go_binary, running
from tests.test_realworld_fixtures import diff_json, expected_of, findings_of

pytestmark = pytest.mark.slow
SOURCES = REPO / "fixtures" / "services" / "goshop"


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("goshop")
    try:
        return {r: go_binary(SOURCES / r, out / f"goshop-{r}") for r in ("v1", "v2")}
    except Missing as exc:
        if os.environ.get("COMPATCHECK_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{exc} and COMPATCHECK_REQUIRE_SERVERS=1")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def live(
    binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    work = tmp_path_factory.mktemp("goshop-run")
    with running(GOSHOP, GOSHOP.old, work) as old, running(GOSHOP, GOSHOP.new, work) as new:
        yield old, new


def expected() -> set[tuple[str, str]]:
    return {(str(k), str(s)) for k, s in expected_of(GOSHOP)["findings"]}


def test_diff_of_the_running_releases(live: tuple[str, str], tmp_path: Path) -> None:
    old, new = live
    code, doc = diff_json(f"{old}/metrics", f"{new}/metrics", tmp_path)
    assert findings_of(doc) == expected()
    assert code == 1 and doc["verdict"] == "no-go"
    assert doc["new"]["build"] == {"version": "2.0.0", "revision": "5e6f7a8"}
    assert doc["old"]["build"] == {"version": "1.0.0", "revision": "1a2b3c4"}


def test_text_and_openmetrics_of_one_release_are_one_schema(
    live: tuple[str, str], tmp_path: Path
) -> None:
    _, new = live
    captured = capture(new)
    content_type, body = captured["negotiated"]
    assert content_type.startswith("application/openmetrics-text")
    assert b"# TYPE go_memstats_alloc_bytes counter" in body  # the shared metadata name
    assert b'# {trace_id="' in body  # exemplars
    text = tmp_path / "v2.prom"
    text.write_bytes(captured["text"][1])
    om = tmp_path / "v2.om"
    om.write_bytes(body)
    for old_side, new_side in ((str(text), f"{new}/metrics"), (f"{new}/metrics", str(text))):
        code, doc = diff_json(old_side, new_side, tmp_path)
        assert (code, findings_of(doc), doc["verdict"]) == (0, set(), "go")
    code, doc = diff_json(str(om), str(text), tmp_path)
    assert (code, findings_of(doc)) == (0, set())


def test_check_starts_both_releases(binaries: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "compatcheck.yaml"
    config.write_text(
        f"""service: shop
old:
  label: v1
  command: ["{binaries["v1"]}", "-listen", "{{host}}:{{port}}"]
  expect: {{version: "1.0.0", revision: "1a2b3c4"}}
new:
  label: v2
  command: ["{binaries["v2"]}", "-listen", "{{host}}:{{port}}"]
readiness: {{path: /readyz, timeout: 20s, expect_status: [200]}}
warmup: [{{method: POST, path: /orders, repeat: 2}}]
metrics: {{path: /metrics, scrapes: 2, interval: 100ms}}
"""
    )
    out = tmp_path / "report.json"
    code = main(["check", "-c", str(config), "--format", "json", "-o", str(out), "-q"])
    doc = json.loads(out.read_text())
    assert validate(doc, "report") is None
    # OLD's pinned build is confirmed by shop_build_info, not contradicted by the empty
    # go_build_info{version=""}: no artifact/version-mismatch.
    assert findings_of(doc) == expected()
    assert code == 1
    assert doc["old"]["build"] == {"version": "1.0.0", "revision": "1a2b3c4"}
