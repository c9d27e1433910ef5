"""compatcheck.records: a dataclass's JSON is its fields in declaration order, and back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from compatcheck.artifact.section import ReleaseRecord
from compatcheck.model import MetricFamily
from compatcheck.records import record_from_json, record_json
from compatcheck.verify.section import VerifyCheck, VerifySection


@dataclass(frozen=True)
class _Sample:
    zeta: str
    alpha: tuple[str, ...]
    middle: int | None = None
    extra: Mapping[str, int] = field(default_factory=dict)


def test_keys_in_declaration_order_tuples_as_lists_none_kept() -> None:
    out = record_json(_Sample("z", ("a", "b")))
    assert list(out) == ["zeta", "alpha", "middle", "extra"]
    assert out == {"zeta": "z", "alpha": ["a", "b"], "middle": None, "extra": {}}


def test_a_named_conversion_replaces_the_default_one() -> None:
    out = record_json(_Sample("z", ("a",), 3), alpha=lambda v: "+".join(v), middle=str)
    assert out == {"zeta": "z", "alpha": "a", "middle": "3", "extra": {}}


def test_from_json_takes_defaults_and_requires_the_rest() -> None:
    assert record_from_json(_Sample, {"zeta": "z", "alpha": ("a",)}) == _Sample("z", ("a",))
    got = record_from_json(_Sample, {"zeta": "z", "alpha": (), "extra": {"n": 1}})
    assert got.extra == {"n": 1} and got.middle is None
    with pytest.raises(KeyError, match="alpha"):
        record_from_json(_Sample, {"zeta": "z"})


def test_from_json_reads_a_list_as_a_tuple_and_a_named_field_through_its_conversion() -> None:
    got = record_from_json(_Sample, {"zeta": "z", "alpha": ["a", "b"]})
    assert got == _Sample("z", ("a", "b")) and type(got.alpha) is tuple
    got = record_from_json(
        _Sample, {"zeta": 5, "alpha": ["a", "b"]}, zeta=str, alpha=lambda v: tuple(v[::-1])
    )
    assert got == _Sample("5", ("b", "a"))
    got = record_from_json(_Sample, {"zeta": "z", "alpha": (), "middle": None}, middle=int)
    assert got.middle is None  # int(None) would raise: a null is read as None


_FAMILY = MetricFamily(
    name="http_request_duration_seconds",
    type="histogram",
    help="h",
    labels=("le", "method"),
    label_values={"method": ("GET", "POST"), "code": ("200",)},
    buckets=(0.5, float("inf")),
    quantiles=(0.99,),
    series=2,
    has_samples=True,
    intermittent=("code",),
)
_CHECK = VerifyCheck("up", "ok", "all up", value=1.0, details=("a", "b"))
_SECTION = VerifySection("http://p", "{}", "v1", 60.0, 5.0, "t0", "t1", 3, True, (_CHECK,))


@pytest.mark.parametrize(
    ("record", "text"),
    [
        (
            _FAMILY,
            '{"name": "http_request_duration_seconds", "type": "histogram", "unit": "", '
            '"help": "h", "labels": ["le", "method"], '
            '"label_values": {"code": ["200"], "method": ["GET", "POST"]}, '
            '"high_cardinality": [], "buckets": ["0.5", "+Inf"], "quantiles": ["0.99"], '
            '"series": 2, "has_samples": true, "intermittent": ["code"]}',
        ),
        (
            _SECTION,
            '{"prometheus": "http://p", "selector": "{}", "expect": "v1", "window_seconds": 60.0, '
            '"interval_seconds": 5.0, "started_at": "t0", "finished_at": "t1", "polls": 3, '
            '"verified": true, "checks": [{"name": "up", "status": "ok", "summary": "all up", '
            '"query": "", "value": 1.0, "checked_at": "", "ok_since": null, '
            '"details": ["a", "b"]}]}',
        ),
    ],
    ids=["metric-family", "verify-section"],
)
def test_json_is_unchanged(record: MetricFamily | VerifySection, text: str) -> None:
    """The exact text a snapshot or report holds: key order, bound spelling, label values sorted
    by label; and it reads back to the same record."""
    assert json.dumps(record.to_json()) == text
    assert type(record).from_json(record.to_json()) == record


def test_release_record_writes_the_late_keys_only_when_known() -> None:
    bare = ReleaseRecord("/srv/app/bin", "/srv/app", "/srv/app/current", None)
    assert list(bare.to_json()) == [
        "path",
        "directory",
        "current_link",
        "expected_sha256",
        "sha256",
        "executable",
        "current_target",
    ]
    full = ReleaseRecord("/b", "/d", "/c", "ab", "ab", True, "/t", "a directory", "0755")
    assert list(full.to_json())[-2:] == ["current_link_problem", "mode"]
    assert ReleaseRecord.from_json(full.to_json()) == full
    assert ReleaseRecord.from_json(bare.to_json()) == bare
    with pytest.raises(KeyError):
        ReleaseRecord.from_json({"path": "/b"})
    # Only the path, directory and link are required (as from_json read them before records.py).
    assert ReleaseRecord.from_json({"path": "/b", "directory": "/d", "current_link": "/c"}) == (
        ReleaseRecord("/b", "/d", "/c", None)
    )
