"""The recipes that pass image digests, replayed against a real registry and a real hook.

A real ``docker-registry`` holds four shop images, each with its release contract attached
(``compatcheck snapshot --attach``); the hook (``python -m compatcheck.serve``) reads contracts
from that registry only (``allow_images``). The recipes' placeholders are filled the way their
pipelines fill them (``${OLD_IMAGE}``/``${NEW_IMAGE}`` by envsubst), then:

- Argo Rollouts: each analysis argument is resolved from the recipe's Rollout as Argo's
  ``BuildArgumentsForRolloutAnalysisRun`` (utils/analysis/factory.go) does it: ``metadata.*``
  field paths (``metadata.annotations['k']``) as Kubernetes field paths, any other path by walking
  the Rollout's JSON; the template's ``jsonBody`` is sent, and the answer judged by its jsonPath
  and successCondition (non-2xx: Error).
- Flagger: the webhook payload is what Flagger's ``CanaryWebhookPayload`` holds (name,
  namespace, phase, checksum, metadata), POSTed without headers; 200-202 passes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from compatcheck.artifact.contract import attach_contract
from tests.test_artifact_registry import ML, Pusher, _start_registry, _stop
from tests.test_recipes_hooks import RECIPES, json_path, on_hook, substitute
from tests.test_serve_helpers import SNAPSHOTS, TOKEN, HookProcess, hook_process


@pytest.fixture(scope="module")
def images(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[HookProcess, dict[str, str]]]:
    """The hook, and the image reference of shop v1..v4, each with its contract attached."""
    tmp = tmp_path_factory.mktemp("digests")
    registry = _start_registry(tmp / "registry")
    try:
        pusher = Pusher(registry.url)
        refs = {}
        for version in ("v1", "v2", "v3", "v4"):
            img = ML.image(ML.FULL_LABELS, payload=version.encode())
            digest = pusher.image("team/shop", version, img)
            refs[version] = f"{registry.host}/team/shop@{digest}"
            snap = (SNAPSHOTS / "shop" / f"{version}.snapshot.json").read_bytes()
            attach_contract(f"oci:{refs[version]}", snap, "2026-05-01T00:00:00Z")
        config = tmp / "compatcheck.yaml"
        config.write_text(f"allow_images: ['{registry.host}/team/*']\n")
        with hook_process(["-c", str(config)], tmp / "hook.log") as hook:
            yield hook, refs
    finally:
        _stop(registry.process)


def envsubst(text: str, **values: str) -> list[dict[str, Any]]:
    """The recipe as its pipeline applies it (``envsubst '$OLD_IMAGE $NEW_IMAGE'``: only the
    variables named are replaced, ``$NAME`` or ``${NAME}``), every document parsed."""
    names = "|".join(values)
    filled = re.sub(rf"\$(?:\{{({names})\}}|({names})\b)", lambda m: values[m[1] or m[2]], text)
    return list(yaml.safe_load_all(filled))


def _field(rollout: dict[str, Any], path: str) -> str:
    """An analysis argument's ``fieldRef.fieldPath`` resolved against the Rollout, as Argo
    Rollouts resolves it (see the module docstring)."""
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str(rollout["metadata"].get(m.group(1), {})[m.group(2)])
    if path.startswith("metadata."):
        return str(rollout["metadata"][path.removeprefix("metadata.")])
    value: Any = rollout
    for section in (s for s in re.split(r"[.\[\]]+", path) if s):
        value = value[int(section)] if isinstance(value, list) else value[section]
    assert not isinstance(value, dict | list), path
    return str(value)


def _recipe(name: str, old_image: str, new_image: str) -> list[dict[str, Any]]:
    """The recipe's documents as the pipeline applies them: the two image digests filled in."""
    return envsubst((RECIPES / name).read_text(), OLD_IMAGE=old_image, NEW_IMAGE=new_image)


@pytest.mark.parametrize(
    ("old", "new", "phase"), [("v1", "v2", "Successful"), ("v3", "v4", "Failed")]
)
def test_argo_rollout_passes_the_image_digests(
    images: tuple[HookProcess, dict[str, str]], old: str, new: str, phase: str
) -> None:
    hook, refs = images
    template, rollout = _recipe("argo-analysistemplate-digests.yaml", refs[old], refs[new])
    assert (template["kind"], rollout["kind"]) == ("AnalysisTemplate", "Rollout")
    (step,) = [
        s["analysis"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in s
    ]
    assert [t["templateName"] for t in step["templates"]] == [template["metadata"]["name"]]
    args = {"compatcheck-token": TOKEN}  # from the Secret the template names
    for arg in step["args"]:
        ref = arg.get("valueFrom", {}).get("fieldRef")
        args[arg["name"]] = _field(rollout, ref["fieldPath"]) if ref else arg["value"]
    assert {a["name"] for a in template["spec"]["args"]} == set(args)
    assert (args["old-image"], args["new-image"]) == (refs[old], refs[new])
    (metric,) = template["spec"]["metrics"]
    web = substitute(metric["provider"]["web"], r"\{\{\s*args\.([\w-]+)\s*\}\}", args)
    resp = httpx.request(
        web["method"],
        on_hook(hook, web["url"]),
        headers={h["key"]: h["value"] for h in web["headers"]},
        content=json.dumps(web["jsonBody"]),
        timeout=web["timeoutSeconds"],
    )
    assert resp.status_code == 200, resp.text
    assert metric["successCondition"] == "result == true"
    got = "Successful" if json_path(resp.json(), web["jsonPath"]) is True else "Failed"
    assert got == phase
    assert resp.json()["old"]["source"].startswith(f"oci:{refs[old]} (contract sha256:")


def _flagger(hook: HookProcess, canary: dict[str, Any], **metadata: str) -> httpx.Response:
    (webhook,) = canary["spec"]["analysis"]["webhooks"]
    assert webhook["type"] == "pre-rollout"
    payload = {
        "name": canary["metadata"]["name"],
        "namespace": canary["metadata"]["namespace"],
        "phase": "Progressing",
        "checksum": "7c9f5d8b6d",
        "metadata": {**webhook["metadata"], "token": TOKEN, **metadata},
    }
    return httpx.post(
        on_hook(hook, webhook["url"]),
        content=json.dumps(payload),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


@pytest.mark.parametrize(("old", "new", "status"), [("v1", "v2", 200), ("v3", "v4", 412)])
def test_flagger_canary_passes_the_image_digests(
    images: tuple[HookProcess, dict[str, str]], old: str, new: str, status: int
) -> None:
    hook, refs = images
    deployment, canary = _recipe("flagger-canary-digests.yaml", refs[old], refs[new])
    assert canary["spec"]["targetRef"]["name"] == deployment["metadata"]["name"]
    # The canary's image and the webhook's newImage are the one digest the pipeline set.
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert canary["spec"]["analysis"]["webhooks"][0]["metadata"]["newImage"] == container["image"]
    resp = _flagger(hook, canary)
    assert resp.status_code == status, resp.text
    if status == 412:
        assert resp.json()["error"].startswith(f"no-go: rollback {new} → {old}: ")


def test_flagger_image_outside_allow_images_or_a_tag_is_refused(
    images: tuple[HookProcess, dict[str, str]],
) -> None:
    hook, refs = images
    _, canary = _recipe("flagger-canary-digests.yaml", refs["v1"], refs["v2"])
    host = refs["v1"].split("/", 1)[0]
    other = refs["v1"].replace("/team/shop@", "/other/shop@")
    refused = _flagger(hook, canary, oldImage=other)
    assert refused.status_code == 403 and "not in this server's `allow_images`" in refused.text
    tagged = _flagger(hook, canary, oldImage=f"{host}/team/shop:v1")
    assert tagged.status_code == 400 and "artifact/not-pinned" in tagged.json()["error"]
    both = _flagger(hook, canary, old="v1")
    assert (both.status_code, both.json()["error"]) == (
        400,
        "flagger payload needs exactly one of `metadata.old` (a stored version) or "
        "`metadata.oldImage` (an image digest)",
    )
