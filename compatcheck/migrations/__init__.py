"""Migrations: can the database follow a rollback from NEW to OLD, and how? (capture → **checks**)

Beside the metrics and readiness captures, ``check`` and ``compatcheck migrations`` inspect the
migration history between OLD's and NEW's heads; the findings and the report's ``migrations``
section (:class:`~.section.MigrationsSection`) go to the engine with the rest.

A framework-neutral core, and sources:

- :mod:`.steps` the model (steps, the ops each direction performs), :mod:`.graph` the history
  and the downgrade path, :mod:`.sql` SQL statements (the one splitter), :mod:`.sqlstatic` the
  one SQL reader (sqlglot), :mod:`.simulate` the replay that predicts failing downgrades;
- :mod:`.checks` static findings per step, :mod:`.findings` what the round trip observed,
  attributed to revisions, :mod:`.plans` the two rollback plans judged from them;
- :mod:`.scratch` the one scratch-database module, :mod:`.roundtrip` the round trip (with
  :mod:`.schema` and :mod:`.seeding`), :mod:`.live` read-only counts on a live database;
- :mod:`.sources` turn a framework's folder into steps and run them: :mod:`.sources.alembic`
  (revision files read as source, Alembic's graph, the one Alembic runner and its lock),
  :mod:`.sources.sqlfiles` (golang-migrate, goose, dbmate and Flyway folders and their runner);
- :mod:`.willfail` settles the static "will fail" against the round trip, :mod:`.walk` goes on
  after a failed downgrade, :mod:`.starting` makes the schema before the first revision;
- :mod:`.inspection` ties them together (:func:`inspect_migrations`), :mod:`.section` is what it
  reports.
"""

from compatcheck.migrations.inspection import MigrationsResult, inspect_migrations
from compatcheck.migrations.section import MigrationsSection

__all__ = ["MigrationsResult", "MigrationsSection", "inspect_migrations"]
