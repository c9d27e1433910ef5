"""Targets that are read, not run: a snapshot file, a stored version, an exposition file, the
contract attached to an image digest. Nothing is started, so none of the capture machinery
(processes, probes, scrapes) is involved: one function per source, each saying what it read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from compatcheck.config import (
    Config,
    ContractTarget,
    ExpositionTarget,
    SnapshotTarget,
    StoredTarget,
)
from compatcheck.errors import UsageError
from compatcheck.snapshot import Snapshot, load_snapshot
from compatcheck.sources import snapshot_from_exposition_file
from compatcheck.store import SnapshotStore

Say = Callable[[str], None]


def read_target(
    config: Config,
    t: SnapshotTarget | StoredTarget | ExpositionTarget | ContractTarget,
    say: Say,
) -> Snapshot:
    """The snapshot of a target that is read, not run (``say`` reports what was read)."""
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
        case ContractTarget():
            return _contract(config, t, say)


def _contract(config: Config, t: ContractTarget, say: Say) -> Snapshot:
    """The contract attached to the target's image digest, resolved as ``diff`` does."""
    from compatcheck.sources import load_source

    registry_config = config.registry_config
    snap = load_source(
        t.contract,
        label=t.label,
        service=config.service,
        registry_config=str(registry_config) if registry_config is not None else None,
    )
    say(f"loaded contract {snap.source}")
    return snap


def _stored(config: Config, t: StoredTarget, say: Say) -> Snapshot:
    """The target's version from the snapshot store: a release contract recorded earlier."""
    if not config.snapshot_dir:
        raise UsageError(f"{config.path}: `{t.role}.stored` needs `snapshot_dir` or --snapshot-dir")
    store = SnapshotStore(config.snapshot_dir)
    snap = store.get(config.service, t.stored)
    say(f"loaded stored snapshot {store.location(config.service, t.stored)}")
    recorded = f" (recorded from {snap.source})" if snap.source else ""
    snap = replace(snap, source=f"stored: {config.service}/{t.stored}{recorded}")
    return replace(snap, label=t.label or snap.label)
