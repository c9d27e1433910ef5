"""Content already fetched and verified, by digest: the hook's contract lookups re-use it.

A contract is found in two steps: the *list* of what is attached to an image digest (referrers API
or tag schema), which can change whenever a contract is attached, and the *content* it names (the
contract's manifest, the snapshot blob), which cannot: it is addressed by its sha256 and verified
against it when fetched. So the hook asks the registry for the list on every lookup (a newer
contract must win at once) and fetches a manifest or a blob only when its digest is not here.
Bounded by total bytes, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

#: Default bound: four snapshots at the 16 MiB cap, or thousands of ordinary ones.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class ContentCache:
    """Verified bytes by digest; thread-safe (the hook's lookups run in worker threads)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        #: Fetches answered here / fetches that went to the registry or layout.
        self.hits = 0
        self.misses = 0

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            data = self._items.get(digest)
            if data is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(digest)
            return data

    def put(self, digest: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(digest, None)
            self._size -= len(old) if old is not None else 0
            self._items[digest] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


class CachedContent:
    """A contract backend whose ``manifest`` and ``blob`` answer from ``cache`` when they can
    (what the backend fetches is verified against its digest before it is kept); everything
    else, the referrers list first, goes to the backend every time."""

    def __init__(self, backend: Any, cache: ContentCache) -> None:
        self._backend = backend
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def manifest(self, digest: str) -> bytes:
        data = self._cache.get(digest)
        if data is None:
            data = self._backend.manifest(digest)
            self._cache.put(digest, data)
        return data

    def blob(self, digest: str, max_bytes: int) -> bytes:
        data = self._cache.get(digest)
        if data is None or len(data) > max_bytes:
            data = self._backend.blob(digest, max_bytes)
            self._cache.put(digest, data)
        return data
