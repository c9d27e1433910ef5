"""Alembic as its command line runs it: in compatcheck's interpreter, or in the application's.

Two uses, one code path, so ``env.py`` is handed the same :class:`~alembic.config.Config` either
way:

- compatcheck imports this module (:mod:`.runner`) to run Alembic in its own process;
- with ``--python PATH`` compatcheck runs this *file*, by path, with the application's interpreter
  (``PATH helper.py``), and speaks JSON to it. That is why nothing here imports compatcheck (the
  application's virtual environment has Alembic, SQLAlchemy and its driver, not compatcheck) and
  why the code runs on any Python 3.8+: compatcheck needs nothing installed there, and the
  revisions can import the application (``from app.models import ...``) because they run where it
  is installed.

The config is what ``alembic -c INI -n NAME -x K=V`` builds (``config_file_name`` set, so the
stock ``fileConfig(config.config_file_name)`` works, and ``-x`` reaches
``context.get_x_argument()``), or a bare ``script_location`` when no ini is given; the scratch
database's URL becomes ``sqlalchemy.url``, and one connection to it is handed to ``env.py`` as
``config.attributes["connection"]`` (the Alembic cookbook pattern).

The protocol (``--python``): one JSON object per line. compatcheck writes the setup first
(``{"project": {...}, "url": ...}``: the URL travels on stdin, never in ``argv`` where ``ps``
shows it), then requests ``{"op": "locations" | "load" | "connect" | "release" | "url" |
"upgrade" | "downgrade" | "offline_sql" | "quit", ...}``; each gets one reply line (compatcheck
reads ``load``'s later: the helper imports the application while the init command runs).
Trap: the application may print; before anything of it runs, the protocol stream is moved to a
private copy of fd 1 and fd 1 is pointed at stderr, so a ``print()`` in ``env.py`` cannot corrupt
a reply.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, Tuple  # noqa: UP035 (runs on 3.8)

#: A failed phase: the revision in progress (None: before any step) and the exception.
Failure = Tuple[Optional[str], BaseException]  # noqa: UP006, UP045 (runs on 3.8)

#: True in the ``--python`` helper process (messages then name its interpreter).
REMOTE = False
#: Drivers to try, in order, when the URL's own is not installed where the revisions run.
DRIVERS = {
    "postgresql": ("psycopg2", "psycopg", "pg8000"),
    "mysql": ("pymysql", "mysqldb", "mysqlconnector"),
    "mariadb": ("pymysql", "mysqldb", "mysqlconnector"),
}
#: The package to install for each backend when no driver is there.
DRIVER_PACKAGES = {
    "postgresql": "psycopg2-binary (or psycopg)",
    "mysql": "PyMySQL",
    "mariadb": "PyMySQL",
}


def make_config(project: Mapping[str, Any], url: str | None, buffer: Any = None) -> Any:
    """The Config ``alembic -c INI -n NAME -x ...`` builds, with ``url`` as ``sqlalchemy.url``.

    ``project`` keys: ``config_file`` (the ini, or None), ``name`` (its section),
    ``script_location`` (used when there is no ini), ``x`` (the ``-x`` arguments).
    """
    from alembic.config import Config

    x = list(project.get("x") or ())
    cmd_opts = argparse.Namespace(x=x or None)
    ini = project.get("config_file")
    if ini:
        cfg = Config(
            file_=ini,
            ini_section=project.get("name") or "alembic",
            output_buffer=buffer,
            cmd_opts=cmd_opts,
        )
    else:
        cfg = Config(output_buffer=buffer, cmd_opts=cmd_opts)
        cfg.set_main_option("script_location", str(project["script_location"]))
    if url is not None:
        # Trap: values go through ConfigParser interpolation; a `%` in a password would be read
        # as a reference.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def locations(cfg: Any) -> dict[str, Any]:
    """Where Alembic finds the scripts, resolved by Alembic itself (``package:path``,
    ``%(here)s``, ``version_locations`` with its ``path_separator``), so the revisions compatcheck
    reads as source are the ones ``alembic`` would load."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    folders = [os.path.abspath(str(p)) for p in script._version_locations]
    return {
        "script_location": os.path.abspath(str(script.dir)),
        "version_locations": folders,
        "recursive": bool(getattr(script, "recursive_version_locations", False)),
    }


def load_code(project: Mapping[str, Any]) -> int:
    """Import what the project's ``env.py`` imports at its top level and load every revision file
    (importing what the revisions import), so the first upgrade does not wait for the
    application's imports: compatcheck asks for it while the user's init command runs.

    Only a head start: any error is dropped here, and the same import fails again where it really
    runs, reported there with its stage and revision. Returns how many modules it imported.
    """
    import ast
    import contextlib
    import importlib

    from alembic.script import ScriptDirectory

    try:
        script = ScriptDirectory.from_config(make_config(project, None))
        with open(os.path.join(str(script.dir), "env.py"), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (Exception, SystemExit):
        return 0
    # (module, names taken from it): ``from app import models`` imports app.models too.
    wanted: list[tuple[str, list[str]]] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            wanted += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            wanted.append((node.module, [alias.name for alias in node.names]))
    imported = 0
    for name, members in wanted:
        try:
            module = importlib.import_module(name)
            imported += 1
        except (Exception, SystemExit):
            continue
        for member in members:
            if not hasattr(module, member):
                with contextlib.suppress(Exception, SystemExit):
                    importlib.import_module(f"{name}.{member}")
    with contextlib.suppress(Exception, SystemExit):
        script.get_heads()  # builds the revision map: every revision file is loaded
    return imported


def describe(exc: BaseException) -> str:
    """One line for a failure (the database's own error when there is one, as compatcheck's
    messages give it), with what in ``env.py`` raised it and the fix when it is a known one
    (a ``fileConfig`` without an ini)."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    line = lines[0][:300] if lines else type(exc).__name__
    if orig is None and isinstance(exc, (LookupError, AttributeError, TypeError, NameError)):
        line = f"{type(exc).__name__}: {line}"  # `'notes'` alone says nothing
    frames = traceback.extract_tb(exc.__traceback__)
    in_env = [f for f in frames if os.path.basename(f.filename) == "env.py"]
    if any(f.name == "fileConfig" for f in frames) or (
        in_env and "fileConfig" in (in_env[-1].line or "")
    ):
        return f"{line} (env.py calls fileConfig(): pass --config alembic.ini)"
    if in_env and frames[-1] is in_env[-1]:
        return f"{line} (env.py line {in_env[-1].lineno}: {in_env[-1].line})"
    if isinstance(exc, ImportError) and orig is None:
        if REMOTE:
            return f"{line} (is the application installed in {sys.executable}?)"
        return f"{line} (pass --python with the application's own interpreter)"
    return line


def connect(url: str) -> tuple[Any, Any, str]:
    """An engine and a connection on ``url``; when its driver is missing here, the backend's other
    drivers in turn. Returns (engine, connection, the URL that connected)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    candidates = [parsed]
    for driver in DRIVERS.get(backend, ()):
        if driver != parsed.get_driver_name():
            candidates.append(parsed.set(drivername=f"{backend}+{driver}"))
    missing: BaseException | None = None
    for candidate in candidates:
        try:
            engine = sa.create_engine(candidate, poolclass=NullPool)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            missing = missing or exc
            continue
        if backend == "sqlite":
            sa.event.listen(engine, "connect", _throwaway_sqlite)
        return engine, engine.connect(), candidate.render_as_string(hide_password=False)
    package = DRIVER_PACKAGES.get(backend, f"a {backend} driver")
    raise RuntimeError(
        f"no {backend} driver in {sys.executable}: install {package} there ({missing})"
    )


def _throwaway_sqlite(dbapi_conn: Any, _record: Any) -> None:
    """No fsync for a scratch file deleted in a minute (rollback still works)."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


class Session:
    """Alembic on one connection, one ``env.py`` run per phase, naming the step that fails.

    Each phase's migration function yields one revision step at a time, so the step in progress
    when an error is raised names the culprit. ``before_step(rev)`` runs between steps (it may
    raise to stop the run); ``guard`` wraps every ``env.py`` run and script load (compatcheck's
    process-wide Alembic lock in-process).
    """

    def __init__(
        self,
        cfg: Any,
        conn: Any,
        before_step: Callable[[str], None] = lambda _rev: None,
        guard: Any = None,
    ) -> None:
        from alembic.script import ScriptDirectory

        self.cfg = cfg
        self.conn = conn
        self.before_step = before_step
        self.guard = guard
        #: The version table env.py configured (``version_table``, ``version_table_schema``).
        self.version_opts: dict[str, Any] = {}
        #: The database URL env.py's last run migrated (password hidden); None: no step ran.
        self.migrated_url: str | None = None
        self.url = _shown(conn)
        cfg.attributes["connection"] = conn
        with self._guarded():
            self.script = ScriptDirectory.from_config(cfg)

    def reopen(self, conn: Any) -> None:
        """Go on with a new connection to the same database (the last one was closed)."""
        self.conn = conn
        self.cfg.attributes["connection"] = conn

    def _guarded(self) -> Any:
        import contextlib

        return self.guard if self.guard is not None else contextlib.nullcontext()

    def current(self) -> tuple[str, ...]:
        """The revisions the scratch database records, read on compatcheck's own connection
        (in the version table env.py configured, once it has run)."""
        from alembic.runtime.migration import MigrationContext

        heads = MigrationContext.configure(self.conn, opts=self.version_opts).get_current_heads()
        if self.conn.in_transaction():
            self.conn.commit()
        return tuple(heads)

    def _elsewhere(self) -> str | None:
        """What env.py's last run did when it migrated another database than the one it was
        handed; None when it migrated this one (or ran no step)."""
        if self.migrated_url is None or _same_database(self.migrated_url, self.url):
            return None
        return (
            f"env.py ran the migrations on {self.migrated_url}, not on the scratch database "
            "it was handed (it opens its own engine; make it use "
            'config.attributes["connection"] or sqlalchemy.url)'
        )

    def _check_reached(self, target: Any) -> Failure | None:
        """After an upgrade the scratch database must record ``target``: when it does not,
        env.py migrated another database or none (it ignored ``config.attributes["connection"]``
        and ``sqlalchemy.url``), and every later observation would be of the wrong database."""
        with self._guarded():
            found_revs = self.script.revision_map.get_revisions(target)
            wanted = {r.revision for r in found_revs if r is not None and not isinstance(r, str)}
        found = self.current()
        elsewhere = self._elsewhere()
        if wanted <= set(found) and elsewhere is None:
            return None
        last = ",".join(sorted(wanted))
        recorded = ", ".join(found) or "no revision"
        if elsewhere is not None:
            did = elsewhere
        elif self.migrated_url is None:
            did = "env.py ran no migration step (it never called context.run_migrations())"
        else:
            did = "env.py ran the steps on this database but its version table does not say so"
        return last, RevisionMismatch(
            f"upgrading to `{last}`: {did}; the scratch database records {recorded}"
        )

    def _annotated(self, failed: Failure | None) -> Failure | None:
        """A failure of a run that migrated another database says so (its error is about that
        database: "no such table" there)."""
        elsewhere = self._elsewhere() if failed is not None else None
        if failed is None or elsewhere is None:
            return failed
        rev, exc = failed
        return rev, RevisionMismatch(f"{describe(exc)}; {elsewhere}")

    def upgrade(self, target: str) -> Failure | None:
        from alembic.runtime.migration import MigrationStep

        upper: Any = tuple(target.split(",")) if "," in target else target
        try:
            heads = self.current()
            with self._guarded():  # the first use of the map imports every revision file
                rmap = self.script.revision_map
                if isinstance(upper, tuple):
                    # Alembic refuses a set where one member needs another (depends_on): the
                    # set's tips reach the same revisions.
                    below = {
                        r.revision
                        for o in upper
                        for r in rmap.iterate_revisions(o, None)
                        if r.revision != o
                    }
                    upper = tuple(o for o in upper if o not in below)
                revs = list(self.script.iterate_revisions(upper, heads, implicit_base=True))
            steps = [
                (s.revision, MigrationStep.upgrade_from_script(rmap, s)) for s in reversed(revs)
            ]
        except Exception as exc:
            return None, exc
        failed = self._annotated(self._run(steps))
        return failed if failed is not None else self._check_reached(upper)

    def downgrade(self, path: Sequence[str]) -> Failure | None:
        """Undo ``path`` in order. A revision Alembic cannot even make a step of (no
        ``downgrade()``: AttributeError) fails as that revision, after the ones before it ran."""
        try:
            steps = self._downgrade_steps(path)
        except _StepError as exc:
            ran = self._annotated(self._run(exc.done)) if exc.done else None
            return ran if ran is not None else (exc.revision, exc.cause)
        except Exception as exc:
            return None, exc
        return self._annotated(self._run(steps))

    def _downgrade_steps(self, path: Sequence[str]) -> list[tuple[str, Any]]:
        from alembic.runtime.migration import MigrationStep

        out: list[tuple[str, Any]] = []
        with self._guarded():
            rmap = self.script.revision_map
            for rev in path:
                script = self.script.get_revision(rev)
                if script is None:
                    raise LookupError(f"Alembic does not know revision `{rev}`")
                try:
                    out.append((rev, MigrationStep.downgrade_from_script(rmap, script)))
                except Exception as exc:
                    raise _StepError(rev, exc, out) from exc
        return out

    def offline_sql(self, path: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
        """The downgrade rendered as SQL (Alembic ``--sql``), and (revision, why) for each
        revision that needs a database. Rendering resumes after such a revision so the rest of
        the script is still shown."""
        buffer = self.cfg.output_buffer
        online: list[tuple[str, str]] = []
        chunks: list[str] = []
        remaining = list(path)
        while remaining:
            buffer.seek(0)
            buffer.truncate()
            broken: _StepError | None = None
            try:
                steps = self._downgrade_steps(remaining)
            except _StepError as exc:
                broken, steps = exc, exc.done
            except Exception as exc:
                online.append((remaining[0], describe(exc)))
                break
            failed = self._run(steps, as_sql=True, starting_rev=remaining[0]) if steps else None
            if failed is None and broken is not None:
                failed = broken.revision, broken.cause
            chunks.append(buffer.getvalue())
            if failed is None:
                break
            rev, error = failed[0], describe(failed[1])
            if rev is None:
                online.append((remaining[0], error))
                break
            online.append((rev, error))
            chunks.append(f"-- revision {rev} cannot be rendered offline: {error}\n")
            remaining = remaining[remaining.index(rev) + 1 :]
        return "".join(chunks), online

    def _run(
        self, steps: Sequence[tuple[str, Any]], as_sql: bool = False, starting_rev: Any = None
    ) -> Failure | None:
        """Run the steps in one ``env.py`` run; None on success."""
        from alembic.runtime.environment import EnvironmentContext

        current: list[str | None] = [None]
        self.migrated_url = None

        def fn(rev: Any, context: Any) -> Iterator[Any]:
            if not as_sql:
                self.migrated_url = _shown(context.connection)
                self.version_opts = {
                    "version_table": context.version_table,
                    "version_table_schema": context.version_table_schema,
                }
            for rev_id, step in steps:
                self.before_step(rev_id)
                current[0] = rev_id
                yield step
            current[0] = None

        if self.conn.in_transaction():
            self.conn.commit()
        try:
            # Nested, not one parenthesised `with`: this file runs on Python 3.8 too.
            with self._guarded():  # noqa: SIM117
                with EnvironmentContext(
                    self.cfg, self.script, fn=fn, as_sql=as_sql, starting_rev=starting_rev
                ):
                    self.script.run_env()
        except Exception as exc:
            if not as_sql:
                self.conn.rollback()
            return current[0], exc
        finally:
            if not as_sql and self.conn.in_transaction():
                self.conn.commit()
        return None


class RevisionMismatch(Exception):
    """The database does not record the revision an upgrade was to reach."""


def _shown(conn: Any) -> str | None:
    """A connection's database URL, password hidden."""
    try:
        return str(conn.engine.url.render_as_string(hide_password=True))
    except Exception:
        return None


def _same_database(a: str, b: str | None) -> bool:
    """Two URLs naming one database, whatever the driver (env.py may swap it)."""
    from sqlalchemy.engine import make_url

    if b is None:
        return True
    try:
        ua, ub = make_url(a), make_url(b)
    except Exception:
        return a == b
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        return os.path.realpath(ua.database or "") == os.path.realpath(ub.database or "")
    keys = ("host", "port", "database")
    return all(getattr(ua, k) == getattr(ub, k) for k in keys)


class _StepError(Exception):
    """Alembic could not make a step of ``revision`` (``done``: the steps before it)."""

    def __init__(self, revision: str, cause: BaseException, done: list[tuple[str, Any]]) -> None:
        super().__init__(str(cause))
        self.revision, self.cause, self.done = revision, cause, done


# -- the subprocess side (``--python``) ---------------------------------------------------------


def _failure_json(failed: Failure | None) -> dict[str, Any] | None:
    if failed is None:
        return None
    rev, exc = failed
    return {"revision": rev, "error": describe(exc)}


def serve(requests: Any, replies: Any) -> int:
    """Answer compatcheck's requests until ``quit`` or end of input."""

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    setup = json.loads(requests.readline() or "{}")
    project, url = setup.get("project") or {}, setup.get("url")
    session: Session | None = None
    engine: Any = None
    try:
        for line in requests:
            request = json.loads(line)
            op = request.get("op")
            if op == "quit":
                break
            try:
                if op == "locations":
                    reply({"ok": locations(make_config(project, None))})
                    continue
                if op == "load":
                    reply({"ok": True, "imported": load_code(project)})
                    continue
                if op == "connect":
                    # Another scratch database, same process: the application and the revision
                    # files stay imported (compatcheck checks each upgrade reached its target,
                    # so an app that cached the first database is named, not trusted).
                    if session is not None:
                        session.conn.close()
                    if engine is not None:
                        engine.dispose()
                    session, engine, url = None, None, request.get("url")
                    reply({"ok": True})
                    continue
                if op == "release":
                    # compatcheck copies the database: no session may stay on it. The scripts
                    # stay imported; the next request reconnects.
                    if session is not None:
                        session.conn.close()
                    reply({"ok": True})
                    continue
                if session is None:
                    engine, conn, url = connect(str(url))
                    session = Session(make_config(project, url, io.StringIO()), conn)
                elif session.conn.closed:
                    session.reopen(engine.connect())
                if op == "url":
                    reply({"url": url})
                elif op == "upgrade":
                    reply({"failed": _failure_json(session.upgrade(request["target"]))})
                elif op == "downgrade":
                    reply({"failed": _failure_json(session.downgrade(request["path"]))})
                elif op == "offline_sql":
                    sql, online = session.offline_sql(request["path"])
                    reply({"sql": sql, "online": [list(o) for o in online]})
                else:
                    reply({"error": f"unknown request {op!r}"})
            except Exception as exc:
                reply({"error": describe(exc)})
    finally:
        if session is not None:
            session.conn.close()
        if engine is not None:
            engine.dispose()
    return 0


def main() -> int:
    # Trap: run by path, this file's folder is sys.path[0], and its neighbours (runner.py,
    # history.py...) would shadow the application's modules of the same name.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    global REMOTE
    REMOTE = True
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the application's prints go to stderr, never into a reply
    return serve(sys.stdin, replies)


if __name__ == "__main__":
    code = main()
    # Everything is answered and the connection closed: leave without the interpreter's
    # teardown of the application (its atexit handlers and module cleanup took 0.5 s for
    # mlflow), which changes nothing compatcheck reads and would only delay its exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
