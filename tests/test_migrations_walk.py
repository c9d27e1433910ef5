"""The walk past broken downgrades passes over revisions that certainly define no downgrade:
running one could only fail, so it costs no fresh database and is not claimed as run."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from compatcheck.migrations import inspect_migrations
from compatcheck.migrations.sources.alembic.revisions import cannot_define
from compatcheck.migrations.walk import NO_DOWNGRADE
from compatcheck.migrations.willfail import ran_downgrades

ENV_PY = Path(__file__).parent.parent / "fixtures" / "alembic" / "clean_reversible" / "env.py"
HEAD = (
    "import sqlalchemy as sa\nfrom alembic import op\n\n"
    "revision = {rev!r}\ndown_revision = {down!r}\n"
)
UP = (
    "\n\ndef upgrade():\n"
    "    op.create_table({table!r}, sa.Column('id', sa.Integer, primary_key=True))\n"
)
REVISIONS = {
    "r0": "\n\ndef down" + "grade():\n    op.drop_table('t0')\n",
    # Fails when run: the table is not there.
    "r1": "\n\ndef down" + "grade():\n    op.drop_table('nowhere')\n",
    # Never spells the name: passed over.
    "r2": "",
    # Spells it (a comment), so it is run, and fails as itself.
    "r3": "\n# no down" + "grade: it would lose t3\n",
    "r4": "\n\ndef down" + "grade():\n    raise RuntimeError('no way back')\n",
}


def _project(folder: Path) -> Path:
    (folder / "versions").mkdir(parents=True)
    shutil.copy(ENV_PY, folder / "env.py")
    down = None
    for n, (rev, tail) in enumerate(REVISIONS.items()):
        text = HEAD.format(rev=rev, down=down) + UP.format(table=f"t{n}") + tail
        (folder / "versions" / f"{rev}.py").write_text(text)
        down = rev
    return folder


def test_only_revisions_that_never_spell_the_name_are_certainly_without_it() -> None:
    assert cannot_define("def upgrade():\n    pass\n", "downgrade")
    assert not cannot_define("# downgrade: none\n", "downgrade")
    assert not cannot_define("from helpers import *\n", "downgrade")
    assert not cannot_define("def __getattr__(name):\n    return print\n", "downgrade")
    assert not cannot_define("globals()['down' + 'grade'] = print\n", "downgrade")
    assert cannot_define("op.execute('SELECT 1')\n", "downgrade")  # execute is not exec


def test_the_walk_passes_over_revisions_without_a_downgrade(tmp_path: Path) -> None:
    said: list[str] = []
    result = inspect_migrations(_project(tmp_path / "m"), "r0", "r4", progress=said.append)
    trip = result.section.roundtrip
    assert trip is not None and trip.failure is not None
    assert trip.failure.revision == "r4"
    assert [f.revision for f in trip.later_failures] == ["r3", "r1"]
    assert "has no attribute 'down" + "grade'" in trip.later_failures[0].error
    assert dict(trip.passed_over) == {"r2": NO_DOWNGRADE}
    assert trip.to_json()["passed_over"] == {"r2": NO_DOWNGRADE}
    # Two fresh databases (after r4, after r3), none for r2.
    walked = [line for line in said if line.startswith("continuing after")]
    assert walked == [
        "continuing after `r4` on a fresh database at r3",
        "continuing after `r3` on a fresh database at r1",
    ]
    assert any(line.startswith("passing over `r2`") for line in said)
    found = {(f.kind, f.subject) for f in result.findings}
    assert ("migrations/downgrade-missing", "r2") in found
    assert ("migrations/downgrade-failed", "r1") in found
    # Claimed as run: what ran, not what was passed over.
    path: Any = SimpleNamespace(revisions=result.section.downgrade_path)
    assert path.revisions == ("r4", "r3", "r2", "r1")
    assert ran_downgrades(trip, path) == {"r4", "r3", "r1"}


def test_a_walk_that_cannot_go_on_keeps_what_the_round_trip_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No fresh database for the walk (the server refused one, the helper died): the round
    trip's own observations and the first failure stand, the walk's stop is check/unavailable
    naming it, and nothing after the first failure is claimed as run."""
    from compatcheck.migrations.roundtrip import RunnerUnavailable
    from compatcheck.migrations.template import FreshDatabases

    @contextlib.contextmanager
    def refusing(self: FreshDatabases, source: Any) -> Iterator[Any]:
        raise RunnerUnavailable("the helper could not start", "helper exited (code 1)")
        yield

    monkeypatch.setattr(FreshDatabases, "open", refusing)
    result = inspect_migrations(_project(tmp_path / "m"), "r0", "r4")
    trip = result.section.roundtrip
    assert trip is not None and trip.status == "downgrade-failed"
    assert trip.failure is not None and trip.failure.revision == "r4"
    (stop,) = trip.later_failures
    assert (stop.stage, stop.revision) == ("walk", None)
    assert stop.error == "could not go on after `r4`: the helper could not start"
    found = {(f.kind, f.subject): f for f in result.findings}
    assert ("migrations/downgrade-failed", "r4") in found or (
        "migrations/downgrade-not-implemented",
        "r4",
    ) in found
    unavailable = found[("check/unavailable", "migrations")]
    assert unavailable.message.startswith("The walk past the failed downgrade stopped on sqlite")
    path: Any = SimpleNamespace(revisions=result.section.downgrade_path)
    assert ran_downgrades(trip, path) == {"r4"}
