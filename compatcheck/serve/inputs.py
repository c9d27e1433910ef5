"""The operator's policy and consumers as of now, for each check: read, hashed, parsed once.

A verdict depends on them as much as on the snapshots, so the hook reads them for every check and
keys its verdict cache by their digest. Two kinds of consumer source:

- files and folders: their bytes, hashed (re-read when they may have changed: :class:`_FileCache`);
- ``prometheus:URL``: the rules that Prometheus has loaded (``/api/v1/rules``), hashed as judged.
  They are read **at most once per** ``live_consumers_max_age`` **seconds** (default 10) per
  Prometheus, not on every request: a large Prometheus answers with megabytes of rules, and a
  cached verdict must stay a millisecond's work. A rule changed in Prometheus therefore reaches
  the hook's verdicts within that age; concurrent checks wait for one read, not one each. A
  Prometheus that cannot be asked when the rules are due is "cannot tell" (503 / TERMINAL),
  never a verdict judged without them or with rules older than the age.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from compatcheck.errors import CompatcheckError, InputError, InternalError, UnavailableError
from compatcheck.serve.settings import ServeSettings

if TYPE_CHECKING:
    from compatcheck.consumers import ConsumerFile, ConsumerSet, LiveRules
    from compatcheck.policy import Policy

#: A file whose size, mtime and ctime last changed longer ago than this is trusted unchanged while
#: they stay the same; a younger one is read again on every check (see :class:`_FileCache`).
_RACY_NS = 2_000_000_000
#: The clock the age of live rules is measured with (a test advances its own).
_now = time.monotonic


class _FileCache:
    """The bytes and sha256 of the operator's policy and consumer files, read again whenever they
    may have changed.

    Trap: size and mtime do not tell whether a file changed: ``os.utime`` restores an mtime, and a
    rewrite with the same length keeps the size. The ctime cannot be set from user space, so a
    signature of (device, inode, size, mtime, ctime) changes with every write. But the file
    system's clock ticks in steps (a jiffy, or coarser): two writes within one tick leave the
    signature as the first one made it. So, as git does with its index ("racy git"), a signature
    is trusted only when the last change is older than :data:`_RACY_NS`; a younger file is read
    and hashed again on every check.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[tuple[int, ...], str, bytes]] = {}

    def read(self, path: Path) -> tuple[str, bytes]:
        """``(sha256 hex, bytes)`` of ``path`` as it is now."""
        st = path.stat()
        sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        key = str(path)
        with self._lock:
            hit = self._known.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1], hit[2]
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
            with self._lock:
                self._known[key] = (sig, digest, data)
        return digest, data


class _LiveCache:
    """The rules of each ``prometheus:URL``, read again once they are ``max_age`` seconds old.

    One lock per source: while one check reads the rules, the others for the same source wait
    for that read (bounded by the client's timeout) and then use its answer, a failure included
    (else, with Prometheus down, each waiting check would wait its own timeout in turn).
    """

    def __init__(self, max_age: float, timeout: float) -> None:
        self.max_age = max_age
        self.timeout = timeout
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._known: dict[str, tuple[float, str, LiveRules]] = {}
        #: Reads of each source finished so far, and the number and error of its last failed one.
        self._reads: dict[str, int] = {}
        self._failed: dict[str, tuple[int, str]] = {}

    def read(self, spec: str) -> tuple[str, LiveRules]:
        """``(digest, rules)`` of ``spec`` no older than ``max_age`` (UnavailableError else)."""
        from compatcheck.consumers import LiveRules
        from compatcheck.consumers.live import fetch_live_rules, rules_digest

        with self._guard:
            lock = self._locks.setdefault(spec, threading.Lock())
            began = self._reads.get(spec, 0)  # reads finished before this check came
        with lock:
            failed = self._failed.get(spec)
            if failed is not None and failed[0] > began:  # the read this check waited for
                raise UnavailableError(failed[1])
            hit = self._known.get(spec)
            if hit is not None and _now() - hit[0] < self.max_age:
                return hit[1], hit[2]
            read_at = _now()
            try:
                rules = fetch_live_rules(spec, timeout=self.timeout)
            except UnavailableError as exc:  # cannot tell, for this check and those waiting
                self._failed[spec] = (self._finished(spec), str(exc))
                raise
            self._finished(spec)
            digest = rules_digest(rules)
            live = LiveRules(spec, rules)
            self._known[spec] = (read_at, digest, live)
            return digest, live

    def _finished(self, spec: str) -> int:
        """Count one more read of ``spec`` done; its number."""
        with self._guard:
            n = self._reads[spec] = self._reads.get(spec, 0) + 1
        return n


@dataclass(frozen=True)
class Inputs:
    """The policy and consumers one check is judged with, and the digest of their bytes."""

    digest: str
    policy: Policy
    consumers: ConsumerSet | None


class InputFiles:
    """Policy and consumers as of now: read (cached by :class:`_FileCache`, live rules by
    :class:`_LiveCache`), hashed, and parsed once per distinct content (kept by digest)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._files = _FileCache()
        self._live = _LiveCache(settings.live_consumers_max_age, min(10.0, settings.check_timeout))
        self._lock = threading.Lock()
        self._parsed: OrderedDict[str, Inputs] = OrderedDict()

    def current(self) -> Inputs:
        """Raise :class:`InternalError` when the operator's files are unreadable or broken, and
        :class:`UnavailableError` when a live Prometheus cannot be asked."""
        from compatcheck.consumers import list_consumer_files, read_consumer_files
        from compatcheck.consumers.live import is_live
        from compatcheck.policy import parse_policies

        h = hashlib.sha256()
        content: dict[Path, bytes] = {}
        sources: list[ConsumerFile | LiveRules] = []
        policy_files = [Path(p) for p in self.settings.policy]
        try:
            for path in policy_files:
                digest, content[path] = self._files.read(path)
                h.update(f"policy\0{path}\0{digest}\n".encode())
            for spec in self.settings.consumers:
                if is_live(spec):
                    digest, live = self._live.read(spec)
                    h.update(f"consumers\0{spec}\0{digest}\n".encode())
                    sources.append(live)
                    continue
                for f in list_consumer_files([spec]):
                    digest, content[f.path] = self._files.read(f.path)
                    h.update(f"consumers\0{f.path}\0{digest}\n".encode())
                    sources.append(f)
        except OSError as exc:
            raise InternalError(
                f"server configuration unreadable: {exc.filename}: {exc.strerror}"
            ) from None
        except UnavailableError as exc:
            raise UnavailableError(f"live consumers unavailable: {exc}") from None
        except InputError as exc:
            raise InternalError(f"server configuration unreadable: {exc}") from None
        key = h.hexdigest()
        with self._lock:
            hit = self._parsed.get(key)
        if hit is not None:
            return hit
        try:
            texts = [(str(p), content[p].decode("utf-8")) for p in policy_files]
            policy = parse_policies(texts)
        except UnicodeDecodeError:
            raise InternalError("server policy is broken: not UTF-8 text") from None
        except CompatcheckError as exc:
            raise InternalError(f"server policy is broken: {exc}") from None
        consumers = (
            read_consumer_files(sources, content.__getitem__) if self.settings.consumers else None
        )
        inputs = Inputs(key, policy, consumers)
        with self._lock:
            self._parsed[key] = inputs
            while len(self._parsed) > 4:  # an edit in progress: keep the last few versions
                self._parsed.popitem(last=False)
        return inputs


def validate_consumers(specs: tuple[str, ...]) -> None:
    """Refuse to start on consumer files that are missing or do not parse, naming the first, and
    on a ``prometheus:URL`` that is not an http(s) URL.

    Why at start-up: the hook reads these files on every check, so a typo found there would be a
    500 (missing file) or a ``consumers/parse-error`` warning in every verdict, which a caller
    cannot fix; the operator who started the hook can, and is watching when it starts. A live
    Prometheus is not asked here: one that is down for a minute must not stop the hook starting
    (its checks say "cannot tell" meanwhile).
    """
    from compatcheck.consumers.live import check_live, is_live

    for spec in specs:
        if is_live(spec):
            check_live(spec)
    paths = tuple(s for s in specs if not is_live(s))
    if not paths:
        return
    from compatcheck.consumers import load_consumers

    findings = load_consumers(paths).findings  # a missing path raises, naming it
    if not findings:
        return
    first = findings[0]
    line, reason = first.evidence.get("line"), first.evidence["error"]
    if first.consumers:  # one expression in the file does not parse
        c = first.consumers[0]
        where, problem = c.file, f"{c.type} `{c.name}`: PromQL does not parse: {reason}"
    else:  # the file itself cannot be read as a consumer
        where, problem = first.evidence["file"], f"cannot be read as a consumer: {reason}"
    more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
    raise InputError(f"{where}:{line}: {problem}{more}" if line else f"{where}: {problem}{more}")
