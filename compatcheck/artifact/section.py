"""The report's ``artifact`` section as types: what was verified about OLD's artifact.

Everything the engine, the reporters and capture read about the artifact is an attribute of
:class:`ArtifactSection`; :meth:`ArtifactSection.to_json` writes the ``compatcheck.report/v1``
keys (the public contract pins ``reference``, ``pinned``, ``digest``, ``pinned_reference``,
``rollback_command``, ``rollback_commands`` and ``rollback_note``) and
:meth:`ArtifactSection.from_json` reads them back. The image's facts are written flat, as they
always were; the section ends with the rollback commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compatcheck.artifact.oci import ImageInfo
from compatcheck.artifact.rollback import KubernetesTarget
from compatcheck.records import Record, record_json

#: The image keys every section with an image writes (null when not known).
_IMAGE_KEYS = ("reference", "canonical", "tag", "pinned", "digest", "source")
#: The keys written once the image itself was read.
_READ_KEYS = ("media_type", "manifest_digest", "config_digest", "platform")


REVISION = "org.opencontainers.image.revision"
VERSION = "org.opencontainers.image.version"
CREATED = "org.opencontainers.image.created"
#: The OCI pre-defined annotation keys that identify a build; order is the report's order.
REQUIRED_LABELS = (REVISION, VERSION, CREATED)


def identity_labels(info: ImageInfo) -> tuple[dict[str, str], dict[str, str]]:
    """Identity values and where each came from: config label first, then annotations."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for key in REQUIRED_LABELS:
        if info.labels.get(key):
            values[key], sources[key] = info.labels[key], "label"
        elif info.annotations.get(key):
            values[key], sources[key] = info.annotations[key], "annotation"
    return values, sources


@dataclass(frozen=True)
class ImageRecord:
    """The image reference as configured, and the digest it names or resolved to."""

    reference: str | None
    canonical: str | None = None
    tag: str | None = None
    pinned: bool = False
    #: The digest named in the reference, else the one the image resolved to.
    digest: str | None = None
    #: The keys to write: all of them, unless this was read back from a section that lacked
    #: some (one written by hand or by an older compatcheck), which stay absent on the way out.
    keys: tuple[str, ...] = _IMAGE_KEYS


@dataclass(frozen=True)
class ReleaseRecord(Record):
    """A bare-metal release binary: where it is, what it hashes to, where ``current`` points."""

    path: str
    directory: str
    current_link: str
    #: Defaulted so that a record without it (by hand, or an older compatcheck) still reads.
    expected_sha256: str | None = None
    sha256: str | None = None
    executable: bool | None = None
    current_target: str | None = None
    #: Why the ``current`` link cannot be switched (a real directory in its place).
    current_link_problem: str | None = None
    #: The file's permission bits (``0755``), once it was found to be a regular file.
    mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = record_json(self)
        # These two are written only when known; the other keys always, null included.
        for key in ("current_link_problem", "mode"):
            if out[key] is None:
                del out[key]
        return out


@dataclass(frozen=True)
class ArtifactSection:
    """The report's ``artifact`` section: the image and/or release, and how to roll back."""

    image: ImageRecord | None = None
    #: The image as read (manifest, config, labels); None when it could not be read.
    contents: ImageInfo | None = None
    #: The reference pinned to the digest just verified (``reg/shop@sha256:...``).
    pinned_reference: str | None = None
    kubernetes: KubernetesTarget | None = None
    release: ReleaseRecord | None = None
    #: The exact rollback commands, for a shell; the first is *the* command.
    rollback_commands: tuple[str, ...] = ()
    #: Why no command is given, when none is.
    rollback_note: str | None = None

    @property
    def rollback_command(self) -> str | None:
        """The command a person runs (written as ``rollback_command`` for older readers)."""
        return self.rollback_commands[0] if self.rollback_commands else None

    @property
    def source(self) -> str | None:
        """Where the image was read (registry or OCI layout); None when it was not read."""
        return self.contents.source if self.contents is not None else None

    @property
    def metadata(self) -> dict[str, str | None]:
        """The OCI identity labels (revision, version, created), None for each one missing."""
        if self.contents is None:
            return {}
        values, _ = identity_labels(self.contents)
        return {k: values.get(k) for k in REQUIRED_LABELS}

    @property
    def metadata_source(self) -> dict[str, str]:
        """Where each identity value came from: ``label`` or ``annotation``."""
        return identity_labels(self.contents)[1] if self.contents is not None else {}

    @property
    def what(self) -> str:
        """What was verified, in one phrase: the reference (→ its pinned form), or the binary."""
        ref = (self.image.reference if self.image else None) or (
            self.release.path if self.release else ""
        )
        pinned = self.pinned_reference
        return (ref or "") + (f" → {pinned}" if pinned and pinned != ref else "")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.image is not None:
            i = self.image
            facts = (i.reference, i.canonical, i.tag, i.pinned, i.digest, self.source)
            out.update((k, v) for k, v in zip(_IMAGE_KEYS, facts, strict=True) if k in i.keys)
        if self.contents is not None:
            c = self.contents
            out.update({k: getattr(c, k) for k in _READ_KEYS})
            out["labels"] = dict(sorted(c.labels.items()))
            out["annotations"] = dict(sorted(c.annotations.items()))
            out["metadata"] = self.metadata
            out["metadata_source"] = self.metadata_source
        if self.pinned_reference is not None:
            out["pinned_reference"] = self.pinned_reference
        if self.kubernetes is not None:
            k = self.kubernetes
            out["kubernetes"] = {
                "deployment": k.deployment,
                "container": k.container,
                "namespace": k.namespace,
            }
        if self.release is not None:
            out["release"] = self.release.to_json()
        out["rollback_command"] = self.rollback_command
        out["rollback_commands"] = list(self.rollback_commands)
        if self.rollback_note is not None:
            out["rollback_note"] = self.rollback_note
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArtifactSection:
        image = None
        keys = tuple(k for k in _IMAGE_KEYS if k in data)
        if keys:
            image = ImageRecord(
                reference=data.get("reference"),
                canonical=data.get("canonical"),
                tag=data.get("tag"),
                pinned=bool(data.get("pinned")),
                digest=data.get("digest"),
                keys=keys,
            )
        contents = None
        if "media_type" in data:
            # The identity labels (``metadata``) are derived from the labels and annotations.
            contents = ImageInfo(
                digest=str(data.get("digest") or ""),
                media_type=data["media_type"],
                manifest_digest=data["manifest_digest"],
                config_digest=data["config_digest"],
                platform=data.get("platform"),
                labels=dict(data.get("labels") or {}),
                annotations=dict(data.get("annotations") or {}),
                source=str(data.get("source") or ""),
            )
        k8s = data.get("kubernetes")
        release = data.get("release")
        commands = data.get("rollback_commands")
        if commands is None and data.get("rollback_command"):
            commands = [data["rollback_command"]]
        return cls(
            image=image,
            contents=contents,
            pinned_reference=data.get("pinned_reference"),
            kubernetes=None if k8s is None else KubernetesTarget(**k8s),
            release=None if release is None else ReleaseRecord.from_json(release),
            rollback_commands=tuple(str(c) for c in commands or ()),
            rollback_note=data.get("rollback_note"),
        )
