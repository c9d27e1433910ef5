"""Bare-metal releases: a binary under a versioned release directory, identified by its sha256.

The layout this supports is the common one: ``/opt/app/releases/<version>/app`` with
``/opt/app/current`` a symlink to the live release directory. Rolling back is switching that
symlink, so before proposing it we check that the target binary is really the release it claims
to be:

* the file is missing → ``check/unavailable`` (nothing to verify; the rollback cannot happen);
* it is not a regular file, or no execute bit is set → ``artifact/version-mismatch`` (it exists
  but is not a runnable release; ``reason`` says which);
* its sha256 differs from the recorded one → ``artifact/version-mismatch`` (``digest-mismatch``:
  someone rebuilt or replaced it in place);
* no ``sha256`` is recorded → ``artifact/not-pinned`` (nothing ties the path to what was verified).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from compatcheck.artifact.section import ReleaseRecord
from compatcheck.checks.artifact import NOT_PINNED, VERSION_MISMATCH
from compatcheck.checks.availability import UNAVAILABLE
from compatcheck.errors import UsageError
from compatcheck.model import Finding

_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")


@dataclass(frozen=True)
class ReleaseSpec:
    """``release: {path, sha256, current_link?}`` validated."""

    path: Path
    sha256: str | None
    current_link: Path

    @property
    def directory(self) -> Path:
        """The release directory the ``current`` symlink must point at (the binary's parent)."""
        return self.path.parent


def parse_release(data: object) -> ReleaseSpec:
    """Validate the ``release`` mapping; raise :class:`UsageError` naming the bad key."""
    if not isinstance(data, Mapping):
        raise UsageError("artifact `release` must be a mapping with `path` and `sha256`")
    unknown = sorted(set(data) - {"path", "sha256", "current_link"})
    if unknown:
        raise UsageError(f"artifact `release` has unknown key `{unknown[0]}`")
    raw_path = data.get("path")
    if not isinstance(raw_path, str) or not raw_path:
        raise UsageError("artifact `release.path` must be the path of the release's binary")
    path = Path(raw_path)
    if not path.is_absolute():
        # A relative path would be resolved against wherever compatcheck happens to run, and the
        # rollback command would then switch the symlink to the wrong place.
        raise UsageError(f"artifact `release.path` `{raw_path}` must be absolute")
    digest: str | None = None
    raw_digest = data.get("sha256")
    if raw_digest is not None:
        m = _SHA256.fullmatch(str(raw_digest)) if isinstance(raw_digest, str) else None
        if m is None:
            raise UsageError(f"artifact `release.sha256` `{raw_digest}` is not a sha256 hex digest")
        digest = m.group(1).lower()
    raw_link = data.get("current_link")
    if raw_link is None:
        # /opt/app/releases/v1.2.0/app → /opt/app/current. Only guessed for that convention: a
        # wrong guess would make the rollback command repoint some other symlink.
        if path.parent.parent.name != "releases":
            raise UsageError(
                f"artifact `release.current_link` is required: `{raw_path}` is not laid out "
                "as `<base>/releases/<version>/<binary>`"
            )
        link = path.parent.parent.parent / "current"
    elif isinstance(raw_link, str) and Path(raw_link).is_absolute():
        link = Path(raw_link)
    else:
        raise UsageError("artifact `release.current_link` must be an absolute path")
    return ReleaseSpec(path=path, sha256=digest, current_link=link)


def file_sha256(path: Path) -> str:
    """Stream-hash a file (release binaries run to hundreds of MiB; never read them whole)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _current_link(spec: ReleaseSpec) -> tuple[str | None, str | None]:
    """Where the ``current`` symlink points now, and why it cannot be switched (if it cannot)."""
    if spec.current_link.is_symlink():
        return os.readlink(spec.current_link), None
    if spec.current_link.exists():
        # rename(2) cannot replace a real directory with a symlink: `mv -T` would fail half-way
        # through an incident. Say so now.
        return None, (
            f"`{spec.current_link}` is a real directory or file, not a symlink; the switch "
            "command cannot replace it"
        )
    return None, None


def inspect_release(spec: ReleaseSpec, role: str) -> tuple[list[Finding], ReleaseRecord]:
    """Findings and the report section for one release binary."""
    subject = str(spec.path)
    target, problem = _current_link(spec)
    record = ReleaseRecord(
        path=subject,
        directory=str(spec.directory),
        current_link=str(spec.current_link),
        expected_sha256=spec.sha256,
        current_target=target,
        current_link_problem=problem,
    )
    findings: list[Finding] = []
    if problem is not None:
        findings.append(_unavailable(role, problem, subject))
    if spec.sha256 is None:
        findings.append(
            Finding(
                NOT_PINNED,
                subject,
                f"Release `{subject}` has no recorded `sha256`, so nothing ties it to the "
                "build that was verified.",
                {"path": subject},
            )
        )
    more, record = _check_binary(spec, role, record)
    return findings + more, record


def _check_binary(
    spec: ReleaseSpec, role: str, record: ReleaseRecord
) -> tuple[list[Finding], ReleaseRecord]:
    """Whether the binary is a regular, executable file with the recorded sha256."""
    subject = record.path
    try:
        st = spec.path.stat()  # follows symlinks: a release may link its binary
    except FileNotFoundError:
        return [_unavailable(role, f"Release binary `{subject}` does not exist", subject)], record
    except OSError as exc:
        return [_unreadable(role, subject, exc)], record
    if not stat.S_ISREG(st.st_mode):
        message = f"Release `{subject}` is not a regular file, so it is not the release binary."
        evidence = {"path": subject, "reason": "not-a-file"}
        return [Finding(VERSION_MISMATCH, subject, message, evidence)], record
    findings: list[Finding] = []
    # The service usually runs as another user than the checker, so the mode bits are the
    # question, not os.access() for whoever runs compatcheck (root would pass any x bit).
    executable = bool(st.st_mode & 0o111)
    mode = f"{stat.S_IMODE(st.st_mode):04o}"
    record = replace(record, executable=executable, mode=mode)
    if not executable:
        message = f"Release `{subject}` is not executable (mode `{mode}`)."
        evidence = {"path": subject, "reason": "not-executable", "mode": mode}
        findings.append(Finding(VERSION_MISMATCH, subject, message, evidence))
    try:
        actual = file_sha256(spec.path)
    except OSError as exc:
        return [*findings, _unreadable(role, subject, exc)], record
    record = replace(record, sha256=actual)
    if spec.sha256 is not None and actual != spec.sha256:
        findings.append(
            Finding(
                VERSION_MISMATCH,
                subject,
                f"Release `{subject}` has sha256 `{actual}`, not the recorded `{spec.sha256}`.",
                {
                    "path": subject,
                    "reason": "digest-mismatch",
                    "expected": spec.sha256,
                    "actual": actual,
                },
            )
        )
    return findings, record


def _unreadable(role: str, subject: str, exc: OSError) -> Finding:
    reason = exc.strerror or exc.__class__.__name__
    return _unavailable(role, f"Release binary `{subject}` is unreadable: {reason}", subject)


def _unavailable(role: str, sentence: str, path: str) -> Finding:
    return Finding(
        UNAVAILABLE, f"{role}:artifact", f"{sentence}.", {"reason": sentence, "path": path}
    )
