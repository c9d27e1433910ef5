"""The public commands end to end through the console entry point: exit codes, JSON reports that
validate, and files written. Real services, real Alembic, real child processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from compatcheck.schemas import validate
from compatcheck.snapshot import load_snapshot
from tests.cli import run, run_all, run_here

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "fixtures" / "demo"
METRICS = REPO / "fixtures" / "metrics"
ALEMBIC = REPO / "fixtures" / "alembic"


@pytest.mark.slow
def test_demo_check_is_no_go_with_both_plans_and_a_bridge(
    tmp_path: Path, isolated_tmp: Path
) -> None:
    # Its own temp folder: a run of this suite killed on purpose elsewhere leaves a workspace
    # that this run would sweep and report on stderr, which -q must otherwise keep empty.
    bridge = tmp_path / "bridge.yml"
    proc = run(
        "check", "-c", str(DEMO / "compatcheck.yaml"), "--format", "json",
        "--emit-bridge-rules", str(bridge), "-q",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert validate(doc, "report") is None
    assert doc["verdict"] == "no-go" and doc["go"] is False
    kinds = {(f["kind"], f["subject"]) for f in doc["findings"]}
    for must in [
        ("metrics/renamed", "shop_orders_created_total"),
        ("metrics/buckets-changed", "shop_request_duration_seconds"),
        ("metrics/label-removed", "shop_orders_created_total{payment_method}"),
        ("readiness/field-missing", "/readyz#/db_connected"),
        ("migrations/old-code-incompatible", "2b0c0ffee002"),
    ]:
        assert must in kinds
    assert {p["name"] for p in doc["migrations"]["plans"]} == {"code-only", "downgrade"}
    assert doc["old"]["build"]["version"] == "1.0.0"
    assert doc["new"]["build"]["version"] == "2.0.0"
    assert proc.stderr == ""  # -q: no progress
    assert list(isolated_tmp.iterdir()) == []  # the workspace is gone
    assert "record: shop_orders_created_total" in bridge.read_text()


def test_compatible_rollback_is_go_with_progress_on_stderr() -> None:
    proc = run("check", "-c", str(DEMO / "compatible.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().splitlines()[-3].startswith("GO:")
    progress = proc.stderr
    for stage in ("started", "ready in", "warm-up", "scraped /metrics", "comparing"):
        assert stage in progress


@pytest.mark.slow
def test_snapshot_from_config_target_then_diff_starts_nothing(tmp_path: Path) -> None:
    old = tmp_path / "v1.snapshot.json"
    new = tmp_path / "v2.snapshot.json"
    procs = run_all(
        *(
            ["snapshot", "-c", str(DEMO / "compatcheck.yaml"), "--target", target, "-o", str(out)]
            for target, out in (("old", old), ("new", new))
        )
    )
    for proc, out in zip(procs, (old, new), strict=True):
        assert proc.returncode == 0, proc.stderr
        assert f"→ {out}" in proc.stderr
    snap = load_snapshot(old)
    assert snap.label == "v1" and snap.build["version"] == "1.0.0"
    assert snap.readiness is not None and "/readyz" in snap.readiness
    proc = run("diff", str(old), str(new), "--format", "json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    kinds = {(f["kind"], f["subject"]) for f in doc["findings"]}
    assert ("metrics/renamed", "shop_orders_created_total") in kinds
    assert ("readiness/field-missing", "/readyz#/db_connected") in kinds


def test_snapshot_of_an_exposition_file(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    proc = run("snapshot", str(METRICS / "renamed" / "old.prom"), "-o", str(out), "--label", "v1")
    assert proc.returncode == 0, proc.stderr
    snap = load_snapshot(out)
    assert snap.label == "v1"
    assert snap.metrics is not None and "http_requests_total" in snap.metrics.families


def test_snapshot_refuses_to_record_an_invalid_exposition(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    proc = run("snapshot", str(METRICS / "exposition_invalid" / "old.prom"), "-o", str(out))
    assert proc.returncode == 3
    assert "not recorded" in proc.stderr and not out.exists()


def test_snapshot_needs_a_source() -> None:
    proc = run("snapshot", "-o", "x.json")
    assert proc.returncode == 2 and "give SOURCE" in proc.stderr


RAISING_DOWNGRADE = ALEMBIC / "raising_downgrade"


def _raising_downgrade_static(fmt: str) -> subprocess.CompletedProcess[str]:
    """``migrations --static`` over the fixture whose downgrade raises, as a report in ``fmt``."""
    return run_here(
        "migrations", "--script-location", str(RAISING_DOWNGRADE), "--old", "0001", "--static",
        "--format", fmt, "-q",
    )  # fmt: skip


def test_migrations_static_names_the_raising_downgrade() -> None:
    proc = _raising_downgrade_static("json")
    doc = json.loads(proc.stdout)
    assert validate(doc, "report") is None
    got = {(f["kind"], f["subject"], f["blocking"]) for f in doc["findings"]}
    # The raising downgrade is named, but OLD runs on NEW's schema: code-only is safe, so go.
    assert got == {("migrations/downgrade-not-implemented", "0002_audit", False)}
    assert doc["migrations"]["mode"] == "static"
    assert doc["migrations"]["recommended"] == "code-only"
    assert proc.returncode == 0 and doc["go"] is True


def test_migrations_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_here("migrations", "--script-location", str(tmp_path / "nope"), "--old", "a")
    assert proc.returncode == 2
    assert str(tmp_path / "nope") in proc.stderr and "Traceback" not in proc.stderr


def test_diff_of_stored_versions_with_snapshot_dir() -> None:
    store = REPO / "fixtures" / "snapshots"
    proc = run("diff", "v1", "v2", "--snapshot-dir", str(store), "--service", "shop", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "rollback v2 → v1" in proc.stdout


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--service", "shop", "v1", "v9"], "no stored snapshot for service 'shop' version 'v9'"),
        (["v1", "v2"], "--snapshot-dir needs --service NAME"),
    ],
)
def test_stored_version_errors_are_one_line(extra: list[str], needle: str) -> None:
    store = REPO / "fixtures" / "snapshots"
    proc = run("diff", "--snapshot-dir", str(store), *extra)
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _stored_config(tmp_path: Path, *, with_dir: bool) -> Path:
    cfg = tmp_path / "compatcheck.yaml"
    store = REPO / "fixtures" / "snapshots"
    cfg.write_text(
        "service: shop\n"
        + (f"snapshot_dir: {store}\n" if with_dir else "")
        + "old: {label: v1, stored: v1}\nnew: {label: v4, stored: v4}\n"
    )
    return cfg


def test_check_of_stored_versions_starts_nothing(tmp_path: Path) -> None:
    proc = run("check", "-c", str(_stored_config(tmp_path, with_dir=True)), "--format", "json")
    doc = json.loads(proc.stdout)
    assert validate(doc, "report") is None
    assert doc["old"]["source"].startswith("stored: shop/v1 (recorded from ")
    assert proc.returncode == 1 and doc["verdict"] == "no-go"
    assert "loaded stored snapshot" in proc.stderr
    # The same two contracts give the same findings through `diff`.
    store = REPO / "fixtures" / "snapshots"
    diff = run(
        "diff", "v1", "v4", "--snapshot-dir", str(store), "--service", "shop", "--format", "json"
    )
    want = {(f["kind"], f["subject"]) for f in json.loads(diff.stdout)["findings"]}
    assert {(f["kind"], f["subject"]) for f in doc["findings"]} == want
    assert ("metrics/renamed", "http_server_requests_total") in want


def test_stored_target_needs_a_store(tmp_path: Path) -> None:
    cfg = _stored_config(tmp_path, with_dir=False)
    proc = run("check", "-c", str(cfg))
    assert proc.returncode == 2 and "needs `snapshot_dir` or --snapshot-dir" in proc.stderr
    store = REPO / "fixtures" / "snapshots"
    proc = run("check", "-c", str(cfg), "--snapshot-dir", str(store), "-q")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-3].startswith("NO-GO:")


def test_stored_version_name_is_validated(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("service: shop\nold: {stored: ../etc}\nnew: {stored: v2}\n")
    proc = run("check", "-c", str(cfg))
    assert proc.returncode == 2 and f"{cfg}:2:" in proc.stderr


@pytest.mark.slow
def test_check_with_artifact_ends_with_the_rollback_command(tmp_path: Path) -> None:
    cfg = DEMO / "with-artifact.yaml"
    digest = "sha256:d7971b3f27ad34f5a90fe928ab7cfa4494025943679784bd01934ab9304b66cf"
    command = f"kubectl set image deployment/shop app=registry.example/shop@{digest} -n prod"
    proc = run("check", "-c", str(cfg), "--format", "json", "-q")
    doc = json.loads(proc.stdout)
    assert validate(doc, "report") is None
    artifact = {
        (f["kind"], f["subject"]) for f in doc["findings"] if f["kind"].startswith("artifact/")
    }
    # The layout's labels say revision 0123..., version 1.2.0; OLD reports 1a2b3c4 / 1.0.0.
    assert artifact == {
        ("artifact/not-pinned", "registry.example/shop:v1"),
        ("artifact/version-mismatch", "registry.example/shop:v1"),
    }
    assert doc["artifact"]["rollback_command"] == command
    # NO-GO: the command is no step to take now; it waits below the verdict, conditionally.
    text = run("check", "-c", str(cfg), "-q").stdout.rstrip().splitlines()
    verdict = next(i for i, line in enumerate(text) if line.startswith("NO-GO:"))
    assert text[-1].startswith("done in ") and text[-2] == ""
    assert text[verdict + 1 : -2] == [
        "",
        "once the 6 blocking problems are resolved:",
        "  follow the downgrade plan: run `alembic downgrade 1a0c0ffee001` (undoes "
        "`2b0c0ffee003`, then `2b0c0ffee002`), then deploy the OLD release",
        "  rollback command:",
        f"    {command}",
    ]
    assert text.count(f"    {command}") == 1
    md = run("check", "-c", str(cfg), "-q", "--format", "markdown").stdout
    pending = md.split("### Once the 6 blocking problems are resolved\n", 1)[1]
    assert f"```sh\n{command}\n```" in pending


def _physical_uris(sarif: dict[str, object]) -> list[str]:
    results = sarif["runs"][0]["results"]  # type: ignore[index]
    uris = []
    for r in results:
        locs = r["locations"]
        assert locs, r  # GitHub code scanning rejects a result without a location
        for loc in locs:
            uris.append(loc["physicalLocation"]["artifactLocation"]["uri"])
    return uris


def test_every_sarif_result_points_at_a_file_for_code_scanning() -> None:
    # Relative paths, as a CI job in the repository passes them: code scanning wants those.
    case = "fixtures/metrics/renamed"
    proc = run("diff", f"{case}/old.prom", f"{case}/new.prom", "--format", "sarif")
    uris = _physical_uris(json.loads(proc.stdout))
    assert uris and set(uris) == {f"{case}/new.prom"}


def test_migration_findings_point_at_their_revision_file() -> None:
    proc = _raising_downgrade_static("github")
    (line,) = [ln for ln in proc.stdout.splitlines() if "downgrade-not-implemented" in ln]
    # Relative to the repository root (the git top level here), as annotations need.
    assert f"file={RAISING_DOWNGRADE.relative_to(REPO)}/versions/" in line and ",line=" in line
