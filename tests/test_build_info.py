"""Which build answered: the service's own build info wins over a language runtime's."""

from __future__ import annotations

from pathlib import Path

import pytest

from compatcheck.checks.build import check_expected_build, read_build_info
from compatcheck.checks.metrics import check_metrics
from compatcheck.config import parse_config
from compatcheck.errors import UsageError
from compatcheck.exposition import parse_text

# client_golang built outside a module (GOPATH mode): `go_build_info` has empty labels.
GO_SERVICE = (
    '# TYPE go_build_info gauge\ngo_build_info{checksum="",path="",version=""} 1\n'
    '# TYPE app_build_info gauge\napp_build_info{version="9.9.9",revision="zzz"} 1\n'
    '# TYPE shop_build_info gauge\nshop_build_info{version="1.0.0",revision="abc"} 1\n'
    '# TYPE python_info gauge\npython_info{version="3.11.7",implementation="CPython"} 1\n'
    '# TYPE target_info gauge\ntarget_info{service_version="7.0.0"} 1\n'
)


def test_an_empty_runtime_version_never_hides_the_services() -> None:
    schema = parse_text(
        '# TYPE go_build_info gauge\ngo_build_info{checksum="",path="",version=""} 1\n'
        '# TYPE shop_build_info gauge\nshop_build_info{version="1.0.0",revision="abc"} 1\n'
    )
    assert read_build_info(schema) == {"version": "1.0.0", "revision": "abc"}
    # ... so OLD's pinned version is confirmed, not a false mismatch.
    assert check_expected_build("old", "v1", {"version": "1.0.0"}, read_build_info(schema)) == []


@pytest.mark.parametrize(
    ("service", "family", "expected"),
    [
        ("shop", None, {"version": "1.0.0", "revision": "abc"}),  # named after the service
        ("Shop", None, {"version": "1.0.0", "revision": "abc"}),
        ("", None, {"version": "9.9.9", "revision": "zzz"}),  # app families by name, first
        ("billing", None, {"version": "9.9.9", "revision": "zzz"}),
        ("", "target_info", {"version": "7.0.0"}),  # the config's `build_info` alone
        ("shop", "app_build_info", {"version": "9.9.9", "revision": "zzz"}),
        ("shop", "missing_build_info", {}),
    ],
)
def test_preference_order(service: str, family: str | None, expected: dict[str, str]) -> None:
    schema = parse_text(GO_SERVICE)
    assert read_build_info(schema, service=service, family=family) == expected


def test_runtime_build_info_is_used_when_nothing_else_names_a_version() -> None:
    # A module build (`go install example.com/shop@v1.2.3`) puts the version into go_build_info.
    schema = parse_text('# TYPE go_build_info gauge\ngo_build_info{version="v1.2.3"} 1\n')
    assert read_build_info(schema, service="shop") == {"version": "v1.2.3"}
    for placeholder in ("", "unknown", "(devel)"):
        empty = parse_text(
            f'# TYPE go_build_info gauge\ngo_build_info{{version="{placeholder}"}} 1\n'
        )
        assert read_build_info(empty) == {}


def test_a_placeholder_version_is_no_build_info() -> None:
    schema = parse_text('# TYPE go_build_info gauge\ngo_build_info{path="",version=""} 1\n')
    got = {(f.kind, f.subject) for f in check_metrics(schema, schema)}
    assert got == {("metrics/build-info-missing", "build_info")}


def test_config_build_info_key(tmp_path: Path) -> None:
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(
        "service: shop\nbuild_info: shop_release_info\n"
        "old: {url: 'http://127.0.0.1:1'}\nnew: {url: 'http://127.0.0.1:2'}\n"
    )
    assert parse_config(cfg.read_text(), cfg).build_info == "shop_release_info"
    cfg.write_text(
        "build_info: 'shop build'\nold: {url: 'http://127.0.0.1:1'}\nnew: {url: 'http://127.0.0.1:2'}\n"
    )
    with pytest.raises(UsageError) as err:
        parse_config(cfg.read_text(), cfg)
    assert str(err.value) == (f"{cfg}:1: `build_info`: 'shop build' is not a metric family name")
