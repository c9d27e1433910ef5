"""Static "will fail": a downgrade that drops what does not exist at that point, or a
table before the tables that reference it, predicted from the revisions' operations
(:mod:`compatcheck.migrations.simulate`), and answered by the round trip where it runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from compatcheck.migrations import inspect_migrations

FIXTURE = Path(__file__).parent.parent / "fixtures" / "alembic" / "will_fail_downgrade"


def by_kind(result: object, kind: str) -> dict[str, object]:
    return {f.subject: f for f in result.findings if f.kind == kind}  # type: ignore[attr-defined]


def test_a_second_drop_of_an_index_is_predicted_statically() -> None:
    result = inspect_migrations(FIXTURE, "0001", "0002", static=True)
    (finding,) = by_kind(result, "migrations/downgrade-will-fail").values()
    assert finding.subject == "0002"  # type: ignore[attr-defined]
    assert finding.message == (  # type: ignore[attr-defined]
        "The downgrade of `0002` will fail: index `ix_users_name` does not exist (removed by the "
        "upgrade of `0002`), at `downgrade()` (0002_lookup_index.py:17): "
        "`op.drop_index('ix_users_name', table_name='users')` (predicted from the code of the "
        "steps before it)."
    )


def test_the_round_trip_answers_the_prediction() -> None:
    """The round trip ran 0002's downgrade: it failed, and the prediction is its evidence."""
    result = inspect_migrations(FIXTURE, "0001", "0002")
    assert "0002" not in by_kind(result, "migrations/downgrade-will-fail")
    failed = by_kind(result, "migrations/downgrade-failed")["0002"]
    assert failed.evidence["predicted"] == [  # type: ignore[attr-defined]
        "index `ix_users_name` does not exist (removed by the upgrade of `0002`)"
    ]


def test_a_table_dropped_before_its_referrers_fails_where_foreign_keys_are_enforced(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "fk"
    shutil.copytree(FIXTURE, folder)
    (folder / "versions" / "0002_lookup_index.py").unlink()
    (folder / "versions" / "0002_orders.py").write_text(
        '"""Orders of accounts."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        'revision = "0002"\ndown_revision = "0001"\n\n\ndef upgrade() -> None:\n'
        '    op.create_table("accounts", sa.Column("id", sa.Integer, primary_key=True))\n'
        '    op.create_table(\n        "orders",\n'
        '        sa.Column("id", sa.Integer, primary_key=True),\n'
        '        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id")),\n    )\n\n\n'
        'def downgrade() -> None:\n    op.drop_table("accounts")\n    op.drop_table("orders")\n'
    )
    on_pg = inspect_migrations(folder, "0001", "0002", static=True, dialect="postgresql")
    reasons = by_kind(on_pg, "migrations/downgrade-will-fail")["0002"].evidence["reasons"]  # type: ignore[attr-defined]
    assert reasons == ["table `accounts` is still referenced by a foreign key of `orders`"]
    # SQLite (foreign keys off by default) drops it without a word.
    on_sqlite = inspect_migrations(folder, "0001", "0002", static=True, dialect="sqlite")
    assert by_kind(on_sqlite, "migrations/downgrade-will-fail") == {}


BUILDBOT = Path(__file__).parent.parent / "fixtures/realworld/alembic/buildbot/4.3.0"


def test_buildbot_as_shipped_statically() -> None:
    """Buildbot 4.3.0, 059 → 067 read as source only (no venv, no database): the two broken
    downgrades expected.yaml names from reading them (`static_will_fail`), with the reasons
    written there; on PostgreSQL also the drops of tables still referenced."""
    from compatcheck.migrations.sources.alembic import AlembicProject

    project = AlembicProject(config_file=BUILDBOT / "buildbot/db/migrations/alembic.ini")
    for dialect in ("sqlite", "postgresql"):
        result = inspect_migrations(project, "059", "067", static=True, dialect=dialect)
        found = by_kind(result, "migrations/downgrade-will-fail")
        assert sorted(found) == ["060", "067"]
        reasons = {rev: f.evidence["reasons"] for rev, f in found.items()}  # type: ignore[attr-defined]
        assert (
            "index `projects_name_hash` does not exist (removed by the downgrade of `060`)"
            in (reasons["060"])
        )
        for index in ("codebases_projects_name_hash", "codebase_commits_unique"):
            assert any(f"index `{index}` does not exist" in r for r in reasons["067"])
        referenced = "table `codebases` is still referenced by a foreign key of"
        assert any(r.startswith(referenced) for r in reasons["067"]) == (dialect != "sqlite")


def test_a_foreign_key_to_a_name_the_reader_cannot_resolve_is_no_reference(tmp_path: Path) -> None:
    """``sa.ForeignKey(Model.id)`` / ``ForeignKeyConstraint([...], REFS)`` (not literals, as MLflow
    writes them): read as no known reference, never a crash."""
    folder = tmp_path / "fk"
    shutil.copytree(FIXTURE, folder)
    (folder / "versions" / "0002_lookup_index.py").write_text(
        '"""FKs through names."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        'revision = "0002"\ndown_revision = "0001"\n\n\ndef upgrade() -> None:\n'
        '    op.create_table(\n        "orders",\n'
        '        sa.Column("user_id", sa.Integer, sa.ForeignKey(Users.id)),\n'
        '        sa.ForeignKeyConstraint(["user_id"], REFS),\n    )\n\n\n'
        'def downgrade() -> None:\n    op.drop_table("orders")\n'
    )
    result = inspect_migrations(folder, "0001", "0002", static=True, dialect="postgresql")
    assert by_kind(result, "migrations/downgrade-will-fail") == {}
