"""What a run leaves behind if it is killed, and how the next run tells whose it is.

After SIGKILL (or a power cut) no ``finally`` runs: children, the workspace's temp folder and
scratch databases stay. So everything compatcheck creates carries its owner's mark in its name,
written atomically with its creation (no window in which it exists unmarked):

- scratch databases: ``compatcheck_[TAG_]SPACE_PID_START_RANDOM``;
- temp folders: ``compatcheck-[TAG_]SPACE_PID_START-RANDOM``;
- child processes: ``COMPATCHECK_OWNER=[TAG_]SPACE_PID_START`` in their environment (inherited by
  grandchildren, which ``PR_SET_PDEATHSIG`` does not reach).

``PID`` and ``START`` (the process's start time in clock ticks since boot, from
``/proc/PID/stat``) name the run; a pid alone is reused. ``SPACE`` names the pid space (boot id
and pid namespace): a database server is shared by machines and containers whose pids mean
other processes, and a mark from another space is never judged. A leftover is *stale* when its
owner's pid no longer runs with that start time; :func:`sweep` removes stale leftovers (the next
``check`` or ``migrations`` does it, and ``compatcheck cleanup`` on demand) and nothing else.

``COMPATCHECK_RUN_TAG`` (1-8 lowercase letters or digits) adds a tag to every mark: a CI job or a
test run can then find exactly what it created on a shared server. A tagged run sweeps only
leftovers with its own tag, so concurrent jobs on one machine never act on each other's.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from compatcheck.errors import UsageError

#: Environment variable that marks compatcheck's children (and their children).
OWNER_ENV = "COMPATCHECK_OWNER"
TAG_ENV = "COMPATCHECK_RUN_TAG"

_TAG = r"(?:(?P<tag>[a-z0-9]{1,8})_)?"
_MARK = _TAG + r"(?P<space>[0-9a-f]{8})_(?P<pid>\d+)_(?P<start>\d+)"
DATABASE_RE = re.compile(rf"^compatcheck_{_MARK}_(?P<random>[0-9a-f]{{6}})$")
TEMP_RE = re.compile(rf"^compatcheck-{_MARK}-[A-Za-z0-9_]+$")
OWNER_RE = re.compile(rf"^{_MARK}$")


@dataclass(frozen=True)
class Owner:
    """The process that created something: pid space, pid and start time (and the run tag)."""

    space: str
    pid: int
    start: int
    tag: str = ""

    @property
    def mark(self) -> str:
        return f"{self.tag + '_' if self.tag else ''}{self.space}_{self.pid}_{self.start}"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


@functools.cache
def pid_space() -> str:
    """8 hex digits naming this boot and pid namespace (the host name where there is no /proc)."""
    boot = _read("/proc/sys/kernel/random/boot_id").strip()
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    seed = f"{boot}|{namespace}" if boot else socket.gethostname()
    return hashlib.sha256(seed.encode()).hexdigest()[:8]


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when it does not run (0 where
    there is no /proc: then only the pid is compared)."""
    if not os.path.isdir("/proc"):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    # Fields after the command: state is field 3 of stat(5), starttime field 22.
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def run_tag() -> str:
    tag = os.environ.get(TAG_ENV, "")
    if tag and not re.fullmatch(r"[a-z0-9]{1,8}", tag):
        raise UsageError(f"{TAG_ENV}={tag!r}: a run tag is 1 to 8 lowercase letters or digits")
    return tag


def me() -> Owner:
    """This process as an owner (computed per call: a forked child is another owner)."""
    pid = os.getpid()
    return Owner(pid_space(), pid, start_time(pid) or 0, run_tag())


def database_name() -> str:
    """A fresh scratch database name carrying this process's mark (at most 57 characters)."""
    return f"compatcheck_{me().mark}_{secrets.token_hex(3)}"


def temp_prefix() -> str:
    """The ``mkdtemp`` prefix of this process's workspace folders."""
    return f"compatcheck-{me().mark}-"


def parse(name: str, pattern: re.Pattern[str] = DATABASE_RE) -> Owner | None:
    m = pattern.match(name)
    if m is None:
        return None
    return Owner(m["space"], int(m["pid"]), int(m["start"]), m["tag"] or "")


def is_stale(owner: Owner) -> bool:
    """True when the owner ran in this pid space and is gone (its pid is free or reused)."""
    if owner.space != pid_space():
        return False
    now = start_time(owner.pid)
    return now is None or (owner.start != 0 and now != 0 and now != owner.start)


# --- sweeping --------------------------------------------------------------------------------


@dataclass
class Sweep:
    """What a sweep removed, what it could not, and what it left because its owner runs."""

    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    alive: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    #: When set (``COMPATCHECK_RUN_TAG``), only leftovers carrying this tag are judged.
    tag: str = ""

    def add(self, kind: str, what: str) -> None:
        self.removed.append(what)
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def summary(self) -> str:
        """``2 scratch databases, 1 temp folder`` (empty when nothing was removed)."""
        plural = {"process": "processes"}
        return ", ".join(
            f"{n} {kind if n == 1 else plural.get(kind, kind + 's')}"
            for kind, n in self.counts.items()
        )

    def stale(self, owner: Owner | None) -> bool:
        """True for a leftover of a dead run; counts what a live run owns."""
        if owner is None or (self.tag and owner.tag != self.tag):
            return False
        if is_stale(owner):
            return True
        self.alive += 1
        return False


def sweep_temp(result: Sweep, *, dry_run: bool = False, folder: str | None = None) -> None:
    """Remove workspace folders of dead runs from the temp folder."""
    base = Path(folder or tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            if not result.stale(parse(entry.name, TEMP_RE)):
                continue
            if not dry_run:
                shutil.rmtree(entry, ignore_errors=True)
                if entry.exists():
                    result.failed.append(f"temp folder {entry}: could not be removed")
                    continue
            result.add("temp folder", f"temp folder {entry}")


def marked_processes() -> Iterator[tuple[int, Owner]]:
    """Live processes (this one aside) carrying an owner mark in their environment.

    Another user's processes are not readable, so never listed.
    """
    if not os.path.isdir("/proc"):
        return
    prefix = OWNER_ENV.encode() + b"="
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(prefix):
                owner = parse(item[len(prefix) :].decode(errors="replace"), OWNER_RE)
                if owner is not None and start_time(int(entry)) is not None:  # not a zombie
                    yield int(entry), owner
                break


def sweep_processes(result: Sweep, *, dry_run: bool = False) -> None:
    """Kill processes a dead run started (its children's children included: they carry the
    owner mark in their environment)."""
    victims = []
    for pid, owner in marked_processes():
        if result.stale(owner):
            command = _read(f"/proc/{pid}/cmdline").replace("\0", " ").strip()[:80]
            victims.append((pid, f"process {pid} (`{command}`) of run {owner.pid}"))
    for pid, what in victims:
        if not dry_run:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            except PermissionError:
                result.failed.append(f"{what}: not allowed to stop it")
                continue
        result.add("process", what)


def sweep_databases(result: Sweep, server_url: str, *, dry_run: bool = False) -> None:
    """Drop scratch databases of dead runs on one server (SQLite URLs have none)."""
    from compatcheck.migrations.scratch import ServerError, list_scratch, mask, server_drop

    try:
        names = list_scratch(server_url)
    except ServerError as exc:
        result.failed.append(f"{mask(server_url)}: {exc}")
        return
    for name in names:
        if not result.stale(parse(name)):
            continue
        what = f"scratch database {name} on {mask(server_url)}"
        if not dry_run:
            try:
                server_drop(server_url, name)
            except ServerError as exc:
                result.failed.append(f"{what}: {exc}")
                continue
        result.add("scratch database", what)


def sweep(servers: Iterable[str], *, dry_run: bool = False) -> Sweep:
    """Remove every stale leftover: processes first (they may hold the others open), then
    scratch databases on ``servers``, then temp folders."""
    result = Sweep(tag=run_tag())
    sweep_processes(result, dry_run=dry_run)
    for url in dict.fromkeys(servers):
        if "://" in url and not url.startswith("sqlite"):
            sweep_databases(result, url, dry_run=dry_run)
    sweep_temp(result, dry_run=dry_run)
    return result
