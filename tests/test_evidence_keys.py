"""The evidence keys docs/report.md documents are exactly the keys the code writes.

Each kind declares its evidence keys in rules/default.yaml (docs/report.md is generated from
that). Findings produced by the real code from the repository's fixtures, and those of the golden
reports, may only use declared keys; and every declared key is produced somewhere, so neither
the code nor the docs can drift. A few keys only arise against live systems (a scrape that
fails, a round trip a server refuses); they are listed below with the module that writes them,
and the test checks that module still does.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from compatcheck.catalogue import _parse, load_catalogue
from compatcheck.errors import UsageError
from tests.evidence_corpus import Produced, corpus

REPO = Path(__file__).resolve().parent.parent

_FINDINGS = "compatcheck/migrations/findings.py"
#: (kind, key) → the module that writes it, for keys no fixture run can produce in-process.
LIVE_ONLY = {
    ("check/unavailable", "url"): "compatcheck/capture/target.py",  # a scrape that failed
    ("check/unavailable", "privilege"): "compatcheck/migrations/inspection.py",
    (
        "migrations/roundtrip-mismatch",
        "reupgrade_differences",
    ): "compatcheck/migrations/findings.py",
}


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> list[Produced]:
    return corpus(tmp_path_factory.mktemp("evidence"))


def _declared() -> dict[str, set[str]]:
    return {kind: {key for key, _ in rule.evidence} for kind, rule in load_catalogue().items()}


def test_every_evidence_key_written_is_declared(produced: list[Produced]) -> None:
    declared = _declared()
    undeclared = sorted(
        f"{kind}: `{key}` (from {where})"
        for kind, evidence, where in produced
        for key in evidence
        if key not in declared[kind]
    )
    assert undeclared == [], "declare these under `evidence:` in rules/default.yaml"


def test_every_declared_key_is_written_somewhere(produced: list[Produced]) -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for kind, evidence, _ in produced:
        seen[kind].update(evidence)
    assert set(load_catalogue()) <= set(seen), "a kind no fixture produces"
    never = {(kind, key) for kind, keys in _declared().items() for key in keys - seen[kind]}
    assert never == set(LIVE_ONLY), "declared keys nothing writes (remove them or add a fixture)"


@pytest.mark.parametrize(("kind", "key"), sorted(LIVE_ONLY))
def test_live_only_keys_are_still_written_where_named(kind: str, key: str) -> None:
    assert key in _declared()[kind]
    source = (REPO / LIVE_ONLY[(kind, key)]).read_text(encoding="utf-8")
    assert f'"{key}"' in source or f", {key}=" in source  # a literal key or a keyword


def test_docs_list_every_declared_key() -> None:
    text = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    section = text.split("## Evidence keys of each kind", 1)[1]
    for kind, rule in load_catalogue().items():
        block = section.split(f"### `{kind}`\n", 1)[1].split("\n### ", 1)[0]
        for key, meaning in rule.evidence:
            assert f"| `{key}` | {meaning} |" in block


@pytest.mark.parametrize(
    ("evidence", "problem"),
    [
        (None, "evidence must be a mapping of key to meaning"),
        (["family"], "evidence must be a mapping of key to meaning"),
        ({"family": ""}, "evidence family: the meaning must be a sentence"),
    ],
)
def test_a_kind_without_evidence_docs_is_refused(evidence: object, problem: str) -> None:
    entry = {"severity": "error", "summary": "s.", "why": "w", "example": "e", "fix": "f"}
    if evidence is not None:
        entry["evidence"] = evidence  # type: ignore[assignment]
    with pytest.raises(UsageError, match=f"rules.yaml: metrics/x: {problem}"):
        _parse({"kinds": {"metrics/x": entry}}, "rules.yaml")


@pytest.mark.slow
def test_the_demo_writes_only_declared_keys(tmp_path: Path) -> None:
    """The README's demo (both shop releases started, migrations, consumers) through the CLI."""
    import json
    import subprocess
    import sys

    out = tmp_path / "demo.json"
    demo = ["check", "-c", "fixtures/demo/compatcheck.yaml", "--format", "json", "-o", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "compatcheck", *demo, "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    declared = _declared()
    findings = json.loads(out.read_text())["findings"]
    assert len({f["kind"] for f in findings}) >= 5
    undeclared = sorted(
        f"{f['kind']}: `{key}`"
        for f in findings
        for key in f["evidence"]
        if key not in declared[f["kind"]]
    )
    assert undeclared == []
