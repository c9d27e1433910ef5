"""The catalogue, the code, DESIGN.md's pinned ids and the README table must agree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from compatcheck.catalogue import SEVERITIES, load_catalogue, render_markdown_table
from compatcheck.cli import main

REPO = Path(__file__).resolve().parent.parent
KIND_RE = re.compile(r"^(metrics|readiness|migrations|consumers|artifact|check|verify)/[a-z0-9-]+$")

#: The ids DESIGN.md pins (public: never renamed, never dropped), copied from its table.
DESIGN_KINDS = set(
    """
    metrics/family-removed metrics/family-added metrics/type-changed metrics/unit-changed
    metrics/help-changed metrics/label-removed metrics/label-added metrics/label-values-changed
    metrics/buckets-changed metrics/quantiles-changed metrics/renamed metrics/build-info-missing
    metrics/exposition-invalid
    readiness/not-ready readiness/endpoint-missing readiness/status-changed
    readiness/field-missing readiness/contract-violated
    migrations/path-missing migrations/multiple-heads migrations/downgrade-missing
    migrations/downgrade-not-implemented migrations/downgrade-incomplete
    migrations/downgrade-destructive migrations/upgrade-destructive migrations/downgrade-failed
    migrations/roundtrip-mismatch migrations/data-lost migrations/old-code-incompatible
    migrations/non-transactional
    consumers/query-broken consumers/bucket-dependent consumers/parse-error
    artifact/not-pinned artifact/metadata-missing artifact/version-mismatch
    check/unavailable
    """.split()
)


def _kinds_in_code() -> set[str]:
    """Every string literal in the package that looks like a finding kind."""
    found: set[str] = set()
    for path in (REPO / "compatcheck").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_str = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_str and KIND_RE.match(node.value):
                found.add(node.value)
    return found


def test_catalogue_has_every_design_kind() -> None:
    assert set(load_catalogue()) >= DESIGN_KINDS


def test_code_and_catalogue_agree() -> None:
    assert _kinds_in_code() == set(load_catalogue())


def test_every_rule_is_documented() -> None:
    for rule in load_catalogue().values():
        assert rule.severity in SEVERITIES
        assert rule.summary.endswith(".") and rule.why and rule.example and rule.fix


def test_readme_table_is_generated_from_catalogue() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- findings-table:start -->\n", "<!-- findings-table:end -->"
    assert start in readme and end in readme, "README lacks the generated finding table markers"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == render_markdown_table(), (
        "README finding table is stale: run `compatcheck rules --format markdown`"
    )


def test_rules_and_explain_commands(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(load_catalogue())
    assert main(["explain", "metrics/renamed"]) == 0
    out = capsys.readouterr().out
    assert "metrics/renamed" in out and "Why it matters" in out
    assert main(["explain", "metrics/nope"]) == 2
    assert "unknown finding kind 'metrics/nope'" in capsys.readouterr().err
    assert main(["explain", "renamed"]) == 2
    assert "did you mean `metrics/renamed`?" in capsys.readouterr().err
    assert main(["explain", "metrics/familly-removed"]) == 2
    assert "did you mean `metrics/family-removed`?" in capsys.readouterr().err


def test_readme_shows_the_demo_config_as_it_is() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    cfg = (REPO / "fixtures" / "demo" / "compatcheck.yaml").read_text(encoding="utf-8")
    body = "service: shop" + cfg.split("service: shop", 1)[1]
    assert f"```yaml\n{body}```" in readme, "README's config example drifted from the demo"
