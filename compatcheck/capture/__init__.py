"""Capture: bring OLD and NEW up, exercise them identically, record what each exposes.

For every target, concurrently: (scratch database migrated to the release's own head) → launch →
wait for readiness (recording time-to-ready) → the same warm-up requests → scrape ``/metrics``
N times and merge → probe readiness and health twice (to spot values that change on every call)
→ build info and Alembic head. The result is one :class:`Snapshot` per target plus the findings
only capture can make (a target that never came up, a scrape that failed, a build that is not the
one the config expects, the migrations inspection).

Failures are findings, never silent passes: anything that stops a part of a target from being
captured becomes ``check/unavailable`` with the reason and the log tail. Subjects: ``old`` / ``new``
(the target as a whole: did not start, exited, never answered), ``old:/metrics`` (the scrape),
``old:database`` (scratch database or its migration), ``migrations`` (the inspection).

With migrations configured and OLD launched from a command, a third worker tries the *code-only*
rollback plan for real: OLD's code on a scratch database at NEW's head (with SQLite, a copy of
NEW's scratch database taken right after NEW's scripts migrated it; on a server, a database of its
own migrated with NEW's scripts), the readiness wait and the same warm-up, judged against OLD's
run on its own database (:mod:`compatcheck.migrations.plans`).

Merging several scrapes (``MetricFamily.intermittent``): a family absent from some scrapes gets
``__name__``; a label key absent from some of the scrapes that had the family gets the key; a label
value seen in only some of the scrapes that had the key gets ``key=value``. Checks ignore
differences on intermittent names, keys and values: they are noise (lazily created series), not
contract.
"""

from compatcheck.capture.merge import FAMILY_INTERMITTENT, merge_schemas
from compatcheck.capture.run import CheckResult, capture_snapshot, run_check
from compatcheck.capture.url import snapshot_from_url

__all__ = [
    "FAMILY_INTERMITTENT",
    "CheckResult",
    "capture_snapshot",
    "merge_schemas",
    "run_check",
    "snapshot_from_url",
]
