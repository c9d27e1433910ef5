"""Checks: the rule registry's functions, each turning one :class:`~compatcheck.rules.CheckContext`
into findings of the kinds it owns (no severity, no I/O).

Where it sits: capture → compare → **checks** → policy → report → reporters. Importing this package
registers every check (one module per area); :data:`REGISTRY` is what the engine runs, and what
the catalogue test, ``compatcheck rules``/``explain`` and the README table are checked against.
"""

from __future__ import annotations

from collections.abc import Mapping

from compatcheck.catalogue import Rule, load_catalogue

# Imported for their registration (the engine sorts the findings, so their order is free).
from compatcheck.checks import (
    artifact,
    availability,
    consumers,
    metrics,
    migrations,
    readiness,
    verify,
)
from compatcheck.errors import UsageError
from compatcheck.rules import Check, registered

#: Every check by name, in registration order.
REGISTRY: Mapping[str, Check] = registered()


def registered_kinds() -> dict[str, str]:
    """Every finding kind the code can emit, mapped to the name of the one check that owns it."""
    return {kind: name for name, c in REGISTRY.items() for kind in c.kinds}


def catalogued_rules() -> dict[str, Rule]:
    """The catalogue entry of every registered kind, in the catalogue's order.

    What ``compatcheck rules``, ``explain`` and the README table show: a kind the code emits is
    documented, and a documented kind is one the code emits (the catalogue test holds both).
    """
    catalogue = load_catalogue()
    kinds = registered_kinds()
    undocumented = sorted(kinds.keys() - catalogue.keys())
    if undocumented:
        raise UsageError(f"finding kind {undocumented[0]} has no entry in rules/default.yaml")
    return {kind: rule for kind, rule in catalogue.items() if kind in kinds}


__all__ = [
    "REGISTRY",
    "artifact",
    "availability",
    "catalogued_rules",
    "consumers",
    "metrics",
    "migrations",
    "readiness",
    "registered_kinds",
    "verify",
]
