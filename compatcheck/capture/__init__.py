"""Capture: bring OLD and NEW up, exercise them identically, record what each exposes.

The first stage of the pipeline (capture → compare → checks → policy → report → reporters): the
only one that starts processes and talks to releases. It hands two snapshots
(:class:`compatcheck.snapshot.Snapshot`), plus the findings only capture can make, to
:func:`compatcheck.engine.evaluate` (through :meth:`CheckResult.evaluate`).

The flow of ``compatcheck check`` (:func:`run_check`, in :mod:`.run`), for OLD and NEW
concurrently in one :class:`~compatcheck.targets.Workspace`:

1. :mod:`.target`, one target's lifecycle: (scratch database migrated to the release's own head)
   → launch → ``wait_ready`` (recording time-to-ready) → ``warmup`` → scrape ``/metrics`` N times
   and merge them (:mod:`.merge`) → probe readiness and health a second time (to spot values that
   change on every call) → Alembic head and build info. ``url`` targets skip the launch;
   ``snapshot``, ``stored`` and ``exposition`` targets are read, not run (:mod:`.read`).
2. :mod:`.codeonly`, with migrations configured and OLD launched from a command: the code-only
   rollback plan tried for real (OLD's code on a scratch database at NEW's head, the same wait
   and warm-up), judged against OLD's run on its own database.
3. The migrations inspection (:func:`compatcheck.migrations.inspect_migrations`), once every
   scratch database above is migrated (one Alembic run at a time).
4. The artifact inspection of OLD, and the build identity each target is expected to report.

:func:`capture_snapshot` records one config target (``compatcheck snapshot -c``) and
:func:`snapshot_from_url` a release that already runs (:mod:`.url`).

Failures are findings, never silent passes: anything that stops a part of a target from being
captured becomes ``check/unavailable`` with the reason and the log tail. Subjects: ``old`` / ``new``
(the target as a whole: did not start, exited, never answered), ``old:/metrics`` (the scrape),
``old:database`` (scratch database or its migration), ``migrations`` (the inspection).
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
