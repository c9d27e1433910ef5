"""The targets that are read, not run: a snapshot file, a version from the snapshot store, an
exposition file. No process starts, no port is probed; what the file says is the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from compatcheck.config import Config, ExpositionTarget, SnapshotTarget, StoredTarget
from compatcheck.errors import UsageError
from compatcheck.snapshot import Snapshot, load_snapshot
from compatcheck.sources import snapshot_from_exposition_file
from compatcheck.store import SnapshotStore

__all__ = ["read_target"]


def read_target(
    config: Config,
    t: SnapshotTarget | StoredTarget | ExpositionTarget,
    say: Callable[[str], None],
) -> Snapshot:
    """The snapshot a read-only target names; ``say`` reports progress (what was loaded)."""
    match t:
        case SnapshotTarget():
            snap = load_snapshot(t.snapshot)
            say(f"loaded snapshot {t.snapshot.name}")
            return replace(snap, label=t.label or snap.label)
        case StoredTarget():
            return _stored(config, t, say)
        case ExpositionTarget():
            snap = snapshot_from_exposition_file(
                t.exposition, label=t.label, service=config.service, build_info=config.build_info
            )
            say(f"read exposition {t.exposition.name}")
            return snap


def _stored(config: Config, t: StoredTarget, say: Callable[[str], None]) -> Snapshot:
    """The target's version from the snapshot store: a release contract recorded earlier."""
    if not config.snapshot_dir:
        raise UsageError(f"{config.path}: `{t.role}.stored` needs `snapshot_dir` or --snapshot-dir")
    store = SnapshotStore(config.snapshot_dir)
    snap = store.get(config.service, t.stored)
    say(f"loaded stored snapshot {store.location(config.service, t.stored)}")
    recorded = f" (recorded from {snap.source})" if snap.source else ""
    snap = replace(snap, source=f"stored: {config.service}/{t.stored}{recorded}")
    return replace(snap, label=t.label or snap.label)
