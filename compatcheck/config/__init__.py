"""``compatcheck.yaml``: where a ``check`` starts (config → targets → capture → compare → report).

* :mod:`.declaration` — every key, its type, default and meaning, declared once; the loader, the
  dataclass defaults, the JSON Schema and ``docs/config.md`` are derived from it;
* :mod:`.model` — the validated config as frozen dataclasses; a target is one of five types
  (:data:`Target`), one per way of reaching a release;
* :mod:`.document`, :mod:`.loader`, :mod:`.targets` — reading and validating the file, every
  problem one ``file:line: problem`` line;
* :mod:`.schema` — the JSON Schema of the file (``compatcheck config --schema``);
* :mod:`.template` — a first file (``compatcheck init``).

Nothing here is recorded: snapshots and reports hold what was observed, never the config.
"""

from __future__ import annotations

from compatcheck.config.declaration import PLACEHOLDERS
from compatcheck.config.loader import load_config, parse_config
from compatcheck.config.model import (
    ArtifactSpec,
    CommandTarget,
    Config,
    ContractTarget,
    Expect,
    ExpositionTarget,
    MetricsConfig,
    MigrationsConfig,
    ReadinessConfig,
    SnapshotTarget,
    StoredTarget,
    Target,
    UrlTarget,
    WarmupRequest,
    parse_duration,
    target_alembic_ini,
    target_script_location,
)

__all__ = [
    "PLACEHOLDERS",
    "ArtifactSpec",
    "CommandTarget",
    "Config",
    "ContractTarget",
    "Expect",
    "ExpositionTarget",
    "MetricsConfig",
    "MigrationsConfig",
    "ReadinessConfig",
    "SnapshotTarget",
    "StoredTarget",
    "Target",
    "UrlTarget",
    "WarmupRequest",
    "load_config",
    "parse_config",
    "parse_duration",
    "target_alembic_ini",
    "target_script_location",
]
