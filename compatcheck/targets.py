"""Launching releases: free ports, process groups, logs, scratch databases, and teardown.

The non-negotiable rule (DESIGN.md, "Processes"): everything compatcheck starts is gone when it
exits, on success, failure, timeout, Ctrl-C or SIGTERM. A :class:`Workspace` owns every resource a
run creates (temp dir, child process groups, scratch databases) and releases them in one
idempotent :meth:`Workspace.close`, reached from ``__exit__`` on every path:

* each child runs in its own session (``start_new_session=True``), so its whole process group,
  grandchildren included, is signalled with ``killpg``: SIGTERM, a grace period, then SIGKILL;
* SIGINT raises ``KeyboardInterrupt`` (Python's default) and SIGTERM is turned into
  ``SystemExit(143)`` while a workspace is open, so both unwind through ``__exit__``; a second
  signal during teardown is ignored rather than allowed to abort it;
* ``atexit`` is a last resort for paths that skip ``__exit__``.

Workers run in threads (OLD and NEW concurrently); after close starts, launching is refused so a
worker that was mid-way cannot start a process nobody will stop.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from compatcheck.config import TargetConfig
from compatcheck.errors import UnavailableError
from compatcheck.masking import mask_secrets

#: Alembic's ``context`` module is a process-wide proxy installed while ``env.py`` runs, so two
#: upgrades in two threads would trample each other. Every in-process Alembic run takes this lock.
ALEMBIC_LOCK = threading.RLock()


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


@dataclass(frozen=True)
class ScratchDatabase:
    """A database compatcheck created and will drop; ``url`` holds credentials, ``shown`` not."""

    url: str
    shown: str
    kind: str  # "sqlite" | "server"


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


def stop_groups(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM every group at once, wait up to ``grace`` in total, SIGKILL whatever remains.

    Trap: a leader that exits still leaves a zombie in its group until reaped, and a
    grandchild may outlive the leader; so reap with ``poll()`` and test the *group* with
    ``killpg(pgid, 0)``, not the leader's pid.
    """
    pgids = [p.pid for p in processes]
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
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


class Workspace:
    """Owns a run's temp dir, child process groups and scratch databases (a context manager)."""

    def __init__(self, *, grace: float = 5.0, handle_signals: bool = True) -> None:
        self.grace = grace
        self.handle_signals = handle_signals
        self.dir: Path | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._processes: list[subprocess.Popen[bytes]] = []
        self._droppers: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Workspace:
        self.dir = Path(tempfile.mkdtemp(prefix="compatcheck-"))
        atexit.register(self.close)
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        # Unwind like Ctrl-C does, so every ``with`` on the stack releases what it holds.
        raise SystemExit(128 + signum)

    def close(self) -> None:
        """Stop every process group, drop scratch databases, remove the temp dir. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            processes = list(self._processes)
            droppers = list(self._droppers)
        in_main = threading.current_thread() is threading.main_thread()
        shielded: dict[int, Any] = {}
        if in_main:
            # A second Ctrl-C must not abort the teardown half-way and leave children behind.
            for num in (signal.SIGINT, signal.SIGTERM):
                shielded[num] = signal.signal(num, signal.SIG_IGN)
        try:
            stop_groups(processes, self.grace)
            for drop in reversed(droppers):
                with contextlib.suppress(Exception):
                    drop()
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            if in_main:
                for restored in (shielded, self._previous):
                    for signum, handler in restored.items():
                        signal.signal(signum, handler)
            with contextlib.suppress(Exception):
                atexit.unregister(self.close)

    def sweep(self) -> None:
        """Remove the temp dir once more, after the worker threads have ended.

        Trap: after an interrupt, :meth:`close` runs while workers are still unwinding (a SQLite
        journal, a copied database, a log); a file they create while ``rmtree`` runs makes the
        final ``rmdir`` fail, and ``ignore_errors`` hides it. Call this after joining them.
        """
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _register(self, kind: str) -> Path:
        if self._closed:
            raise UnavailableError(f"cannot {kind}: the run is shutting down")
        assert self.dir is not None, "Workspace used outside its with-block"
        return self.dir

    # -- databases ------------------------------------------------------------------------

    def scratch_database(self, role: str, database: str = "sqlite") -> ScratchDatabase:
        """A fresh empty database for one target: a temp SQLite file, or one made on a server."""
        with self._lock:
            base = self._register("create a database")
            if database == "sqlite":
                path = base / f"{role}.sqlite"
                return ScratchDatabase(f"sqlite:///{path}", f"sqlite:///{path}", "sqlite")
        return self._server_database(database)

    def _server_database(self, server_url: str) -> ScratchDatabase:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        url = make_url(server_url)
        name = "compatcheck_" + secrets.token_hex(6)
        dialect = url.get_backend_name()
        if dialect not in ("postgresql", "mysql", "mariadb"):
            raise UnavailableError(
                f"{mask_secrets(server_url)}: scratch databases need PostgreSQL or MySQL/MariaDB"
            )
        engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=False)

        def drop() -> None:
            try:
                with engine.connect() as conn:
                    if dialect == "postgresql":
                        conn.execute(
                            text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :n AND pid <> pg_backend_pid()"
                            ),
                            {"n": name},
                        )
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            finally:
                engine.dispose()

        # Register the drop before creating: an interrupt right after CREATE must still drop it.
        with self._lock:
            self._register("create a database")
            self._droppers.append(drop)
        try:
            with engine.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
        except Exception as exc:
            raise UnavailableError(
                f"{mask_secrets(server_url)}: cannot create a scratch database: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        real = url.set(database=name)
        return ScratchDatabase(
            real.render_as_string(hide_password=False),
            mask_secrets(real),
            "server",
        )

    # -- processes ------------------------------------------------------------------------

    def launch(
        self,
        target: TargetConfig,
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
        assert target.command is not None
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
        with self._lock:
            base = self._register("start a process")
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
                    )
                except OSError as exc:
                    raise UnavailableError(
                        f"cannot start `{argv[0]}`: {exc.strerror or exc}"
                    ) from None
            self._processes.append(process)
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


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders; other braces (JSON in an env value) stay as they are."""
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    return out


def migrate_to_head(script_location: Path, url: str) -> str | None:
    """Upgrade a scratch database to the release's head with Alembic; return the new head."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    if not (script_location / "env.py").is_file():
        raise UnavailableError(f"{script_location}: not an Alembic script location (no env.py)")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location))
    # Trap: Alembic config values go through ConfigParser interpolation; a `%` in a password
    # would be read as a reference.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with ALEMBIC_LOCK:
        try:
            command.upgrade(cfg, "heads")
        except Exception as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise UnavailableError(
                f"{script_location}: upgrade to head failed: {type(exc).__name__}: {first}"
            ) from None
    return read_alembic_head(url)


def read_alembic_head(url: str) -> str | None:
    """The revision(s) recorded in ``alembic_version`` (comma-joined when several heads)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except Exception:
        return None
    finally:
        engine.dispose()
    return ",".join(sorted(str(r) for r in rows)) or None


def script_heads(script_location: Path) -> str | None:
    """Head revision(s) of a script location without touching a database."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location))
    with ALEMBIC_LOCK:
        try:
            heads = ScriptDirectory.from_config(cfg).get_heads()
        except Exception:
            return None
    return ",".join(sorted(heads)) or None
