"""What could not be checked: a part capture could not record, or an exposition that is invalid.

A check that cannot run is itself a finding (pint's rule): a verdict resting on a scrape that
failed, or on an empty page, would otherwise be a silent "go". Both kinds here make the report
*unavailable* (:data:`UNAVAILABLE_KINDS`; the CLI exits 3, the hook answers "cannot tell yet").
"""

from __future__ import annotations

from compatcheck.masking import mask_secrets
from compatcheck.model import Finding
from compatcheck.rules import CheckContext, check, metrics_empty
from compatcheck.snapshot import Snapshot

UNAVAILABLE = "check/unavailable"
EXPOSITION_INVALID = "metrics/exposition-invalid"
#: The kinds that mean "cannot tell": the one definition the report, the CLI and the hook use.
UNAVAILABLE_KINDS = frozenset({UNAVAILABLE, EXPOSITION_INVALID})

_ROLES = ("old", "new")


def _snapshot(ctx: CheckContext, role: str) -> Snapshot:
    return ctx.old if role == "old" else ctx.new


@check(UNAVAILABLE)
def unavailable_parts(ctx: CheckContext) -> list[Finding]:
    """One finding per part a snapshot could not record, and per empty metrics capture."""
    out: list[Finding] = []
    for role in _ROLES:
        snap = _snapshot(ctx, role)
        # A snapshot written by hand may still carry a token in its source.
        source = mask_secrets(snap.source)
        for part, reason in sorted(snap.unavailable.items()):
            out.append(
                Finding(
                    UNAVAILABLE,
                    f"{role}:{part}",
                    f"{role.upper()} {part} could not be checked: {reason}",
                    {"version": role, "part": part, "reason": reason, "source": source},
                )
            )
        if metrics_empty(snap) and "metrics" not in snap.unavailable:
            reason = f"`{snap.source or snap.label or role}` exposes no metric families"
            out.append(
                Finding(
                    UNAVAILABLE,
                    f"{role}:metrics",
                    f"{role.upper()} metrics could not be checked: {reason} "
                    "(an empty exposition proves nothing).",
                    {"version": role, "part": "metrics", "reason": reason, "source": snap.source},
                )
            )
    return out


@check(EXPOSITION_INVALID)
def exposition_invalid(ctx: CheckContext) -> list[Finding]:
    """One finding per side whose exposition did not parse (its first error, all in evidence)."""
    out: list[Finding] = []
    for role in _ROLES:
        snap = _snapshot(ctx, role)
        if snap.metrics is None or not snap.metrics.errors:
            continue
        source = mask_secrets(snap.source)
        out.append(
            Finding(
                EXPOSITION_INVALID,
                role,
                f"{role.upper()} exposition `{source}` is invalid: {snap.metrics.errors[0]}",
                {"version": role, "source": source, "errors": list(snap.metrics.errors)},
            )
        )
    return out
