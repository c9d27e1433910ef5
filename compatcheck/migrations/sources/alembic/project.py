"""How a project tells Alembic where its scripts are: an ini file, or a bare script location.

``compatcheck migrations --config alembic.ini [--name SECTION] [-x K=V]`` must behave as
``alembic -c alembic.ini -n SECTION -x K=V``: Alembic itself reads the ini (``script_location``
with ``package:path`` and ``%(here)s``, ``version_locations`` split by its ``path_separator``),
in the interpreter the revisions run in (``--python``: a ``package:path`` names a package only the
application's environment has). ``--script-location DIR`` stays: a config with that one option.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# The project lives in the light module that starts the ``--python`` helper before the heavy
# imports (the CLI builds it there); it is this module's as much as before.
from compatcheck.apphelper import AlembicProject as AlembicProject
from compatcheck.errors import InputError, UnavailableError

if TYPE_CHECKING:
    from compatcheck.config import Config, Target
    from compatcheck.migrations.sources.alembic.remote import HelperPool


def as_project(location: Path | str | AlembicProject) -> AlembicProject:
    """A project as given, or a bare script location as the project of that one option."""
    if isinstance(location, AlembicProject):
        return location
    return AlembicProject(script_location=Path(location))


@dataclass(frozen=True)
class Locations:
    """Where Alembic finds the scripts: ``env.py``'s folder and the version folders."""

    script_location: Path
    version_locations: tuple[Path, ...]
    recursive: bool = False


def resolve_locations(project: AlembicProject, pool: HelperPool | None = None) -> Locations:
    """The folders Alembic would use, resolved by Alembic (in the application's interpreter
    with ``--python``, by ``pool``'s helper when given); a bare ``--script-location`` is taken as
    it is."""
    if project.config_file is None:
        assert project.script_location is not None
        loc = project.script_location
        return Locations(loc, (loc / "versions",))
    if not project.config_file.is_file():
        raise InputError(f"--config {project.config_file}: no such file")
    if project.python is not None:
        from compatcheck.migrations.sources.alembic.remote import HelperProcess

        if pool is not None:
            found = pool.locations()
        else:
            with HelperProcess(project, url=None) as process:
                found = process.request({"op": "locations"})
        if "ok" not in found:
            raise UnavailableError(
                f"{project.shown}: Alembic in {project.python} could not read it: "
                f"{found.get('error')}"
            )
        raw = found["ok"]
    else:
        from compatcheck.migrations.sources.alembic import helper
        from compatcheck.migrations.sources.alembic.runner import ALEMBIC_LOCK

        try:
            with ALEMBIC_LOCK:
                raw = helper.locations(helper.make_config(project.spec(), None, io.StringIO()))
        except Exception as exc:
            raise InputError(f"{project.shown}: {helper.describe(exc)}") from None
    return Locations(
        Path(raw["script_location"]),
        tuple(Path(p) for p in raw["version_locations"]),
        bool(raw.get("recursive")),
    )


def release_project(config: Config, target: Target) -> Path | AlembicProject | None:
    """What ``check`` runs Alembic on for one release: its ``alembic.ini`` (``migrations.
    alembic_ini`` against the release tree, with ``name``, ``x`` and ``python``) or its script
    location; None when migrations are not configured."""
    from compatcheck.config import CommandTarget, target_alembic_ini, target_script_location

    ini = target_alembic_ini(config, target)
    mig = config.migrations
    if ini is None or mig is None:
        return target_script_location(config, target)
    python = mig.python
    if python is not None and "/" in python and not Path(python).is_absolute():
        cwd = target.cwd if isinstance(target, CommandTarget) else None
        python = str((cwd or config.base_dir) / python)
    return AlembicProject(config_file=ini, name=mig.name, x=mig.x, python=python)
