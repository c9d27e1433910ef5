"""Unit and property tests of the pure metrics checks (no parsing involved)."""

from __future__ import annotations

from hypothesis import given

from compatcheck.checks.metrics import check_metrics, detect_renames, rename_score
from compatcheck.model import MetricFamily, MetricsSchema

from .strategies import schemas

MIRROR = {
    "metrics/family-removed": "metrics/family-added",
    "metrics/family-added": "metrics/family-removed",
    "metrics/label-removed": "metrics/label-added",
    "metrics/label-added": "metrics/label-removed",
}


def _pairs(before: MetricsSchema, after: MetricsSchema) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in check_metrics(before, after)}


@given(schemas())
def test_diff_of_a_schema_with_itself_is_empty(schema: MetricsSchema) -> None:
    kinds = {k for k, _ in _pairs(schema, schema)}
    assert kinds <= {"metrics/build-info-missing"}


@given(schemas(), schemas())
def test_what_one_direction_removes_the_other_adds(a: MetricsSchema, b: MetricsSchema) -> None:
    forward = check_metrics(a, b)
    backward = check_metrics(b, a)
    # Renames pair families differently per direction; compare only plain add/remove findings.
    fwd = {(f.kind, f.evidence.get("family"), f.evidence.get("label")) for f in forward}
    bwd = {(f.kind, f.evidence.get("family"), f.evidence.get("label")) for f in backward}
    renamed = {f.evidence["family"] for f in forward + backward if f.kind == "metrics/renamed"}
    renamed |= {f.evidence["renamed_to"] for f in forward + backward if f.kind == "metrics/renamed"}
    for kind, fam, label in fwd:
        if kind in MIRROR and fam not in renamed:
            assert (MIRROR[kind], fam, label) in bwd


def fam(
    name: str, typ: str = "counter", labels: tuple[str, ...] = ("a",), **kw: object
) -> MetricFamily:
    return MetricFamily(
        name,
        typ,
        labels=labels,
        label_values={lbl: ("x",) for lbl in labels},
        has_samples=True,
        series=1,
        **kw,  # type: ignore[arg-type]
    )


def test_rename_scores_rank_unit_change_over_word_edit_over_spelling() -> None:
    unit = rename_score("req_duration_seconds", "req_duration_milliseconds")
    word = rename_score("http_requests_total", "http_server_requests_total")
    spelling = rename_score("httprequeststotal", "http_requests_total")
    assert unit == 1.0
    assert 0.9 < word < 1.0
    assert 0 < spelling < 0.9
    assert rename_score("cpu_seconds_total", "memory_bytes") == 0.0
    assert rename_score("db_connections", "worker_threads") == 0.0


def test_rename_requires_same_type_and_compatible_labels() -> None:
    removed = [fam("http_requests_total", labels=("code", "method"))]
    assert (
        detect_renames(removed, [fam("http_server_requests_total", "gauge", ("code", "method"))])
        == []
    )
    assert (
        detect_renames(removed, [fam("http_server_requests_total", labels=("pod", "zone"))]) == []
    )
    pairs = detect_renames(
        removed, [fam("http_server_requests_total", labels=("code", "method", "route"))]
    )
    assert [(p.before.name, p.after.name) for p in pairs] == [
        ("http_requests_total", "http_server_requests_total")
    ]


def test_rename_is_one_to_one_and_prefers_best_score() -> None:
    removed = [fam("latency_seconds", "gauge")]
    added = [fam("latency_milliseconds", "gauge"), fam("latency_seconds_max", "gauge")]
    pairs = detect_renames(removed, added)
    assert [(p.before.name, p.after.name) for p in pairs] == [
        ("latency_seconds", "latency_milliseconds")
    ]


def test_label_values_only_compared_under_the_cardinality_cap() -> None:
    b = MetricsSchema({"x_total": fam("x_total", labels=("id",), high_cardinality=("id",))})
    a = MetricsSchema(
        {
            "x_total": MetricFamily(
                "x_total", "counter", labels=("id",), label_values={"id": ("1",)}, has_samples=True
            )
        }
    )
    assert not [f for f in check_metrics(b, a) if f.kind == "metrics/label-values-changed"]


def test_intermittent_labels_and_values_are_not_reported() -> None:
    b = MetricsSchema(
        {
            "x_total": MetricFamily(
                "x_total",
                "counter",
                labels=("code", "pod"),
                label_values={"code": ("200", "503")},
                has_samples=True,
                intermittent=("pod", "code=503"),
            )
        }
    )
    a = MetricsSchema(
        {
            "x_total": MetricFamily(
                "x_total",
                "counter",
                labels=("code",),
                label_values={"code": ("200",)},
                has_samples=True,
            )
        }
    )
    assert _pairs(b, a) == {("metrics/build-info-missing", "build_info")}


def test_metadata_only_family_is_present_but_its_labels_unknown() -> None:
    b = MetricsSchema({"x_total": fam("x_total", labels=("code",))})
    a = MetricsSchema({"x_total": MetricFamily("x_total", "counter")})
    assert _pairs(b, a) == {("metrics/build-info-missing", "build_info")}


def test_renamed_evidence_names_both_versions() -> None:
    new = MetricsSchema({"orders_created_total": fam("orders_created_total")})
    old = MetricsSchema({"orders_total": fam("orders_total")})
    (renamed,) = [f for f in check_metrics(new, old, rollback=True) if f.kind == "metrics/renamed"]
    assert renamed.subject == "orders_created_total"
    assert renamed.evidence["old_name"] == "orders_total"
    assert renamed.evidence["new_name"] == "orders_created_total"
    (deploy,) = [f for f in check_metrics(old, new, rollback=False) if f.kind == "metrics/renamed"]
    assert deploy.subject == "orders_total"
    assert deploy.evidence["old_name"] == "orders_total"
    assert "`orders_total` is named `orders_created_total`" in deploy.message


def test_intermittent_family_is_neither_removed_nor_added() -> None:
    flaky = MetricFamily("gc_runs_total", "counter", has_samples=True, intermittent=("__name__",))
    assert _pairs(MetricsSchema({"gc_runs_total": flaky}), MetricsSchema()) == {
        ("metrics/build-info-missing", "build_info")
    }
    assert _pairs(MetricsSchema(), MetricsSchema({"gc_runs_total": flaky})) == {
        ("metrics/build-info-missing", "build_info")
    }


def test_type_unit_and_help_changes_name_old_and_new() -> None:
    b = MetricFamily("lat", "gauge", unit="seconds", help="Latency.", has_samples=True)
    a = MetricFamily("lat", "counter", unit="milliseconds", help="Delay.", has_samples=True)
    got = {f.kind: (f.message, dict(f.evidence)) for f in check_metrics(
        MetricsSchema({"lat": b}), MetricsSchema({"lat": a})
    ) if f.kind != "metrics/build-info-missing"}  # fmt: skip
    assert got == {
        "metrics/type-changed": (
            "`lat` changes type: gauge → counter.",
            {"family": "lat", "before": "gauge", "after": "counter"},
        ),
        "metrics/unit-changed": (
            "`lat` changes unit: `seconds` → `milliseconds`.",
            {"family": "lat", "before": "seconds", "after": "milliseconds"},
        ),
        "metrics/help-changed": (
            "`lat` changes help: `Latency.` → `Delay.`.",
            {"family": "lat", "before": "Latency.", "after": "Delay."},
        ),
    }
    # A unit or help only one side declares is no change; a type always is.
    c = MetricFamily("lat", "gauge", has_samples=True)
    assert {
        f.kind for f in check_metrics(MetricsSchema({"lat": b}), MetricsSchema({"lat": c}))
    } == {"metrics/build-info-missing"}
