"""Artifact pinning: the rollback must target exactly what was verified.

Three questions about OLD's artifact, each a finding kind:

* ``artifact/not-pinned`` — the image is a tag (``reg/shop:v1``), which anyone can re-push, or a
  release binary has no recorded sha256;
* ``artifact/metadata-missing`` — the image carries no ``org.opencontainers.image.revision``,
  ``.version`` or ``.created`` (config labels, else manifest/index annotations), so nobody can
  tell which source it was built from;
* ``artifact/version-mismatch`` — the image's revision/version labels contradict OLD's build info,
  or a release binary is not the file it claims to be (digest, execute bit).

The image is read from an OCI image layout directory or a registry (OCI distribution API); a
source that cannot be read is ``check/unavailable`` (subject ``<role>:artifact``), never a crash.
The report section ends with the exact rollback command (``kubectl set image ...@sha256:...`` or
the atomic symlink switch), quoted for a shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compatcheck.artifact.oci import ArtifactUnavailable, ImageInfo, read_layout, read_registry
from compatcheck.artifact.reference import ImageReference, parse_reference
from compatcheck.artifact.release import inspect_release, parse_release
from compatcheck.artifact.rollback import kubectl_command, parse_kubernetes, symlink_command
from compatcheck.errors import UsageError
from compatcheck.model import Finding, sort_findings

__all__ = [
    "REQUIRED_LABELS",
    "ArtifactResult",
    "ImageReference",
    "inspect_artifact",
    "parse_reference",
]

REVISION = "org.opencontainers.image.revision"
VERSION = "org.opencontainers.image.version"
CREATED = "org.opencontainers.image.created"
#: The OCI pre-defined annotation keys that identify a build; order is the report's order.
REQUIRED_LABELS = (REVISION, VERSION, CREATED)
SPEC_KEYS = ("image", "oci_layout", "registry", "release", "kubernetes")
#: A short git sha is accepted as the same revision as the full one from this many hex digits.
_SHORT_SHA = 7


@dataclass(frozen=True)
class ArtifactResult:
    """Findings plus the report's ``artifact`` section (reference, digest, labels, rollback...)."""

    findings: tuple[Finding, ...]
    section: dict[str, Any]


def _same_revision(a: str, b: str) -> bool:
    """Equal, or one is an abbreviation (≥ 7 hex digits) of the other: git's short-sha rule."""
    a, b = a.strip().lower(), b.strip().lower()
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= _SHORT_SHA and long_.startswith(short)


def _same_version(a: str, b: str) -> bool:
    """Equal up to a leading ``v`` (tags say ``v1.2.0``, build info often says ``1.2.0``)."""
    return a.strip().removeprefix("v") == b.strip().removeprefix("v")


def _metadata(info: ImageInfo) -> tuple[dict[str, str], dict[str, str]]:
    """Identity values and where each came from: config label first, then annotations."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for key in REQUIRED_LABELS:
        if info.labels.get(key):
            values[key], sources[key] = info.labels[key], "label"
        elif info.annotations.get(key):
            values[key], sources[key] = info.annotations[key], "annotation"
    return values, sources


def _check_image(
    ref: ImageReference | None,
    subject: str,
    info: ImageInfo,
    build: Mapping[str, str],
) -> list[Finding]:
    findings: list[Finding] = []
    values, _ = _metadata(info)
    missing = [k for k in REQUIRED_LABELS if k not in values]
    if missing:
        names = ", ".join(f"`{k}`" for k in missing)
        findings.append(
            Finding(
                "artifact/metadata-missing",
                subject,
                f"Image `{subject}` (`{info.digest}`) has no {names} "
                f"label{'s' if len(missing) > 1 else ''}, so its build cannot be traced.",
                {"missing": missing, "digest": info.digest, "config_digest": info.config_digest},
            )
        )
    wrong: dict[str, dict[str, str]] = {}
    for key, label, same in (
        ("revision", REVISION, _same_revision),
        ("version", VERSION, _same_version),
    ):
        want = build.get(key)
        have = values.get(label)
        if want and have and not same(have, want):
            wrong[key] = {"image": have, "build": want}
    if wrong:
        parts = " and ".join(
            f"{key} `{v['image']}` where the build info says `{v['build']}`"
            for key, v in wrong.items()
        )
        findings.append(
            Finding(
                "artifact/version-mismatch",
                subject,
                f"Image `{subject}` has {parts}.",
                {"mismatches": wrong, "digest": info.digest, "reason": "label-mismatch"},
            )
        )
    return findings


def _spec_string(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"artifact `{key}` must be a non-empty string")
    return value


def inspect_artifact(
    spec: Mapping[str, Any],
    *,
    build: Mapping[str, str] | None = None,
    role: str = "old",
    timeout: float = 10.0,
    insecure: bool = False,
) -> ArtifactResult:
    """Check one release's artifact and compute its rollback command.

    ``spec`` keys: ``image`` (reference), ``oci_layout`` (directory; read instead of a registry),
    ``registry`` (URL or host overriding the reference's host), ``release`` ``{path, sha256,
    current_link?}``, ``kubernetes`` ``{deployment, container, namespace?}``. ``build`` is the
    snapshot's build info (``{"version", "revision"}``). Raises :class:`UsageError` for a bad
    spec; everything about the artifact itself is a finding.
    """
    if not isinstance(spec, Mapping):
        raise UsageError("artifact spec must be a mapping")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise UsageError(f"artifact spec has unknown key `{unknown[0]}`")
    image = _spec_string(spec, "image")
    layout = _spec_string(spec, "oci_layout")
    registry = _spec_string(spec, "registry")
    k8s = parse_kubernetes(spec["kubernetes"]) if spec.get("kubernetes") is not None else None
    release = parse_release(spec["release"]) if spec.get("release") is not None else None
    if image is None and layout is None and release is None:
        raise UsageError("artifact spec needs `image`, `oci_layout` or `release`")
    if k8s is not None and image is None:
        raise UsageError("artifact `kubernetes` needs `image` (the repository to pin)")
    ref = parse_reference(image) if image is not None else None
    build = build or {}

    findings: list[Finding] = []
    section: dict[str, Any] = {"rollback_command": None}
    commands: list[str] = []

    if ref is not None or layout is not None:
        subject = ref.written if ref is not None else str(layout)
        img: dict[str, Any] = {
            "reference": ref.written if ref else None,
            "canonical": ref.canonical if ref else None,
            "tag": ref.tag if ref else None,
            "pinned": ref.pinned if ref else False,
            "digest": ref.digest if ref else None,
            "source": None,
        }
        section.update(img)
        info: ImageInfo | None = None
        try:
            if layout is not None:
                info = read_layout(Path(layout), ref)
            elif ref is not None:
                info = read_registry(ref, registry=registry, timeout=timeout, insecure=insecure)
        except ArtifactUnavailable as exc:
            reason = str(exc)
            findings.append(
                Finding(
                    "check/unavailable",
                    f"{role}:artifact",
                    f"Image `{subject}` could not be inspected: {reason}.",
                    {"reason": reason, "reference": subject},
                )
            )
        digest = ref.digest if ref and ref.digest else None
        if info is not None:
            digest = digest or info.digest
            values, sources = _metadata(info)
            section.update(
                {
                    "digest": digest,
                    "source": info.source,
                    "media_type": info.media_type,
                    "manifest_digest": info.manifest_digest,
                    "config_digest": info.config_digest,
                    "platform": info.platform,
                    "labels": dict(sorted(info.labels.items())),
                    "annotations": dict(sorted(info.annotations.items())),
                    "metadata": {k: values.get(k) for k in REQUIRED_LABELS},
                    "metadata_source": sources,
                }
            )
            findings += _check_image(ref, subject, info, build)
        if ref is not None and not ref.pinned:
            hint = f"; pin it as `{ref.pinned_form(digest)}`" if digest else ""
            findings.append(
                Finding(
                    "artifact/not-pinned",
                    subject,
                    f"Image `{subject}` is a tag, which can be re-pushed after it was "
                    f"verified{hint}.",
                    {"reference": subject, "resolved_digest": digest},
                )
            )
        # The command is given only for a digest that was read and verified just now: a pinned
        # reference the registry no longer serves would make a command that cannot succeed.
        if ref is not None and digest is not None and info is not None:
            section["pinned_reference"] = ref.pinned_form(digest)
            if k8s is not None:
                commands.append(kubectl_command(k8s, ref.pinned_form(digest)))
        if k8s is not None:
            section["kubernetes"] = {
                "deployment": k8s.deployment,
                "container": k8s.container,
                "namespace": k8s.namespace,
            }

    if release is not None:
        rel_findings, rel_section = inspect_release(release, role)
        findings += rel_findings
        section["release"] = rel_section
        commands.append(symlink_command(release.directory, release.current_link))

    if commands:
        section["rollback_command"] = commands[0]
    section["rollback_commands"] = commands
    if not commands:
        section["rollback_note"] = _no_command_reason(ref, k8s is not None, section)
    return ArtifactResult(tuple(sort_findings(findings)), section)


def _no_command_reason(
    ref: ImageReference | None, has_k8s: bool, section: Mapping[str, Any]
) -> str:
    if ref is not None and section.get("source") is None:
        return "the image could not be read, so no verified rollback command is given"
    if not has_k8s:
        return "no `kubernetes` target is configured; deploy `pinned_reference` by your own means"
    return "no rollback target is configured"
