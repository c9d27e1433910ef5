"""Verify: whether OLD is really back after the rollback, as a real Prometheus sees it.

Every one of these is a query against the Prometheus that monitors the service (build info per
instance, ``up``, the series consumers need, the error rate, firing alerts), so the polling loop
in :mod:`compatcheck.verify` finds them and records them; this check is where they enter the
report, and the one owner of their kinds.
"""

from __future__ import annotations

from compatcheck.model import Finding
from compatcheck.rules import CheckContext, check

BUILD_MISMATCH = "verify/build-mismatch"
TARGET_DOWN = "verify/target-down"
TARGETS_DROPPED = "verify/targets-dropped"
SERIES_MISSING = "verify/series-missing"
ERROR_RATE_HIGH = "verify/error-rate-high"
ALERT_FIRING = "verify/alert-firing"


@check(BUILD_MISMATCH, TARGET_DOWN, TARGETS_DROPPED, SERIES_MISSING, ERROR_RATE_HIGH, ALERT_FIRING)
def verify_problems(ctx: CheckContext) -> list[Finding]:
    """Nothing beyond what the verification recorded (see the module docstring)."""
    return []
