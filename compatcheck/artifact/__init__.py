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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compatcheck.artifact.oci import ArtifactUnavailable, ImageInfo, read_layout
from compatcheck.artifact.reference import ImageReference, parse_reference
from compatcheck.artifact.registry import read_registry
from compatcheck.artifact.release import ReleaseSpec, inspect_release, parse_release
from compatcheck.artifact.rollback import (
    KubernetesTarget,
    kubectl_command,
    parse_kubernetes,
    symlink_command,
)
from compatcheck.artifact.section import (
    REQUIRED_LABELS,
    REVISION,
    VERSION,
    ArtifactSection,
    ImageRecord,
    identity_labels,
)
from compatcheck.checks.artifact import METADATA_MISSING, NOT_PINNED, VERSION_MISMATCH
from compatcheck.checks.availability import UNAVAILABLE
from compatcheck.errors import UsageError
from compatcheck.model import Finding, sort_findings

__all__ = [
    "REQUIRED_LABELS",
    "ArtifactResult",
    "ArtifactSection",
    "ImageReference",
    "inspect_artifact",
    "parse_reference",
]

SPEC_KEYS = ("image", "oci_layout", "registry", "release", "kubernetes")
#: A short git sha is accepted as the same revision as the full one from this many hex digits.
_SHORT_SHA = 7


@dataclass(frozen=True)
class ArtifactResult:
    """Findings plus the report's ``artifact`` section (reference, digest, labels, rollback...)."""

    findings: tuple[Finding, ...]
    section: ArtifactSection


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


def _check_image(
    ref: ImageReference | None,
    subject: str,
    info: ImageInfo,
    build: Mapping[str, str],
) -> list[Finding]:
    findings: list[Finding] = []
    values, _ = identity_labels(info)
    missing = [k for k in REQUIRED_LABELS if k not in values]
    if missing:
        names = ", ".join(f"`{k}`" for k in missing)
        findings.append(
            Finding(
                METADATA_MISSING,
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
                VERSION_MISMATCH,
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


@dataclass(frozen=True)
class _Spec:
    """The artifact spec, validated."""

    ref: ImageReference | None
    layout: str | None
    registry: str | None
    k8s: KubernetesTarget | None
    release: ReleaseSpec | None


def _parse_spec(spec: Mapping[str, Any]) -> _Spec:
    """Validate the config's ``artifact`` mapping; raise :class:`UsageError` naming the problem."""
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
    return _Spec(ref, layout, registry, k8s, release)


@dataclass(frozen=True)
class _ImageOutcome:
    findings: list[Finding]
    image: ImageRecord
    contents: ImageInfo | None
    pinned_reference: str | None
    command: str | None


def _read_image(
    spec: _Spec, role: str, timeout: float, insecure: bool
) -> tuple[ImageInfo | None, list[Finding]]:
    """The image's manifest and config, or the ``check/unavailable`` saying why not."""
    ref, layout = spec.ref, spec.layout
    try:
        if layout is not None:
            return read_layout(Path(layout), ref), []
        assert ref is not None
        return read_registry(ref, registry=spec.registry, timeout=timeout, insecure=insecure), []
    except ArtifactUnavailable as exc:
        subject = ref.written if ref is not None else str(layout)
        reason = str(exc)
        unavailable = Finding(
            UNAVAILABLE,
            f"{role}:artifact",
            f"Image `{subject}` could not be inspected: {reason}.",
            {"reason": reason, "reference": subject},
        )
        return None, [unavailable]


def _inspect_image(
    spec: _Spec, build: Mapping[str, str], role: str, timeout: float, insecure: bool
) -> _ImageOutcome:
    """Read the image, check its identity and pinning, and make its rollback command."""
    ref = spec.ref
    subject = ref.written if ref is not None else str(spec.layout)
    info, findings = _read_image(spec, role, timeout, insecure)
    digest = ref.digest if ref and ref.digest else None
    if info is not None:
        digest = digest or info.digest
        findings += _check_image(ref, subject, info, build)
    if ref is not None and not ref.pinned:
        hint = f"; pin it as `{ref.pinned_form(digest)}`" if digest else ""
        findings.append(
            Finding(
                NOT_PINNED,
                subject,
                f"Image `{subject}` is a tag, which can be re-pushed after it was verified{hint}.",
                {"reference": subject, "resolved_digest": digest},
            )
        )
    image = ImageRecord(
        reference=ref.written if ref else None,
        canonical=ref.canonical if ref else None,
        tag=ref.tag if ref else None,
        pinned=ref.pinned if ref else False,
        digest=digest,
    )
    # The command is given only for a digest that was read and verified just now: a pinned
    # reference the registry no longer serves would make a command that cannot succeed.
    pinned = command = None
    if ref is not None and digest is not None and info is not None:
        pinned = ref.pinned_form(digest)
        if spec.k8s is not None:
            command = kubectl_command(spec.k8s, pinned)
    return _ImageOutcome(findings, image, info, pinned, command)


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
    parsed = _parse_spec(spec)
    findings: list[Finding] = []
    commands: list[str] = []
    section = ArtifactSection()
    if parsed.ref is not None or parsed.layout is not None:
        img = _inspect_image(parsed, build or {}, role, timeout, insecure)
        findings += img.findings
        commands += [img.command] if img.command is not None else []
        section = replace(
            section,
            image=img.image,
            contents=img.contents,
            pinned_reference=img.pinned_reference,
            kubernetes=parsed.k8s,
        )
    if parsed.release is not None:
        rel_findings, record = inspect_release(parsed.release, role)
        findings += rel_findings
        section = replace(section, release=record)
        commands.append(symlink_command(parsed.release.directory, parsed.release.current_link))
    note = None if commands else _no_command_reason(parsed, section)
    section = replace(section, rollback_commands=tuple(commands), rollback_note=note)
    return ArtifactResult(tuple(sort_findings(findings)), section)


def _no_command_reason(spec: _Spec, section: ArtifactSection) -> str:
    if spec.ref is not None and section.source is None:
        return "the image could not be read, so no verified rollback command is given"
    if spec.k8s is None:
        return "no `kubernetes` target is configured; deploy `pinned_reference` by your own means"
    return "no rollback target is configured"
