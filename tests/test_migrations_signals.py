"""Ctrl-C and SIGTERM during a `compatcheck migrations` round trip on SQLite: the exit code is
128 + the signal, as for `check`, with one line, and the temp folder is gone. (The same on
PostgreSQL and MariaDB, at more moments: tests/test_interrupts.py.)"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .interruption import interrupt

CLEAN = Path(__file__).resolve().parent.parent / "fixtures" / "alembic" / "clean_reversible"


@pytest.mark.parametrize(("sig", "code", "said"), [
    pytest.param(signal.SIGINT, 130, "compatcheck: interrupted", marks=pytest.mark.slow),
    (signal.SIGTERM, 143, "compatcheck: terminated"),
])  # fmt: skip
def test_round_trip_interrupted_exits_with_the_signal_and_leaves_nothing(
    tmp_path: Path, sig: int, code: int, said: str
) -> None:
    """A supervisor that stopped it with SIGTERM sees 143, not a Ctrl-C."""
    argv = ["migrations", "--script-location", str(CLEAN), "--old", "0001_users",
            "--new", "0002_name_index", "--format", "json", "-q"]  # fmt: skip
    out = interrupt(argv, "roundtrip:seeded", sig, tmp_path / "tmp")
    assert out.code == code
    assert out.stderr.strip().splitlines() == [
        f"compatcheck: paused at roundtrip:seeded (pid {out.pid})",
        said,
    ]
    assert list(out.tmp.iterdir()) == []
