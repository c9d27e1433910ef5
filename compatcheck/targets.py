"""Launching releases: free ports, process groups, logs, scratch databases, and teardown.

The non-negotiable rule (``docs/README.md``, "Guarantees"): everything compatcheck starts is gone
when it exits, on success, failure, timeout, Ctrl-C or SIGTERM. A :class:`Workspace` owns every
resource a run creates (temp dir, child process groups, scratch databases) and releases them in one
idempotent :meth:`Workspace.close`, reached from ``__exit__`` on every path:

* each child runs in its own session (``start_new_session=True``), so its whole process group,
  grandchildren included, is signalled with ``killpg``: SIGTERM, a grace period, then SIGKILL;
* SIGINT raises ``KeyboardInterrupt`` (Python's default) and SIGTERM is turned into
  :class:`~compatcheck.interrupts.Terminated` while a workspace is open (the one strategy of
  :mod:`compatcheck.interrupts`), so both unwind through ``__exit__``; a second signal during
  teardown is ignored rather than allowed to abort it;
* ``atexit`` is a last resort for paths that skip ``__exit__``.

Workers run in threads (OLD and NEW concurrently); after close starts, launching, creating a
database and starting a worker are refused, so a worker that was mid-way cannot start something
nobody will stop. Against SIGKILL, where none of this runs: children get ``PR_SET_PDEATHSIG`` (they
die with compatcheck, on Linux) and the owner mark of :mod:`compatcheck.leftovers` (temp dir name,
database names, ``COMPATCHECK_OWNER`` in the children's environment), by which the next run
removes what a dead one left.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from compatcheck import leftovers
from compatcheck.errors import UnavailableError
from compatcheck.interrupts import default_signals_in_child, shielded, sigterm_as_interrupt

if TYPE_CHECKING:
    # Only annotations: compatcheck.config pulls the artifact client (httpx, ~0.15 s), and
    # ``compatcheck migrations --python`` imports this module to start its helper before that.
    from compatcheck.config import CommandTarget
    from compatcheck.migrations.scratch import ScratchDatabase


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel picks it; never hard-coded)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class RunningTarget:
    """One launched release: its process (a group leader), where it listens, and its log."""

    role: str
    label: str
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    argv: tuple[str, ...]
    started: float = field(default_factory=time.monotonic)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def exit_code(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 20, max_bytes: int = 8192) -> str:
        """The last lines of the child's stdout+stderr, for the finding's evidence."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - max_bytes))
                data = fh.read()
        except OSError:
            return ""
        text = data.decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_groups(processes: list[subprocess.Popen[Any]], grace: float) -> None:
    """SIGTERM every group at once, wait up to ``grace`` in total, SIGKILL whatever remains.

    Trap: a leader that exits still leaves a zombie in its group until reaped, and a
    grandchild may outlive the leader; so reap with ``poll()`` and test the *group* with
    ``killpg(pgid, 0)``, not the leader's pid. Nothing notifies that a process group has emptied
    (a pidfd covers one process, and the grandchildren are not ours to wait for): the leaders'
    exits are waited for on their pidfds (woken by the exit itself, not a poll interval), and
    only a group that outlives its leader is polled, every 20 ms and only during teardown.
    """
    pgids = [p.pid for p in processes]
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    _await_leaders(processes, deadline)
    while True:
        for p in processes:
            p.poll()
        alive = [g for g in pgids if _group_alive(g)]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    for pgid in alive:
        _signal_group(pgid, signal.SIGKILL)
    for p in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)
    kill_deadline = time.monotonic() + 5
    while any(_group_alive(g) for g in alive) and time.monotonic() < kill_deadline:
        time.sleep(0.01)


def _await_leaders(processes: list[subprocess.Popen[Any]], deadline: float) -> None:
    """Block until every leader has exited (not reaped: ``poll()`` does that) or ``deadline``.

    Each leader's pidfd becomes readable when it exits, so a release that dies at once on
    SIGTERM is seen to within a millisecond. Without pidfds (not Linux >= 5.3) it returns at
    once and :func:`stop_groups` polls. An unreaped leader keeps its pid, so it names no other.
    """
    poller = select.poll()
    fds: list[int] = []
    try:
        for p in processes:
            if p.returncode is None:
                try:
                    fds.append(os.pidfd_open(p.pid))
                except (AttributeError, OSError):  # no pidfds here, or already reaped
                    continue
                poller.register(fds[-1], select.POLLIN)
        waiting = len(fds)
        while waiting and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                waiting -= 1
    finally:
        for fd in fds:
            os.close(fd)


class Workspace:
    """Owns a run's temp dir, child process groups, scratch databases and worker threads.

    Order matters on close, and one lock orders it: once closed, nothing new may be created
    (launching, creating a database, starting a job are refused); a database creation already in
    flight is waited for, so its drop (recorded before ``CREATE DATABASE``) finds it. The thread
    that closes (the main thread, on every path) runs every drop itself.
    """

    def __init__(
        self,
        *,
        grace: float = 5.0,
        handle_signals: bool = True,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.grace = grace
        self.handle_signals = handle_signals
        self.dir: Path | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._closing = threading.Event()
        self._creating = 0
        #: Launches between their check that the workspace is open and their process's record.
        self._launching = 0
        #: Set once close() has taken the processes to stop (a launch later stops its own).
        self._stopping = False
        self._processes: list[subprocess.Popen[bytes]] = []
        self._droppers: list[Callable[[], None]] = []
        self._jobs: list[threading.Event] = []
        self._signals = contextlib.ExitStack()
        self._warn = warn or _warn

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Workspace:
        self.dir = Path(tempfile.mkdtemp(prefix=leftovers.temp_prefix()))
        atexit.register(self.close)
        if self.handle_signals:
            # Unwind like Ctrl-C does, so every ``with`` on the stack releases what it holds.
            self._signals.enter_context(sigterm_as_interrupt())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process group, let the workers end, drop every scratch database, remove
        the temp dir. Idempotent; a second Ctrl-C meanwhile is ignored, not obeyed half-way."""
        try:
            with shielded():
                self._close()
        finally:
            self._signals.close()
            with contextlib.suppress(Exception):
                atexit.unregister(self.close)

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            # A launch in flight records its process (Popen has returned) and is stopped too.
            self._changed.wait_for(lambda: not self._launching, timeout=LAUNCH_WAIT)
            self._stopping = True  # a launch still in flight stops its own process
            processes = list(self._processes)
            jobs = list(self._jobs)
        stop_groups(processes, self.grace)
        _wait_all(jobs, self.grace)
        with self._lock:
            # A creation in flight finishes (its statement has a timeout) and is then dropped.
            self._changed.wait_for(lambda: not self._creating, timeout=CREATE_WAIT)
            droppers = list(self._droppers)
        for drop in reversed(droppers):
            try:
                drop()
            except Exception as exc:  # one failed drop must not stop the others
                self._warn(f"cleanup failed: {exc}")
        self._remove_dir()

    def _remove_dir(self) -> None:
        """Remove the temp dir; again if a worker wrote into it meanwhile.

        Trap: a file created while ``rmtree`` runs makes its final ``rmdir`` fail, and
        ``ignore_errors`` hides it.
        """
        if self.dir is None:
            return
        for _ in range(5):
            shutil.rmtree(self.dir, ignore_errors=True)
            if not self.dir.exists():
                return
            time.sleep(0.05)
        self._warn(f"could not remove the temp folder {self.dir}")

    def closing(self) -> bool:
        """True once :meth:`close` began: workers stop where they are (see ``Cancelled``)."""
        return self._closing.is_set()

    def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` in a worker, or less when :meth:`close` begins; True if it did.

        A worker that waits between two polls of a release waits on this, not ``time.sleep``,
        so that closing the run does not wait for the worker's poll interval or timeout.
        """
        return self._closing.wait(seconds)

    def _register(self, kind: str) -> Path:
        if self._closed:
            raise UnavailableError(f"cannot {kind}: the run is shutting down")
        assert self.dir is not None, "Workspace used outside its with-block"
        return self.dir

    # -- worker threads -------------------------------------------------------------------

    def run_jobs(self, jobs: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
        """Run jobs in daemon threads; re-raise the first exception in the caller's thread.

        Trap: completion is an event each thread sets as its last act, never
        ``Thread.is_alive()``: after a ``join()`` interrupted by Ctrl-C, CPython 3.11 can mark a
        thread stopped while it still runs (``_wait_for_tstate_lock`` releases a lock it does
        not hold). The wait on each event blocks without a timeout: on POSIX a signal interrupts
        a blocking lock acquire in the main thread and its handler runs there (Python >= 3.2),
        so Ctrl-C/SIGTERM (as ``KeyboardInterrupt``/``Terminated``) end it at once, and
        :meth:`close` then stops the processes the workers talk to and waits for them.
        ``tests/test_interrupts.py`` and ``tests/test_reliability.py`` signal a run in the middle
        of this wait.
        """
        results: dict[str, Any] = {}
        errors: list[BaseException] = []

        def wrap(name: str, job: Callable[[], Any], done: threading.Event) -> None:
            try:
                results[name] = job()
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        events: list[threading.Event] = []
        for name, job in jobs.items():
            done = threading.Event()
            with self._lock:
                self._register("start a worker")
                self._jobs.append(done)
            thread = threading.Thread(
                target=wrap, args=(name, job, done), name=f"compatcheck-{name}", daemon=True
            )
            thread.start()
            events.append(done)
        for done in events:
            done.wait()
        if errors:
            raise errors[0]
        return results

    # -- databases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def creating(self, cleanup: Callable[[], None]) -> Iterator[None]:
        """Record ``cleanup`` and hold :meth:`close` back while the block creates the thing.

        Refused (:class:`UnavailableError`) once the workspace is closing: a worker that was
        mid-way must not create a database nobody will drop.
        """
        with self._lock:
            self._register("create a database")
            self._droppers.append(cleanup)
            self._creating += 1
        try:
            yield
        finally:
            with self._lock:
                self._creating -= 1
                self._changed.notify_all()

    def scratch_database(self, role: str, database: str = "sqlite") -> ScratchDatabase:
        """A fresh empty database for one target, dropped when the workspace closes; made by
        the one scratch-database module (``release_database``)."""
        # Imported here: the scratch module loads SQLAlchemy (~0.2 s), which a run without
        # databases never needs.
        from compatcheck.migrations.scratch import release_database

        return release_database(self, role, database)

    # -- processes ------------------------------------------------------------------------

    def launch(
        self,
        target: CommandTarget,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        database_url: str = "",
        name: str | None = None,
    ) -> RunningTarget:
        """Start a ``command`` target in its own session, output to a log in the temp dir.

        ``name`` names the log (default: the role), so a second process of one release (OLD's
        code on NEW's schema) does not write into the first one's log.
        """
        port = port or free_port(host)
        values = {
            "port": str(port),
            "host": host,
            "database_url": database_url,
            "python": sys.executable,
        }
        argv = tuple(_fill(a, values) for a in target.command)
        env = dict(os.environ)
        env.update({k: _fill(v, values) for k, v in target.env.items()})
        env.setdefault("PORT", str(port))
        env.setdefault("PYTHONUNBUFFERED", "1")
        env[leftovers.OWNER_ENV] = leftovers.me().mark
        preexec = _child_setup()

        def start() -> tuple[subprocess.Popen[bytes], Path]:
            # In a spawner thread: counted as in flight from the check that the workspace is
            # open until the process is recorded, so a close() that comes meanwhile waits for it
            # and then stops it. Not under the lock: OLD, NEW and the trial launch side by side.
            with self._lock:
                base = self._register("start a process")
                self._launching += 1
            try:
                log_path = base / f"{name or target.role}.log"
                with log_path.open("wb") as log:
                    try:
                        process = subprocess.Popen(
                            argv,
                            cwd=target.cwd,
                            env=env,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                            preexec_fn=preexec,
                        )
                    except OSError as exc:
                        raise UnavailableError(
                            f"cannot start `{argv[0]}`: {exc.strerror or exc}"
                        ) from None
                with self._lock:
                    late = self._stopping
                    if not late:
                        self._processes.append(process)
                if late:  # close() gave up waiting and stopped the others: stop this one here
                    stop_groups([process], self.grace)
                    raise UnavailableError("cannot start a process: the run is shutting down")
                return process, log_path
            finally:
                with self._lock:
                    self._launching -= 1
                    self._changed.notify_all()

        process, log_path = _SPAWNER.run(start)
        return RunningTarget(target.role, target.label, process, host, port, log_path, argv)

    def stop(self, running: RunningTarget) -> None:
        """Stop one process group before the run ends (its job is done; free the CPU).

        Trap: the group is forgotten only once its leader is reaped, never before: a pgid that
        stays listed after the group is gone could be reused by an unrelated process group and
        be signalled by :meth:`close`.
        """
        with self._lock:
            if running.process not in self._processes:
                return
        stop_groups([running.process], self.grace)
        with self._lock:
            if running.process.poll() is not None and not _group_alive(running.process.pid):
                self._processes.remove(running.process)


def spawn(argv: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """Start a helper child the way every child is started: its own session (stop it with
    :func:`stop_groups`), dying with compatcheck, owner-marked, forked from the spawner thread.
    For children a run talks to (the ``--python`` Alembic helper) rather than launches."""
    preexec = _child_setup()
    env = dict(popen.pop("env", None) or os.environ)
    env[leftovers.OWNER_ENV] = leftovers.me().mark

    def start() -> subprocess.Popen[Any]:
        return subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=preexec, **popen)

    return _SPAWNER.run(start)


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders; other braces (JSON in an env value) stay as they are."""
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    return out


_T = TypeVar("_T")
#: Seconds close() waits for a ``CREATE DATABASE`` in flight (its own timeout, plus a margin).
CREATE_WAIT = 45.0
#: Seconds close() waits for a launch in flight to record its process (a fork and an exec).
LAUNCH_WAIT = 10.0


def _warn(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"compatcheck: warning: {message}\n")


def _wait_all(events: list[threading.Event], timeout: float) -> None:
    """Wait until every event is set, ``timeout`` seconds at most in all."""
    deadline = time.monotonic() + timeout
    for done in events:
        done.wait(max(0.0, deadline - time.monotonic()))


class _Spawner:
    """Forks every child from threads that live as long as the process.

    Trap: ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, not the
    process; forked from a capture worker, OLD would be killed the moment its capture returned.
    Trap: one such thread queues the launches, and a launch waits for its child's ``exec`` (the
    ``preexec_fn`` runs first): on a busy machine NEW's launch then waits tens of milliseconds
    for OLD's and the code-only trial's. So there are as many threads as launches at once
    (OLD, NEW and the trial start together: three), each one idle until the next.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        #: Threads waiting for a job and not yet promised one.
        self._idle = 0

    def run(self, fn: Callable[[], _T]) -> _T:
        future: Future[_T] = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1  # that thread takes this job (or another one the same)
            else:
                name = "compatcheck-spawner"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
        self._queue.put((fn, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            fn, future = self._queue.get()
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
            with self._lock:
                self._idle += 1


_SPAWNER = _Spawner()
PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux (None elsewhere), bound before any fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl  # type: ignore[no-any-return]


def _child_setup() -> Callable[[], None]:
    """The ``preexec_fn`` of every child: default SIGINT/SIGTERM, and death with compatcheck.

    Trap: it runs between ``fork`` and ``exec`` with other threads' locks possibly held, so it
    only calls what was bound beforehand (no import, no allocation-heavy work).
    """
    parent = os.getpid()
    prctl = _prctl()
    reset = default_signals_in_child()
    kill = signal.SIGKILL

    def setup() -> None:
        reset()
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, kill, 0, 0, 0)
            if os.getppid() != parent:  # compatcheck died before the line above took effect
                os.kill(os.getpid(), kill)

    return setup
