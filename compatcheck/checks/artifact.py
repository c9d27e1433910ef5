"""Artifact identity: is the thing we roll back to exactly the release that was verified?

Reading an image (registry, OCI layout) or a release binary is I/O, and comparing build info with
the config's ``expect`` needs the config, so :mod:`compatcheck.artifact` and capture find these
and record them (the facts themselves are in the typed
:class:`~compatcheck.artifact.section.ArtifactSection`); this check is the one owner of their
kinds.
"""

from __future__ import annotations

from compatcheck.model import Finding
from compatcheck.rules import CheckContext, check

NOT_PINNED = "artifact/not-pinned"
METADATA_MISSING = "artifact/metadata-missing"
VERSION_MISMATCH = "artifact/version-mismatch"


@check(NOT_PINNED, METADATA_MISSING, VERSION_MISMATCH)
def artifact_problems(ctx: CheckContext) -> list[Finding]:
    """Nothing beyond what capture recorded (see the module docstring)."""
    return []
