"""Findings produced by the real code from the repository's fixtures, for the evidence-key test.

Every source here is data committed to the repository (metric fixtures, consumer folders,
Alembic projects, OCI layouts, snapshots) judged in this process, plus the golden JSON reports;
nothing is started and no server is needed, so the corpus is built in seconds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
GOLDEN_JSON = Path(__file__).resolve().parent / "golden" / "json"

#: (kind, evidence, where it came from) for every finding of the corpus.
Produced = tuple[str, dict[str, Any], str]


def _from_report(doc: dict[str, Any], where: str) -> Iterator[Produced]:
    for f in doc["findings"]:
        yield f["kind"], f["evidence"], where


def _rated(report: Any, where: str) -> Iterator[Produced]:
    """Every finding of an evaluated report, ``off`` ones included (the JSON leaves them out)."""
    for rf in report.findings:
        yield rf.finding.kind, rf.finding.to_json()["evidence"], where


def golden() -> Iterator[Produced]:
    for path in sorted(GOLDEN_JSON.glob("*.json")):
        yield from _from_report(json.loads(path.read_text()), f"golden {path.name}")


def metrics() -> Iterator[Produced]:
    from compatcheck.engine import EvaluateOptions, evaluate
    from compatcheck.sources import load_source

    for case in sorted(p for p in (FIXTURES / "metrics").iterdir() if p.is_dir()):
        old, new = load_source(str(case / "old.prom")), load_source(str(case / "new.prom"))
        for direction in ("rollback", "deploy"):
            report = evaluate(old, new, EvaluateOptions(direction=direction))
            yield from _rated(report, f"fixtures/metrics/{case.name}")


def consumers() -> Iterator[Produced]:
    from compatcheck.engine import EvaluateOptions, evaluate
    from compatcheck.snapshot import load_snapshot

    root = FIXTURES / "consumers"
    for case, (o, n) in {"cases": ("old.json", "new.json"), "shop": ("v1.json", "v2.json")}.items():
        old, new = load_snapshot(root / case / o), load_snapshot(root / case / n)
        for direction in ("rollback", "deploy"):
            opts = EvaluateOptions(direction=direction, consumers=[root / case])
            report = evaluate(old, new, opts)
            yield from _rated(report, f"fixtures/consumers/{case}")


def snapshots() -> Iterator[Produced]:
    from compatcheck.engine import EvaluateOptions, evaluate
    from compatcheck.snapshot import load_snapshot

    shots = sorted((FIXTURES / "snapshots" / "shop").glob("*.json"))
    for a, b in itertools.pairwise(shots):
        report = evaluate(load_snapshot(a), load_snapshot(b), EvaluateOptions())
        yield from _rated(report, f"fixtures/snapshots/shop {a.name}→{b.name}")


def alembic() -> Iterator[Produced]:
    from compatcheck.migrations import inspect_migrations

    root = FIXTURES / "alembic"
    for case in sorted(p for p in root.iterdir() if (p / "expected.yaml").is_file()):
        exp = yaml.safe_load((case / "expected.yaml").read_text())
        runs: list[dict[str, Any]] = [{"static": True}]
        if not exp.get("static_only"):
            runs.append({})  # the round trip on a temporary SQLite file
        for kw in runs:
            result = inspect_migrations(case, exp["old"], exp["new"], **kw)
            for f in result.findings:
                yield f.kind, f.to_json()["evidence"], f"fixtures/alembic/{case.name}"
    # A mistyped revision (what `--old deadbeef` gives): path-missing naming close matches.
    case = root / "clean_reversible"
    exp = yaml.safe_load((case / "expected.yaml").read_text())
    result = inspect_migrations(case, exp["old"] + "x", exp["new"], static=True)
    for f in result.findings:
        yield f.kind, f.to_json()["evidence"], "fixtures/alembic/clean_reversible, mistyped"


def sqlfiles(tmp: Path) -> Iterator[Produced]:
    """The SQL-file cases of fixtures/sqlmigrations, statically and round-tripped on a temporary
    SQLite file, and the dirty golang-migrate version on a live SQLite database made here."""
    import sqlite3

    from compatcheck.migrations import inspect_migrations

    root = FIXTURES / "sqlmigrations"
    for case in sorted(root.glob("*/*/expected.yaml")):
        exp, folder = yaml.safe_load(case.read_text()), case.parent
        if (folder / "live.sql").is_file():
            db = tmp / f"live-{folder.name}.sqlite"
            with sqlite3.connect(db) as conn:
                conn.executescript((folder / "live.sql").read_text())
            folder, runs = (
                folder / "migrations",
                [{"static": True, "live_db_url": f"sqlite:///{db}"}],
            )
        else:
            runs = [{"static": True}, {}]
        for kw in runs:
            result = inspect_migrations(folder, exp["old"], exp["new"], **kw)
            for f in result.findings:
                yield f.kind, f.to_json()["evidence"], f"fixtures/sqlmigrations/{folder.name}"


def readiness() -> Iterator[Produced]:
    """Probe records as capture writes them into snapshots, judged by the readiness check."""
    from compatcheck.checks.readiness import check_readiness
    from compatcheck.snapshot import ProbeRecord, Snapshot

    def snap(label: str, **paths: dict[str, Any]) -> Snapshot:
        base = {"role": "readiness", "status": 200, "ready": True, "json": None, "volatile": []}
        probes = {f"/{k}": ProbeRecord.from_json({**base, **v}) for k, v in paths.items()}
        return Snapshot(label=label, readiness=probes)

    expect = {"status": [200], "json": {"db_connected": True}}
    before = snap(
        "v2",
        readyz={"json": {"db_connected": True, "cache": "ok"}},
        healthz={"role": "health", "status": 200},
        livez={"role": "health", "status": 200},
    )
    after = snap(
        "v1",
        readyz={"status": 503, "json": {"db_connected": False}, "expect": expect},
        healthz={"role": "health", "status": 404},
        livez={"role": "health", "status": 503},
    )
    never = snap("v1", readyz={"status": 503, "ready": False, "error": "not ready", "waited": 3})
    for b, a in ((before, after), (before, never)):
        for f in check_readiness(b, a):
            yield f.kind, f.to_json()["evidence"], "readiness probe records"


def artifact(tmp: Path) -> Iterator[Produced]:
    """The OCI image layouts of fixtures/oci, read in this process (no registry); release
    binaries that are not what was recorded; a build that contradicts the expected one."""
    from compatcheck.artifact import inspect_artifact
    from compatcheck.checks.build import check_expected_build

    k8s = {"deployment": "shop", "container": "app", "namespace": "prod"}
    wrong = {"version": "9.9.9", "revision": "f" * 40}
    for layout in ("labelled", "no-revision"):
        spec = {"image": "reg/shop:v1", "oci_layout": str(FIXTURES / "oci" / layout)}
        result = inspect_artifact({**spec, "kubernetes": k8s}, build=wrong)
        for f in result.findings:
            yield f.kind, f.to_json()["evidence"], f"fixtures/oci/{layout}"
    version = tmp / "releases" / "1.0.0"
    (version / "folder").mkdir(parents=True)
    binary = version / "shop"
    binary.write_bytes(b"#!/bin/sh\n")
    binary.chmod(0o644)
    releases = (
        {"path": str(binary), "sha256": "0" * 64},  # not executable, another sha256
        {"path": str(version / "folder")},  # a folder, not a binary
        {"path": str(version / "missing")},
    )
    for release in releases:
        for f in inspect_artifact({"release": release}, build=wrong).findings:
            yield f.kind, f.to_json()["evidence"], f"release {release['path']}"
    empty = tmp / "empty-layout"
    empty.mkdir()
    for f in inspect_artifact({"image": "reg/shop:v1", "oci_layout": str(empty)}).findings:
        yield f.kind, f.to_json()["evidence"], "an empty OCI layout"
    for f in check_expected_build("old", "v1", {"version": "1.0.0"}, {"version": "2.0.0"}):
        yield f.kind, f.to_json()["evidence"], "expected build"


class _Answers:
    """Prometheus answers recorded for one poll, by the metric the query asks about."""

    def __init__(self, samples: dict[str, list[Any]], alerts: list[Any]) -> None:
        self.samples, self._alerts = samples, alerts

    def query(self, expr: str) -> list[Any]:
        return next((v for k, v in self.samples.items() if k in expr), [])

    def alerts(self) -> list[Any]:
        return self._alerts


def verify() -> Iterator[Produced]:
    """Each verification check over one failing poll: a wrong build, a target down, fewer
    targets than at the start, a family without a label, a high error rate, an alert firing."""
    from compatcheck.verify.checks import CHECKS, Poll, WindowState
    from compatcheck.verify.client import Alert, Sample
    from compatcheck.verify.plan import FamilyNeed, VerifyPlan, parse_selector

    sel = '{job="shop"}'
    plan = VerifyPlan(
        sel,
        parse_selector(sel),
        expected_build={"version": "1.0.0"},
        build_family="shop_build_info",
        families=(FamilyNeed("orders_total", ("orders_total",), ("status",)),),
        error_rate="errors_ratio",
    )
    up = [Sample({"instance": "a:1"}, 1.0), Sample({"instance": "b:1"}, 0.0)]
    samples = {
        "shop_build_info": [Sample({"instance": "a:1", "version": "2.0.0"}, 1.0)],
        "up": up,
        "orders_total": [Sample({}, 3.0)],
        "errors_ratio": [Sample({"job": "shop"}, 0.5)],
    }
    firing = [Alert("ShopDown", "firing", {"job": "shop"}, "2026-06-01T10:00:00Z", "1")]
    empty = _Answers({"up": []}, [])
    for answers, state in (
        (_Answers(samples, firing), WindowState(baseline_targets=3)),
        (empty, WindowState()),
    ):
        poll = Poll(answers)  # type: ignore[arg-type]
        for check in CHECKS.values():
            for f in check(plan, poll, state).findings:
                yield f.kind, f.to_json()["evidence"], f"verify {check.__name__}"


def corpus(tmp: Path) -> list[Produced]:
    sources = (golden, metrics, consumers, snapshots, alembic, readiness, verify)
    return [*(p for source in sources for p in source()), *artifact(tmp), *sqlfiles(tmp)]
