"""The ``--python`` helper's head start and quick exit.

While the user's init command (``--base-command``) runs in its own process, the helper imports
what ``env.py`` and the revisions import (``load``, a request whose reply compatcheck reads
later), and on ``quit`` it leaves without the application's teardown. Both only save time: these
tests pin that the protocol stays in step and that nothing the application does at import or at
exit can make the helper fail or linger.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from compatcheck.migrations.sources.alembic import AlembicProject
from compatcheck.migrations.sources.alembic import helper as helper_module
from compatcheck.migrations.sources.alembic.remote import HelperProcess

APP = Path(__file__).parent.parent / "fixtures" / "alembic_projects" / "ini_app"
INI = APP / "alembic.ini"
SPEC = {"config_file": str(INI), "name": "alembic", "x": ["tenant=t1"]}


def app_python(folder: Path, pythonpath: Path) -> str:
    """An interpreter where only ``pythonpath`` holds the application."""
    path = folder / "python"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={pythonpath} exec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return str(path)


def test_load_imports_what_env_py_and_the_revisions_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(APP / "app"))
    monkeypatch.delitem(sys.modules, "fixtureapp", raising=False)
    imported = helper_module.load_code(SPEC)
    # env.py's top level: logging.config, fixtureapp, alembic, sqlalchemy.
    assert imported == 4
    assert "fixtureapp" in sys.modules


def test_load_drops_what_fails_and_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An import that raises (or exits) is left for the real run to report, with its stage."""
    scripts = tmp_path / "scripts"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(
        "import breaks_at_import\nimport exits_at_import\nimport loads_fine\nfrom pkgx import sub\n"
    )
    (tmp_path / "pkgx").mkdir()
    (tmp_path / "pkgx" / "__init__.py").write_text("")
    (tmp_path / "pkgx" / "sub.py").write_text("")
    (scripts / "versions" / "0001_a.py").write_text(
        'import revision_import\nrevision = "0001"\ndown_revision = None\n'
    )
    (tmp_path / "breaks_at_import.py").write_text("raise RuntimeError('no config')\n")
    (tmp_path / "exits_at_import.py").write_text("raise SystemExit(3)\n")
    (tmp_path / "loads_fine.py").write_text("")
    (tmp_path / "revision_import.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("breaks_at_import", "exits_at_import", "loads_fine", "revision_import", "pkgx"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    spec = {"config_file": None, "script_location": str(scripts), "x": []}
    monkeypatch.delitem(sys.modules, "pkgx.sub", raising=False)
    assert helper_module.load_code(spec) == 2
    assert "loads_fine" in sys.modules
    assert "pkgx.sub" in sys.modules  # `from pkgx import sub`: a submodule, imported too
    assert "revision_import" in sys.modules  # loaded through the revision map
    assert "breaks_at_import" not in sys.modules


def test_a_request_after_load_gets_its_own_reply(tmp_path: Path) -> None:
    """The reply to ``load`` is read and dropped first: the next request is answered in step."""
    python = app_python(tmp_path, APP / "app")
    project = AlembicProject(config_file=INI, x=("tenant=t1",), python=python)
    with HelperProcess(project, None) as helper:
        helper.send_ahead({"op": "load"})
        helper.send_ahead({"op": "load"})
        reply = helper.request({"op": "locations"})
        assert reply["ok"]["script_location"] == str(APP / "scripts")
        assert helper.request({"op": "locations"}) == reply


def test_the_helper_leaves_without_the_applications_teardown(tmp_path: Path) -> None:
    """An application whose exit takes long (an atexit handler, a big heap) does not hold
    compatcheck up: the helper is gone at once after ``quit``, by itself (code 0), not killed
    after the grace period."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "fixtureapp.py").write_text(
        (APP / "app" / "fixtureapp" / "__init__.py").read_text()
        + textwrap.dedent(
            """
            import atexit
            import time

            atexit.register(time.sleep, 30)
            """
        )
    )
    python = app_python(tmp_path, app)
    project = AlembicProject(config_file=INI, x=("tenant=t1",), python=python)
    helper = HelperProcess(project, None)
    helper.send_ahead({"op": "load"})
    assert "ok" in helper.request({"op": "locations"})
    started = time.monotonic()
    helper.close()
    assert time.monotonic() - started < 3.0
    assert helper.process.returncode == 0


def test_a_helper_interrupted_mid_request_is_stopped_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the helper migrates leaves its reply unread: given back to the pool, it is
    stopped within the quit grace (not waited for until the migration ends), and the pool's
    next helper answers its own request, not the interrupted one's."""
    import shutil
    import signal

    from compatcheck import apphelper
    from compatcheck.migrations.sources.alembic import remote

    scripts = tmp_path / "scripts"
    clean = Path(__file__).parent.parent / "fixtures" / "alembic" / "clean_reversible"
    shutil.copytree(clean, scripts, ignore=shutil.ignore_patterns("versions", "expected.yaml"))
    (scripts / "versions").mkdir()
    (scripts / "versions" / "0001_slow.py").write_text(
        'import time\nrevision = "0001"\ndown_revision = None\n'
        "def upgrade():\n    time.sleep(6)\n\ndef downgrade():\n    pass\n"
    )
    # Both names: the group is stopped with apphelper's (Started.stop), remote's waits for a quit.
    monkeypatch.setattr(remote, "QUIT_GRACE", 1.0)
    monkeypatch.setattr(apphelper, "QUIT_GRACE", 1.0)
    project = AlembicProject(script_location=scripts, python=sys.executable)
    pool = remote.HelperPool(project)

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupted)
    try:
        helper = pool.take(f"sqlite:///{tmp_path / 'db.sqlite'}")
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            helper.request({"op": "upgrade", "target": "0001"})
        started = time.monotonic()
        pool.give_back(helper)
        assert time.monotonic() - started < 4.0  # the migration had 5 s left
        assert pool.idle is None and helper.process.poll() is not None
        assert pool.locations()["ok"]["script_location"] == str(scripts)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        pool.close()


def test_a_helper_still_loading_is_stopped_at_once_not_kept(tmp_path: Path) -> None:
    """The init command failed or Ctrl-C came while the helper imports the application (its
    ``load`` reply unread): given back, it is stopped at once — not asked to quit behind the
    imports, not kept one reply behind for the next database."""
    from compatcheck.migrations.sources.alembic import remote

    app = tmp_path / "app"
    app.mkdir()
    (app / "fixtureapp.py").write_text(
        "import time\ntime.sleep(30)\n" + (APP / "app" / "fixtureapp" / "__init__.py").read_text()
    )
    python = app_python(tmp_path, app)
    pool = remote.HelperPool(AlembicProject(config_file=INI, x=("tenant=t1",), python=python))
    try:
        helper = pool.take(f"sqlite:///{tmp_path / 'db.sqlite'}")
        helper.send_ahead({"op": "load"})  # importing fixtureapp takes 30 s
        assert not helper.in_step
        started = time.monotonic()
        pool.give_back(helper)
        assert time.monotonic() - started < 2.0
        assert pool.idle is None and helper.process.poll() is not None
    finally:
        pool.close()
