"""The catalogue, the rule registry, the pinned public ids and the README table must agree."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from compatcheck.catalogue import SEVERITIES, load_catalogue, render_markdown_table
from compatcheck.checks import REGISTRY, catalogued_rules, registered_kinds
from compatcheck.cli import main
from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.model import Finding
from compatcheck.rules import Check, CheckContext, check
from compatcheck.snapshot import Snapshot

REPO = Path(__file__).resolve().parent.parent
KIND_RE = re.compile(r"^(metrics|readiness|migrations|consumers|artifact|check|verify)/[a-z0-9-]+$")

#: The public ids (never renamed, never dropped), as the product contract first pinned them.
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


def test_catalogue_has_every_design_kind() -> None:
    assert set(load_catalogue()) >= DESIGN_KINDS


def test_registry_and_catalogue_agree() -> None:
    assert set(registered_kinds()) == set(load_catalogue())
    assert all(KIND_RE.match(kind) for kind in registered_kinds())


def test_every_kind_is_owned_by_exactly_one_check() -> None:
    owned = [kind for c in REGISTRY.values() for kind in c.kinds]
    assert len(owned) == len(set(owned))
    assert {kind: c.name for c in REGISTRY.values() for kind in c.kinds} == registered_kinds()


def test_a_second_owner_for_a_kind_is_refused() -> None:
    with pytest.raises(AssertionError, match=r"metrics/renamed is owned by compatcheck\.checks"):
        check("metrics/renamed")(lambda ctx: [])


def test_a_check_emitting_a_kind_it_does_not_own_fails_loudly() -> None:
    def rogue(ctx: CheckContext) -> list[Finding]:
        return [Finding("metrics/renamed", "x", "x", {})]

    ctx = CheckContext(Snapshot(), Snapshot(), EvaluateOptions())
    with pytest.raises(AssertionError, match="emitted metrics/renamed, a kind it does not own"):
        Check("rogue", ("readiness/not-ready",), rogue).run(ctx)


def test_a_recorded_finding_of_an_unregistered_kind_is_refused() -> None:
    opts = EvaluateOptions(extra_findings=[Finding("metrics/nope", "x", "x", {})])
    with pytest.raises(ValueError, match="'metrics/nope' is owned by no registered check"):
        evaluate(Snapshot(), Snapshot(), opts)


def test_every_rule_is_documented() -> None:
    for rule in load_catalogue().values():
        assert rule.severity in SEVERITIES
        assert rule.summary.endswith(".") and rule.why and rule.example and rule.fix


def test_readme_table_lists_the_registry_kinds_with_catalogue_severities() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- findings-table:start -->\n", "<!-- findings-table:end -->"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    shown = {row[0].removeprefix("| `").removesuffix("`"): row[1].split(" ")[0] for row in rows}
    catalogue = load_catalogue()
    assert shown == {kind: catalogue[kind].severity for kind in registered_kinds()}


def test_readme_table_is_generated_from_catalogue() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- findings-table:start -->\n", "<!-- findings-table:end -->"
    assert start in readme and end in readme, "README lacks the generated finding table markers"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == render_markdown_table(catalogued_rules()), (
        "README finding table is stale: run `compatcheck rules --format markdown`"
    )


def test_rules_and_explain_commands(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(load_catalogue())
    assert main(["explain", "metrics/renamed"]) == 0
    out = capsys.readouterr().out
    assert "metrics/renamed" in out and "Why it matters" in out
    # Every evidence key the catalogue declares for the kind, with its meaning.
    keys = out.split("Evidence keys (JSON):\n", 1)[1].splitlines()
    rule = load_catalogue()["metrics/renamed"]
    assert rule.evidence and [k.split()[0] for k in keys] == [k for k, _m in rule.evidence]
    assert all(meaning in out for _k, meaning in rule.evidence)
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


def test_the_decoded_catalogue_is_used_only_for_the_yaml_it_was_made_from(
    tmp_path, monkeypatch
) -> None:
    from compatcheck import catalogue

    raw = catalogue.rules_path().read_bytes()
    from_yaml = catalogue._parse(catalogue.read_yaml_catalogue(raw.decode("utf-8")), "yaml")
    committed = catalogue._decoded(raw)
    assert committed is not None, "_catalogue.json is stale: run `python -m compatcheck.docs`"
    assert catalogue._parse(committed, "json") == from_yaml
    # A decoded copy that says otherwise than the YAML: believed only with the YAML's digest.
    document = json.loads(catalogue.DECODED_PATH.read_text(encoding="utf-8"))
    document["catalogue"]["kinds"]["metrics/family-removed"]["severity"] = "info"
    assert from_yaml["metrics/family-removed"].severity == "error"
    decoded = tmp_path / "_catalogue.json"
    monkeypatch.setattr(catalogue, "DECODED_PATH", decoded)
    try:
        for digest, severity in (("0" * 64, "error"), (hashlib.sha256(raw).hexdigest(), "info")):
            document["source_sha256"] = digest
            decoded.write_text(json.dumps(document), encoding="utf-8")
            catalogue.load_catalogue.cache_clear()
            assert catalogue.load_catalogue()["metrics/family-removed"].severity == severity
        decoded.write_text("{not json", encoding="utf-8")
        catalogue.load_catalogue.cache_clear()
        assert catalogue.load_catalogue() == from_yaml
    finally:
        catalogue.load_catalogue.cache_clear()
