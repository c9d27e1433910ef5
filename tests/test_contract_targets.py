"""``check`` targets that are the contract attached to an image digest.

``old: {contract: "oci-layout:DIR@sha256:…"}`` in compatcheck.yaml resolves the contract as
``diff`` does (a copy of the fixture OCI layout, the fixture shop snapshots attached to it); a tag
is refused when the config is read, with ``file:line``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.cli import REPO, run

SNAPSHOTS = REPO / "fixtures" / "snapshots" / "shop"
LABELLED = REPO / "fixtures" / "oci" / "labelled"


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


def test_the_hook_fetches_contract_content_only_when_its_digest_is_new(tmp_path: Path) -> None:
    """Image targets: every lookup asks the registry which contracts are attached (a newer one
    wins at once), but the contract's manifest and snapshot, addressed by digest, are fetched
    once. Shown by deleting both from the real registry after the first check: the hook still
    judges with them (a resolver without the cache cannot), and a newer contract attached to
    an image later is used by the next check."""
    import httpx
    import pytest

    from compatcheck.artifact.contract import attach_contract, resolve_contract
    from compatcheck.artifact.oci import ArtifactUnavailable
    from tests.test_artifact_registry import ML, Pusher, _start_registry, _stop
    from tests.test_serve_helpers import AUTH, hook_clients

    registry = _start_registry(tmp_path / "registry")
    clients = hook_clients()
    try:
        pusher = Pusher(registry.url)
        refs = {}
        for version in ("v3", "v4"):
            digest = pusher.image(
                "team/shop", version, ML.image(ML.FULL_LABELS, payload=version.encode())
            )
            refs[version] = f"{registry.host}/team/shop@{digest}"
            snap = (SNAPSHOTS / f"{version}.snapshot.json").read_bytes()
            attach_contract(f"oci:{refs[version]}", snap, "2026-05-01T00:00:00Z")
        client = next(clients)(allow_images=(f"{registry.host}/team/*",))
        body = {"service": "shop", "old": {"image": refs["v3"]}, "new": {"image": refs["v4"]}}
        first = client.post("/v1/check", json=body, headers=AUTH)
        assert first.status_code == 200 and first.json()["go"] is False
        contract = resolve_contract(f"oci:{refs['v3']}")
        manifest = httpx.get(
            f"{registry.url}/v2/team/shop/manifests/{contract.digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ).json()
        (layer,) = manifest["layers"]
        for kind, digest in (("blobs", layer["digest"]), ("manifests", contract.digest)):
            gone = httpx.delete(f"{registry.url}/v2/team/shop/{kind}/{digest}")
            assert gone.status_code == 202, gone.text
        with pytest.raises(ArtifactUnavailable):
            resolve_contract(f"oci:{refs['v3']}")  # no cache: the content is gone
        again = client.post("/v1/check", json=body, headers=AUTH)
        assert again.status_code == 200, again.text
        assert again.json()["old"]["source"] == first.json()["old"]["source"]
        # A newer contract for v4 (v3's content): the list is read again, the new one wins.
        newer = (SNAPSHOTS / "v3.snapshot.json").read_bytes()
        attach_contract(f"oci:{refs['v4']}", newer, "2030-01-01T00:00:00Z")
        third = client.post("/v1/check", json=body, headers=AUTH)
        assert third.status_code == 200, third.text
        assert "created 2030-01-01T00:00:00Z, newest of 2" in third.json()["new"]["source"]
        assert third.json()["go"] is True  # v3 against v3
    finally:
        clients.close()
        _stop(registry.process)
