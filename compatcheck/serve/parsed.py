"""Parsed snapshots kept by the digest of their bytes, so that a check parses only what is new.

A rollout checks v3→v4, then v4→v5: the second check shares a side with the first, and parsing
a 13 MB snapshot is most of a cold verdict. Only the last pair is kept (:data:`PARSED_SNAPSHOTS`):
a parsed snapshot holds about twice its file's size, and the hook's memory must stay bounded by
the size of the snapshots it judges, not grow with every version it has seen.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import Future

from compatcheck.snapshot import Snapshot

PARSED_SNAPSHOTS = 2
#: glibc's ``M_MMAP_THRESHOLD`` parameter, and its default value (128 KiB).
_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD = -3, 128 * 1024


def give_back_big_buffers() -> bool:
    """Make glibc return a freed snapshot's bytes and text to the system; True if it was set.

    glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB): after
    the first cold verdict, a 13 MB snapshot's bytes and decoded text are carved from the heap,
    and the heap keeps that memory when they are freed, so each cold verdict left the hook
    20-30 MB larger than it needed (the benchmark's peak: 6.6x a snapshot instead of 4.6x).
    Fixing the threshold at its default keeps big blocks in their own mappings, unmapped on free
    (a page fault per 4 KiB when one is made: a millisecond for 13 MB). Nothing happens where
    the C library has no ``mallopt`` (musl, macOS) or ``MALLOC_MMAP_THRESHOLD_`` already says.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD))


class ParsedSnapshots:
    """The last :data:`PARSED_SNAPSHOTS` snapshots parsed, by a key naming their bytes (digest)
    and how they were read (which can change the result: an unlabelled snapshot takes its
    version's name). Snapshots are immutable, so checks running at once may share one."""

    def __init__(self, size: int = PARSED_SNAPSHOTS) -> None:
        self.size = size
        #: Snapshots parsed since start-up (tests and bench/hook.py count them).
        self.parses = 0
        self._kept: OrderedDict[tuple[str, str], Snapshot] = OrderedDict()
        #: Parses under way, by key: a check asking for the same bytes meanwhile waits for it.
        self._parsing: dict[tuple[str, str], Future[Snapshot]] = {}
        self._lock = threading.Lock()

    def retain(self, keys: Collection[tuple[str, str]]) -> None:
        """Forget every snapshot but those of ``keys`` (a check's two sides), before that check
        parses anything: the memory of the last pair is given back before a new pair's is
        taken, so that the peak is one pair's, not two."""
        with self._lock:
            for key in [k for k in self._kept if k not in keys]:
                del self._kept[key]

    def get(self, key: tuple[str, str], parse: Callable[[], Snapshot]) -> Snapshot:
        """The snapshot kept for ``key``, else ``parse()`` (kept if it does not raise). A check
        that asks while another parses the same bytes waits for that parse (its snapshot, or
        its error) instead of parsing a second copy beside it."""
        with self._lock:
            snap = self._kept.get(key)
            if snap is not None:
                self._kept.move_to_end(key)
                return snap
            pending = self._parsing.get(key)
            if pending is None:
                pending = self._parsing[key] = Future()
                mine = True
            else:
                mine = False
        if not mine:
            return pending.result()
        # Outside the lock: two checks parsing two new snapshots at once run side by side.
        try:
            snap = parse()
        except BaseException as exc:
            with self._lock:
                del self._parsing[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._parsing[key]
            self.parses += 1
            self._kept[key] = snap
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        pending.set_result(snap)
        return snap
