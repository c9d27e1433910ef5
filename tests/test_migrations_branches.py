"""Branches as Alembic has them: ``branch_labels``, several heads by design,
``depends_on`` (a branch label, a module-level name bound to a literal), ``heads``,
``label@head`` and comma-separated sets for ``--old``/``--new``.

The downgrade path compatcheck computes from the revisions read as source must be exactly what
real Alembic runs: each case upgrades a real SQLite database with ``alembic.command`` and records,
from Alembic's own log, the revisions ``alembic downgrade OLD`` undoes.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from compatcheck.errors import InputError
from compatcheck.migrations import inspect_migrations

PROJECT = Path(__file__).parent.parent / "fixtures" / "alembic_projects" / "branches"
RUNNING = re.compile(r"Running downgrade (\S+?),? .*->")


def alembic_downgrade(tmp_path: Path, new: str, old: str) -> list[str]:
    """What real Alembic undoes: upgrade a fresh SQLite file to ``new``, downgrade to ``old``,
    the revisions in the order its log names them."""
    db = tmp_path / f"real-{len(list(tmp_path.iterdir()))}.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{db}")
    seen: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = RUNNING.match(record.getMessage())
            if m:
                seen.append(m.group(1))

    log = logging.getLogger("alembic.runtime.migration")
    handler, level = Grab(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for target in new.split(","):  # `alembic upgrade` takes one target
            command.upgrade(cfg, target)
        seen.clear()
        command.downgrade(cfg, old)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return seen


def our_path(new: str | None, old: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """compatcheck's path and what of it Alembic's own downgrade would leave applied."""
    section = inspect_migrations(PROJECT, old, new, static=True).section
    assert section.downgrade_path is not None
    return section.downgrade_path, section.skipped_by_framework


@pytest.mark.parametrize(
    ("new", "old", "left"),
    [
        ("heads", "a1", ()),  # both branches, expand's undone after contract that needs it
        ("e2,c2", "a1", ()),  # the same as an explicit set
        ("contract@head", "a1", ()),  # c2 needs e2 (depends_on): its whole ancestry
        ("expand@head", "e1", ()),
        # c1 depends on e1 (both stay); `alembic downgrade c1` leaves e2 (another branch), which
        # a database at c1 never had.
        ("heads", "c1", ("e2",)),
        # `alembic downgrade e1` leaves c1 (not above e1 by down_revision); OLD at e1 never had
        # it, so the path undoes it too and names it as what Alembic alone would leave.
        ("heads", "e1", ("c1",)),
    ],
)
def test_the_path_is_what_alembic_downgrade_runs(
    new: str, old: str, left: tuple[str, ...], tmp_path: Path
) -> None:
    real = alembic_downgrade(tmp_path, new, old)
    path, skipped = our_path(new, old)
    assert skipped == left
    assert [r for r in path if r not in skipped] == real
    assert real  # every case undoes something


def test_heads_by_design_are_not_multiple_heads_and_new_defaults_to_them() -> None:
    """Two heads, each on its own branch label: no finding, and NEW (not given) is both."""
    result = inspect_migrations(PROJECT, "a1", None, static=True)
    assert "migrations/multiple-heads" not in {f.kind for f in result.findings}
    assert result.section.new_head == "c2,e2"
    assert result.section.heads == ("c2", "e2")


def copy_with(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(PROJECT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / name).write_text(text)
    return folder


def test_unlabelled_heads_are_multiple_heads(tmp_path: Path) -> None:
    """A third head on the expand branch: two heads of one labelled branch must be merged."""
    folder = copy_with(
        tmp_path,
        "e3_expand.py",
        'revision = "e3"\ndown_revision = "e1"\n\ndef upgrade():\n    pass\n\n'
        "def downgrade():\n    pass\n",
    )
    result = inspect_migrations(folder, "a1", "heads", static=True)
    heads = [f for f in result.findings if f.kind == "migrations/multiple-heads"]
    assert [f.subject for f in heads] == ["e2,e3"]


def test_depends_on_outside_the_folder_is_one_clear_error(tmp_path: Path) -> None:
    folder = copy_with(
        tmp_path,
        "d1.py",
        'revision = "d1"\ndown_revision = "a1"\ndepends_on = "elsewhere9"\n\n'
        "def upgrade():\n    pass\n\ndef downgrade():\n    pass\n",
    )
    with pytest.raises(
        InputError, match=r"d1.py: `depends_on` names `elsewhere9`, which is neither"
    ):
        inspect_migrations(folder, "a1", "heads", static=True)


def test_depends_on_a_name_from_elsewhere_is_one_clear_error(tmp_path: Path) -> None:
    folder = copy_with(
        tmp_path,
        "d1.py",
        'from app.revs import BASE\nrevision = "d1"\ndown_revision = "a1"\ndepends_on = BASE\n\n'
        "def upgrade():\n    pass\n\ndef downgrade():\n    pass\n",
    )
    with pytest.raises(InputError, match=r"`depends_on` is neither a literal nor a name bound"):
        inspect_migrations(folder, "a1", "heads", static=True)
