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
from dataclasses import dataclass, field
from typing import Any

from compatcheck.artifact.rollback import KubernetesTarget

#: The image keys every section with an image writes (null when not known).
_IMAGE_KEYS = ("reference", "canonical", "tag", "pinned", "digest", "source")
#: The keys written once the image itself was read.
_READ_KEYS = ("media_type", "manifest_digest", "config_digest", "platform")


@dataclass(frozen=True)
class ImageRecord:
    """The image reference as configured, and what reading it gave."""

    reference: str | None
    canonical: str | None = None
    tag: str | None = None
    pinned: bool = False
    #: The digest named in the reference, else the one the image resolved to.
    digest: str | None = None
    #: Where the image was read (``registry``/``oci-layout`` and its location); None: unread.
    source: str | None = None
    #: The keys to write: all of them, unless this was read back from a section that lacked
    #: some (one written by hand or by an older compatcheck), which stay absent on the way out.
    keys: tuple[str, ...] = _IMAGE_KEYS


@dataclass(frozen=True)
class ImageContents:
    """What the image's manifest and config say (only when the image could be read)."""

    media_type: str | None
    manifest_digest: str | None
    config_digest: str | None
    platform: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: The OCI identity keys (revision, version, created) and their values, None when missing.
    metadata: Mapping[str, str | None] = field(default_factory=dict)
    #: Where each value came from: ``label`` or ``annotation``.
    metadata_source: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseRecord:
    """A bare-metal release binary: where it is, what it hashes to, where ``current`` points."""

    path: str
    directory: str
    current_link: str
    expected_sha256: str | None
    sha256: str | None = None
    executable: bool | None = None
    current_target: str | None = None
    #: Why the ``current`` link cannot be switched (a real directory in its place).
    current_link_problem: str | None = None
    #: The file's permission bits (``0755``), once it was found to be a regular file.
    mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "directory": self.directory,
            "current_link": self.current_link,
            "expected_sha256": self.expected_sha256,
            "sha256": self.sha256,
            "executable": self.executable,
            "current_target": self.current_target,
        }
        if self.current_link_problem is not None:
            out["current_link_problem"] = self.current_link_problem
        if self.mode is not None:
            out["mode"] = self.mode
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReleaseRecord:
        return cls(
            path=data["path"],
            directory=data["directory"],
            current_link=data["current_link"],
            expected_sha256=data.get("expected_sha256"),
            sha256=data.get("sha256"),
            executable=data.get("executable"),
            current_target=data.get("current_target"),
            current_link_problem=data.get("current_link_problem"),
            mode=data.get("mode"),
        )


@dataclass(frozen=True)
class ArtifactSection:
    """The report's ``artifact`` section: the image and/or release, and how to roll back."""

    image: ImageRecord | None = None
    contents: ImageContents | None = None
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
            out.update({k: getattr(self.image, k) for k in _IMAGE_KEYS if k in self.image.keys})
        if self.contents is not None:
            c = self.contents
            out.update({k: getattr(c, k) for k in _READ_KEYS})
            out["labels"] = dict(sorted(c.labels.items()))
            out["annotations"] = dict(sorted(c.annotations.items()))
            out["metadata"] = dict(c.metadata)
            out["metadata_source"] = dict(c.metadata_source)
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
                source=data.get("source"),
                keys=keys,
            )
        contents = None
        if "media_type" in data:
            contents = ImageContents(
                **{k: data.get(k) for k in _READ_KEYS},
                labels=dict(data.get("labels") or {}),
                annotations=dict(data.get("annotations") or {}),
                metadata=dict(data.get("metadata") or {}),
                metadata_source=dict(data.get("metadata_source") or {}),
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
