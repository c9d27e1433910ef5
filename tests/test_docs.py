"""docs/: the generated pages match the code, the hand-written page names only what exists, and
no file in the repository points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from compatcheck import docs
from compatcheck.catalogue import load_catalogue
from compatcheck.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
HAND_WRITTEN = REPO / "docs" / "README.md"


def _commands_and_flags() -> tuple[set[str], set[str]]:
    commands, flags = set(), set()
    for name, _, sub in docs._subcommands(build_parser()):
        commands.add(name)
        flags |= {s for a in sub._actions for s in a.option_strings if s.startswith("--")}
    return commands, flags


def test_generated_docs_match_the_code():
    stale = docs.stale()
    assert stale == [], f"{', '.join(stale)} stale: run `{docs.REGENERATE}`"


def test_generated_docs_cover_every_command_kind_and_key():
    text = docs.generated()
    commands, _ = _commands_and_flags()
    assert {m for m in re.findall(r"^## compatcheck (\S+)$", text["docs/commands.md"], re.M)} == (
        commands
    )
    assert set(re.findall(r"^## (\S+/\S+)$", text["docs/findings.md"], re.M)) == set(
        load_catalogue()
    )
    assert "| `readiness.timeout` | duration | `30s` |" in text["docs/config.md"]


def test_the_check_names_the_command_that_regenerates(tmp_path, monkeypatch, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "config.md").write_text("# edited by hand\n", encoding="utf-8")
    monkeypatch.setattr(docs, "REPO", tmp_path)
    assert docs.main(["--check"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{name} is stale: run `python -m compatcheck.docs`" for name in docs.written()
    ]
    assert list(tmp_path.rglob("*")) == [tmp_path / "docs", tmp_path / "docs" / "config.md"]


def test_the_hand_written_page_names_only_what_exists():
    text = HAND_WRITTEN.read_text(encoding="utf-8")
    commands, flags = _commands_and_flags()
    named = set(re.findall(r"`compatcheck (\w+)", text))
    assert named and named <= commands, named - commands
    used_flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text))
    assert used_flags and used_flags <= flags, used_flags - flags
    kinds = set(re.findall(r"`([a-z]+/[a-z-]+)`", text))
    assert kinds <= set(load_catalogue()), kinds - set(load_catalogue())
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links and all((HAND_WRITTEN.parent / link).is_file() for link in links), links
    generated = {Path(name).name for name in docs.generated()}
    assert generated <= set(links)


def test_readme_links_to_docs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "](docs/README.md)" in readme
    for link in re.findall(r"\]\((docs/[^)#]+)\)", readme):
        assert (REPO / link).is_file(), link


def test_no_file_points_outside_the_repository():
    pattern = re.compile(r"/work/|\.\./shared|\bshared/|DESIGN\.md|STYLE\.md")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    hits = []
    for name in files:
        path = REPO / name
        if name == "tests/test_docs.py" or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [
            f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)
        ]
    assert hits == []


def _properties(node: object, path: str = "") -> list[tuple[str, dict[str, object]]]:
    """Every property of a JSON Schema (nested objects, array items and $defs), with its path."""
    out: list[tuple[str, dict[str, object]]] = []
    if not isinstance(node, dict):
        return out
    for name, prop in node.get("properties", {}).items():
        out.append((f"{path}.{name}", prop))
        out += _properties(prop, f"{path}.{name}")
    for name, definition in node.get("$defs", {}).items():
        out += _properties(definition, f"${name}")
    if isinstance(node.get("items"), dict):
        out += _properties(node["items"], f"{path}[]")
    return out


def test_every_report_and_snapshot_field_has_a_meaning_in_report_md():
    from compatcheck.schemas import SCHEMA_FILES, load_schema

    page = (REPO / "docs" / "report.md").read_text()
    for name in SCHEMA_FILES:
        props = _properties(load_schema(name))
        assert props, name
        missing = [p for p, prop in props if not str(prop.get("description", "")).strip()]
        assert missing == [], f"{name}: properties without a description: {missing}"
        for path, _prop in props:
            key = path.rsplit(".", 1)[-1]
            assert f"| `{key}` |" in page, f"{name} {path} not in docs/report.md"
    for topic in ("could not evaluate", "`blocking: false`", "`waived: true`", "Causes"):
        assert topic in page


def test_api_example_runs_as_documented(monkeypatch):
    """The example in docs/api.md is run as written, from the repository root."""
    import compatcheck

    page = (REPO / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(REPO)
    printed: list[str] = []
    namespace = {"print": lambda *a: printed.append(" ".join(map(str, a)))}
    exec(compile(blocks[0], "docs/api.md", "exec"), namespace)
    assert printed[0] == "no-go"
    assert {tuple(line.rsplit(" ", 1)[0].split(" ", 2)) for line in printed[1:]} == {
        ("error", "metrics/renamed", "shop_orders_created_total"),
        ("error", "metrics/label-removed", "shop_orders_created_total{payment_method}"),
        ("error", "consumers/query-broken", "alert:ShopCardPaymentsFailing"),
        ("error", "consumers/query-broken", "alert:ShopOrdersFailing"),
        ("error", "consumers/query-broken", "panel:Shop/Orders by payment method"),
    }
    documented = set(re.findall(r"^\| `(\w+)", page, re.M))
    assert documented | {"Report", "RatedFinding", "Snapshot", "__version__"} >= set(
        compatcheck.__all__
    )
    for name in compatcheck.__all__:
        assert getattr(compatcheck, name) is not None
