"""Contracts attached to image digests, through the hook: ``{"image": "reg/shop@sha256:…"}``
targets resolved in a real registry, the registry config's errors, and which images a hook
allows. The registry and the helpers are those of ``test_artifact_contract.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from compatcheck.artifact.auth import load_registry_config
from compatcheck.artifact.contract import (
    attach_contract,
    resolve_contract,
)
from tests.cli import run
from tests.test_artifact_contract import (
    METRICS,
    PASSWORD,
    _b64,
    _kinds,
    _report,
    _snapshot,
    registry,
)
from tests.test_artifact_registry import ML, Pusher, Registry

__all__ = ["registry"]  # the fixture, shared with test_artifact_contract.py


def test_hook_judges_the_contracts_attached_to_two_image_digests(
    registry: Registry, tmp_path: Path
) -> None:
    from tests.test_serve_helpers import TOKEN, hook_clients

    pusher = Pusher(registry.url)
    old_digest = pusher.image("team/shop", "v1", ML.image(ML.FULL_LABELS))
    new_digest = pusher.image("team/shop", "v2", ML.image(ML.FULL_LABELS, payload=b"v2"))
    untouched = pusher.image("team/shop", "v3", ML.image(ML.FULL_LABELS, payload=b"v3"))
    elsewhere = pusher.image("other/app", "v1", ML.image(ML.FULL_LABELS))
    old_snap, new_snap = _snapshot(tmp_path, "old"), _snapshot(tmp_path, "new")
    old_image = f"{registry.host}/team/shop@{old_digest}"
    new_image = f"{registry.host}/team/shop@{new_digest}"
    attach_contract(f"oci:{old_image}", old_snap.read_bytes(), "2026-05-01T00:00:00Z")
    attach_contract(f"oci:{new_image}", new_snap.read_bytes(), "2026-06-01T00:00:00Z")
    expected = _kinds(_report(run("diff", str(old_snap), str(new_snap), "--format", "json")))
    clients = hook_clients()
    make = next(clients)
    try:
        client = make(allow_images=(f"{registry.host}/team/*",))
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def check(old: str, new: str) -> httpx.Response:
            body = {"service": "shop", "old": {"image": old}, "new": {"image": new}}
            return client.post("/v1/check", json=body, headers=auth)  # type: ignore[no-any-return]

        first = check(old_image, new_image)
        assert first.status_code == 200, first.text
        assert first.json()["go"] is False and _kinds(first.json()) == expected != set()
        assert first.json()["old"]["source"] == (
            f"oci:{old_image} (contract {resolve_contract(f'oci:{old_image}').digest}, "
            "created 2026-05-01T00:00:00Z)"
        )
        assert check(old_image, new_image).json() == first.json()  # cached, same answer
        tagged = check(f"{registry.host}/team/shop:v1", new_image)
        assert (tagged.status_code, tagged.json()) == (
            400,
            {
                "error": f"{registry.host}/team/shop:v1: artifact/not-pinned: a tag can be moved "
                "to another image, so it names no contract; give the image digest "
                f"(`{registry.host}/team/shop@sha256:…`)"
            },
        )
        refused = check(f"{registry.host}/other/app@{elsewhere}", new_image)
        assert refused.status_code == 403 and "not in this server's `allow_images`" in refused.text
        bare = check(f"{registry.host}/team/shop@{untouched}", new_image)
        assert bare.status_code == 404
        assert f"has no compatcheck contract attached to `{untouched}`" in bare.json()["error"]
        started = client.post(
            "/v1/checks",
            json={"service": "shop", "old": {"image": old_image}, "new": {"image": new_image}},
            headers=auth,
        )
        assert started.status_code == 202
        polled = client.get(started.json()["location"], headers=auth).json()
        assert polled["status"] == "TERMINAL" and _kinds(polled["report"]) == expected
    finally:
        clients.close()


def test_registry_config_errors_name_the_file_and_host_never_a_secret(tmp_path: Path) -> None:
    from compatcheck.errors import InputError

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"reg.example": {"auth": _b64(PASSWORD)}}}))
    with pytest.raises(InputError) as broken:
        load_registry_config(str(path))
    assert str(broken.value) == (
        f"{path}: `auths.reg.example.auth` is not base64 of `user:password`"
    )
    path.write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": _b64(f"u:{PASSWORD}")},
                              "reg.example": {}},
                    "credHelpers": {"reg.example": "ecr-login"}})
    )  # fmt: skip
    config = load_registry_config(str(path))
    assert repr(config.credentials("docker.io")) == "Credentials(basic)"
    assert PASSWORD not in repr(config)
    assert config.credentials("other.example").kind == "anonymous"
    with pytest.raises(InputError) as helper:
        config.credentials("reg.example")
    assert str(helper.value) == (
        f"{path}: credentials for `reg.example` are kept by the credential helper "
        "`docker-credential-ecr-login`, which compatcheck does not run; give a config.json with "
        "an `auths` entry for it"
    )
    proc = run("diff", f"oci:reg.example/shop@sha256:{'a' * 64}", str(METRICS / "new.prom"),
               "--registry-config", str(path))  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "docker-credential-ecr-login" in proc.stderr


def test_hook_config_reads_allow_images_and_registry_config(tmp_path: Path) -> None:
    import argparse

    from compatcheck.errors import UsageError
    from compatcheck.serve import add_serve_arguments
    from compatcheck.serve.settings import settings_from_args

    (tmp_path / "docker.json").write_text(json.dumps({"auths": {}}))
    conf = tmp_path / "compatcheck.yaml"
    conf.write_text("allow_images: [reg.example/team/*]\nregistry_config: docker.json\n")
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    settings = settings_from_args(parser.parse_args(["-c", str(conf)]))
    assert (settings.allow_images, settings.registry_config, settings.snapshot_dir) == (
        ("reg.example/team/*",),
        str(tmp_path / "docker.json"),
        None,
    )
    (tmp_path / "docker.json").write_text("{")
    with pytest.raises(UsageError, match=r"docker\.json: registry config is"):
        settings_from_args(parser.parse_args(["-c", str(conf)]))
    # Read as every file a user names is: the same one-line refusals, a size cap read past by
    # one byte at most.
    (tmp_path / "docker.json").write_bytes(b" " * (1024 * 1024 + 1))
    with pytest.raises(UsageError, match=r"docker\.json: registry config larger than 1 MiB$"):
        settings_from_args(parser.parse_args(["-c", str(conf)]))
    (tmp_path / "docker.json").unlink()
    with pytest.raises(UsageError, match=r"docker\.json: no such registry config$"):
        settings_from_args(parser.parse_args(["-c", str(conf)]))


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("reg.example/team/shop@sha256:" + "a" * 64, True),
        ("reg.example/team@sha256:" + "a" * 64, False),
        ("reg.example/other/shop@sha256:" + "a" * 64, False),
        ("mirror.example/anything/x@sha256:" + "a" * 64, True),
        ("reg.example:5000/team/shop@sha256:" + "a" * 64, False),
        ("busybox@sha256:" + "a" * 64, True),
    ],
)
def test_allow_images_patterns(image: str, allowed: bool) -> None:
    from compatcheck.serve.requests import image_allowed

    allow = ("reg.example/team/*", "mirror.example", "docker.io/library/busybox")
    assert image_allowed(image, allow) is allowed
