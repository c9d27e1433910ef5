"""Parsed snapshots kept by the digest of their bytes, so that a check parses only what is new.

A rollout checks v3→v4, then v4→v5: the second check shares a side with the first, and parsing
a 13 MB snapshot is most of a cold verdict. Only the last pair is kept (:data:`PARSED_SNAPSHOTS`):
a parsed snapshot holds about twice its file's size, and the hook's memory must stay bounded by
the size of the snapshots it judges, not grow with every version it has seen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection

from compatcheck.snapshot import Snapshot

PARSED_SNAPSHOTS = 2


class ParsedSnapshots:
    """The last :data:`PARSED_SNAPSHOTS` snapshots parsed, by a key naming their bytes (digest)
    and how they were read (which can change the result: an unlabelled snapshot takes its
    version's name). Snapshots are immutable, so checks running at once may share one."""

    def __init__(self, size: int = PARSED_SNAPSHOTS) -> None:
        self.size = size
        #: Snapshots parsed since start-up (tests and bench/hook.py count them).
        self.parses = 0
        self._kept: OrderedDict[tuple[str, str], Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def retain(self, keys: Collection[tuple[str, str]]) -> None:
        """Forget every snapshot but those of ``keys`` (a check's two sides), before that check
        parses anything: the memory of the last pair is given back before a new pair's is
        taken, so that the peak is one pair's, not two."""
        with self._lock:
            for key in [k for k in self._kept if k not in keys]:
                del self._kept[key]

    def get(self, key: tuple[str, str], parse: Callable[[], Snapshot]) -> Snapshot:
        """The snapshot kept for ``key``, else ``parse()`` (kept if it does not raise)."""
        with self._lock:
            snap = self._kept.get(key)
            if snap is not None:
                self._kept.move_to_end(key)
                return snap
        # Outside the lock: two checks parsing two new snapshots at once run side by side.
        snap = parse()
        with self._lock:
            self.parses += 1
            self._kept[key] = snap
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return snap
