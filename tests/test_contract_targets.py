"""``check`` targets that are the contract attached to an image digest (issue 16).

``old: {contract: "oci-layout:DIR@sha256:…"}`` in compatcheck.yaml resolves the contract as
``diff`` does (a copy of the fixture OCI layout, the fixture shop snapshots attached to it); a tag
is refused when the config is read, with ``file:line``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = REPO / "fixtures" / "snapshots" / "shop"
LABELLED = REPO / "fixtures" / "oci" / "labelled"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compatcheck", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _kinds(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in report["findings"]}


def test_check_resolves_a_contract_target_like_diff(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    shutil.copytree(LABELLED, layout)
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    old, new = SNAPSHOTS / "v3.snapshot.json", SNAPSHOTS / "v4.snapshot.json"
    attached = run("snapshot", str(old), "--attach", f"oci-layout:{layout}@{digest}", "-q")
    assert attached.returncode == 0, attached.stderr
    config = tmp_path / "compatcheck.yaml"
    # The layout folder is relative to the config file, like every path in it.
    config.write_text(
        f"service: shop\nold: {{contract: 'oci-layout:layout@{digest}'}}\n"
        f"new: {{snapshot: {new}}}\n"
    )
    checked = run("check", "-c", str(config), "--format", "json", "-q")
    diffed = run("diff", str(old), str(new), "--format", "json", "-q")
    assert checked.returncode == diffed.returncode == 1, checked.stderr + diffed.stderr
    report = json.loads(checked.stdout)
    assert _kinds(report) == _kinds(json.loads(diffed.stdout)) != set()
    assert report["old"]["label"] == json.loads(old.read_text())["label"]
    assert report["old"]["source"].startswith(f"oci-layout:{layout}@{digest} (contract sha256:")


def test_a_contract_target_with_a_tag_is_refused_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "compatcheck.yaml"
    config.write_text(
        "service: shop\nold:\n  contract: oci:registry.example.com/team/shop:v1\n"
        f"new: {{snapshot: {SNAPSHOTS / 'v4.snapshot.json'}}}\n"
    )
    done = run("config", "--validate", str(config))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"compatcheck: error: {config}:3: `old.contract`: oci:registry.example.com/team/shop:v1: "
        "artifact/not-pinned: a tag can be moved to another image, so it names no contract; "
        "give the image digest (`registry.example.com/team/shop@sha256:…`)"
    ]
