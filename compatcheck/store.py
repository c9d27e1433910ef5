"""Stored snapshots: the contracts a release pipeline recorded, found by service and version.

A rollback during an incident must get its answer in seconds, so releases record their contract
ahead of time (``compatcheck snapshot ... -o <store>/<service>/<version>.snapshot.json``) and the
check compares two JSON documents instead of starting two services. The store is a directory or
an http(s) base URL laid out the same way (an object store bucket, a static file server).

Service and version names come from callers of the policy hook, so they are validated against a
strict pattern before they touch a path or a URL: no ``/``, no ``..``, no leading dot, nothing but
``[A-Za-z0-9._-]``. No name can leave the store's base.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from compatcheck.errors import InputError, NotFoundError, UnavailableError
from compatcheck.masking import mask_secrets
from compatcheck.snapshot import Snapshot, parse_snapshot

#: A service or version name: what a release tag or a Kubernetes name looks like.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SUFFIX = ".snapshot.json"
#: Snapshots of a big service are a few hundred KB; 16 MiB leaves room and still bounds memory.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0


#: No stored snapshot for this service/version (the CLI exits 2; the hook answers "not found").
NotFound = NotFoundError


def validate_name(value: object, what: str) -> str:
    """Return ``value`` if it is a safe service/version name, else raise a one-line InputError.

    ``..`` is refused even inside a name (``v1..2``) so that no later join can turn it into a
    parent reference.
    """
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value) or ".." in value:
        shown = value if isinstance(value, str) and len(value) <= 64 else "<invalid>"
        raise InputError(
            f"invalid {what} name {shown!r}: expected 1-128 characters of A-Z a-z 0-9 . _ - "
            "starting with a letter or digit, without `..`"
        )
    return value


def is_http_base(base: str) -> bool:
    return base.startswith(("http://", "https://"))


class SnapshotStore:
    """``<base>/<service>/<version>.snapshot.json`` under a directory or an http(s) base URL.

    Every read has a size cap (and, over HTTP, a timeout): a store is trusted by whoever configured
    it, but a corrupt or runaway file must not take the process down.
    """

    def __init__(
        self,
        base: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if not base:
            raise InputError("snapshot store: empty base (expected a directory or an http(s) URL)")
        self.base = base.rstrip("/") if is_http_base(base) else base
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.is_http = is_http_base(base)
        if not self.is_http and not Path(base).is_dir():
            raise InputError(f"{base}: snapshot store is not a directory")

    def __repr__(self) -> str:
        return f"SnapshotStore({mask_secrets(self.base) if self.is_http else self.base!r})"

    @staticmethod
    def relative(service: str, version: str) -> str:
        """The store-relative name, e.g. ``shop/v1.snapshot.json``; validates both names."""
        return f"{validate_name(service, 'service')}/{validate_name(version, 'version')}{SUFFIX}"

    def location(self, service: str, version: str) -> str:
        """Where the snapshot lives: a file path or a URL (credentials masked when shown)."""
        rel = self.relative(service, version)
        if self.is_http:
            return mask_secrets(f"{self.base}/{quote(rel)}")
        return str(Path(self.base) / rel)

    def read_bytes(self, service: str, version: str, *, deadline: float | None = None) -> bytes:
        """The stored document's bytes; :class:`NotFound` when absent, capped at ``max_bytes``.

        ``deadline`` (``time.monotonic()``) bounds an HTTP read as a whole: httpx's timeouts are
        per read, so a store that trickles bytes would otherwise hold the caller for as long as
        it likes.
        """
        rel = self.relative(service, version)
        if self.is_http:
            return self._fetch(rel, service, version, deadline)
        path = Path(self.base) / rel
        try:
            with path.open("rb") as fh:
                data = fh.read(self.max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(_not_found(service, version)) from None
        except IsADirectoryError:
            raise InputError(f"{rel}: is a directory, expected a snapshot file") from None
        except OSError as exc:
            raise UnavailableError(f"{rel}: cannot read: {exc.strerror}") from None
        if len(data) > self.max_bytes:
            raise InputError(f"{rel}: snapshot is over the {self.max_bytes} byte cap")
        return data

    def _fetch(self, rel: str, service: str, version: str, deadline: float | None) -> bytes:
        # Imported here: httpx takes ~0.1 s to import, and a store in a folder (the snapshot
        # gate's usual case) never needs it.
        import httpx

        from compatcheck.scrape import USER_AGENT

        url = f"{self.base}/{quote(rel)}"
        shown = mask_secrets(url)
        end = time.monotonic() + self.timeout if deadline is None else deadline
        budget = max(0.001, min(self.timeout, end - time.monotonic()))
        timeout = httpx.Timeout(budget, connect=min(budget, 5.0))
        try:
            with (
                httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT}) as client,
                client.stream("GET", url) as resp,
            ):
                if resp.status_code == 404:
                    raise NotFound(_not_found(service, version))
                if not 200 <= resp.status_code < 300:
                    raise UnavailableError(
                        f"{shown}: snapshot store answered HTTP {resp.status_code}"
                    )
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise InputError(f"{shown}: snapshot is over the {self.max_bytes} byte cap")
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise InputError(f"{shown}: snapshot is over the {self.max_bytes} byte cap")
                    if time.monotonic() > end:
                        raise UnavailableError(
                            f"{shown}: snapshot store too slow: not complete in time"
                        )
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise UnavailableError(f"{shown}: snapshot store unreachable: {reason}") from None
        return b"".join(chunks)

    def load(self, service: str, version: str) -> tuple[Snapshot, str]:
        """The snapshot and the sha256 of its bytes, from one read."""
        data = self.read_bytes(service, version)
        return self.parse(service, version, data), hashlib.sha256(data).hexdigest()

    def parse(self, service: str, version: str, data: bytes) -> Snapshot:
        """Parse bytes read by :meth:`read_bytes` (validated against the snapshot schema).

        Separate from reading so that a caller holding a cached verdict for these bytes' digest
        can skip parsing and validation altogether. A snapshot recorded without a label is
        labelled with its version name, so reports say ``v1`` rather than ``old``.
        """
        rel = self.relative(service, version)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{rel}: not UTF-8 text") from None
        snap = parse_snapshot(text, rel)
        return snap if snap.label else replace(snap, label=version)

    def get(self, service: str, version: str) -> Snapshot:
        return self.load(service, version)[0]

    def digest(self, service: str, version: str) -> str:
        """sha256 (hex) of the stored bytes: equal digests mean an equal contract."""
        return hashlib.sha256(self.read_bytes(service, version)).hexdigest()


def _not_found(service: str, version: str) -> str:
    return f"no stored snapshot for service {service!r} version {version!r}"


def resolve_version(arg: str, store: SnapshotStore | None, service: str | None) -> Snapshot | None:
    """Resolve a ``diff`` argument as a version name in ``store``; None means "not a version".

    With no store, a URL, or an argument that is not a valid name, the answer is None and the
    caller reads ``arg`` as usual (URL, exposition or snapshot file). A valid name is looked up in
    the store; if the store lacks it but ``arg`` is an existing local file, None again (so
    ``diff --snapshot-dir S --service shop v1 ./new.prom`` works). Otherwise :class:`NotFound`.
    A store without ``--service`` is a usage error: versions are per service.
    """
    if store is None or is_http_base(arg):
        return None
    if not NAME_PATTERN.fullmatch(arg) or ".." in arg:
        return None
    if not service:
        raise InputError("--snapshot-dir needs --service NAME to find versions")
    try:
        return store.get(service, arg)
    except NotFound:
        if Path(arg).is_file():
            return None
        raise
