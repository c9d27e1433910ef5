"""The hook's requests: what ``/v1/check``, ``/v1/checks`` and Flagger send, validated.

A body that is not a request is a :class:`~compatcheck.errors.UsageError` naming the key, and a
URL target on a server that does not allow them is a :class:`~compatcheck.errors.RefusedError`;
the web layer answers them as HTTP (:mod:`compatcheck.serve.app`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compatcheck.errors import InputError, RefusedError, UsageError
from compatcheck.store import validate_name

_REQUEST_KEYS = ("service", "old", "new", "direction")
_TARGET_KEYS = ("version", "url", "image")


@dataclass(frozen=True)
class Target:
    """One side of a check: a stored version, (when allowed) a metrics URL to scrape, or an image
    digest whose attached contract is read (``image``, from the operator's ``allow_images``)."""

    version: str | None = None
    url: str | None = None
    image: str | None = None


@dataclass(frozen=True)
class CheckRequest:
    service: str
    old: Target
    new: Target
    direction: str = "rollback"


def image_allowed(image: str, allow: tuple[str, ...]) -> bool:
    """Whether ``image`` (parsed) is in a registry or repository the operator allowed."""
    from compatcheck.artifact.reference import parse_reference

    ref = parse_reference(image)
    names = {f"{ref.domain}/{ref.path}", ref.written_repository}
    for pattern in allow:
        base = pattern.rstrip("/").removesuffix("/*")
        if "/" not in base and ref.domain == base:
            return True  # a whole registry
        if pattern.endswith("/*"):
            if any(n.startswith(base + "/") for n in names):
                return True
        elif base in names:
            return True
    return False


def image_target(value: object, role: str, allow_images: tuple[str, ...]) -> Target:
    """``{"image": ...}`` checked: a digest (a tag is ``artifact/not-pinned``), in a registry or
    repository of ``allow_images`` (:class:`RefusedError` otherwise)."""
    from compatcheck.artifact.contract import image_contract_ref

    if not isinstance(value, str) or not value or len(value) > 512:
        raise UsageError(f"`{role}.image` must be an image reference `REPO@sha256:…`")
    try:
        image_contract_ref(value)  # a tag is refused: artifact/not-pinned
    except InputError as exc:
        raise UsageError(str(exc).removeprefix("oci:")) from None
    if not image_allowed(value, allow_images):
        raise RefusedError(
            f"`{role}.image`: the registry or repository of `{value}` is not in this "
            "server's `allow_images`"
        )
    return Target(image=value)


def _target(
    value: object, role: str, allow_url: bool, allow_images: tuple[str, ...] = ()
) -> Target:
    if not isinstance(value, dict):
        raise UsageError(f'`{role}` must be an object like {{"version": "v1"}}')
    unknown = sorted(set(value) - set(_TARGET_KEYS))
    if unknown:
        raise UsageError(f"unknown key `{unknown[0]}` in `{role}` (expected version, url or image)")
    if sum(k in value for k in _TARGET_KEYS) != 1:
        raise UsageError(f"`{role}` needs exactly one of `version`, `url` or `image`")
    if "image" in value:
        return image_target(value["image"], role, allow_images)
    if "version" in value:
        return Target(version=validate_name(value["version"], f"{role} version"))
    url = value["url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise UsageError(f"`{role}.url` must be an http(s) URL")
    if not allow_url:
        raise RefusedError(
            "url targets are disabled on this server (the operator can enable --allow-url-targets)"
        )
    return Target(url=url)


def parse_check_request(
    body: object, *, allow_url: bool, allow_images: tuple[str, ...] = ()
) -> CheckRequest:
    """Validate a ``/v1/check`` body; unknown keys are errors (a typo must not pass silently)."""
    if not isinstance(body, dict):
        raise UsageError("request body must be a JSON object")
    unknown = sorted(set(body) - set(_REQUEST_KEYS))
    if unknown:
        raise UsageError(
            f"unknown key `{unknown[0]}` in request (expected: {', '.join(_REQUEST_KEYS)})"
        )
    for key in ("service", "old", "new"):
        if key not in body:
            raise UsageError(f"request needs `{key}`")
    service = validate_name(body["service"], "service")
    direction = body.get("direction", "rollback")
    if direction not in ("rollback", "deploy"):
        raise UsageError("`direction` must be rollback or deploy")
    return CheckRequest(
        service,
        _target(body["old"], "old", allow_url, allow_images),
        _target(body["new"], "new", allow_url, allow_images),
        direction,
    )


def parse_flagger_request(body: object, *, allow_images: tuple[str, ...] = ()) -> CheckRequest:
    """Flagger's webhook payload: ``name``, ``namespace``, ``phase``, ``checksum``, ``metadata``
    (a map of strings, copied from the Canary's webhook spec).

    Flagger sends nothing about images (its ``CanaryWebhookPayload`` has only those keys), so the
    two releases come from ``metadata``: per side either a stored version (``old``, ``new``) or
    an image digest whose attached contract is read (``oldImage``, ``newImage``: written into
    the Canary by the pipeline that sets the Deployment's image; see
    ``recipes/flagger-canary-digests.yaml``). The service is ``metadata.service`` or else the
    canary's ``name``. Other keys Flagger sends are ignored: its payload grows between releases.
    """
    if not isinstance(body, dict):
        raise UsageError("request body must be a JSON object")
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise UsageError("flagger payload needs `metadata` with `old` and `new` versions")
    service = meta.get("service") or body.get("name")
    if not service:
        raise UsageError("flagger payload needs `name` (or `metadata.service`)")
    check: dict[str, Any] = {"service": service}
    for role in ("old", "new"):
        version, image = meta.get(role), meta.get(f"{role}Image")
        if bool(version) == bool(image):
            raise UsageError(
                f"flagger payload needs exactly one of `metadata.{role}` (a stored version) or "
                f"`metadata.{role}Image` (an image digest)"
            )
        check[role] = {"version": version} if version else {"image": image}
    if "direction" in meta:
        check["direction"] = meta["direction"]
    return parse_check_request(check, allow_url=False, allow_images=allow_images)
