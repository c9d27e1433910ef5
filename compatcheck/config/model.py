"""The validated config: frozen dataclasses whose defaults come from the declaration.

A target is one of five types, one per way of reaching a release (:data:`Target`); code that
needs a command, a URL or a file matches on the type instead of testing which optional is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compatcheck.config.declaration import CONFIG
from compatcheck.errors import UsageError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: object) -> float:
    """``30s``, ``500ms``, ``2m``, ``1h`` or a bare number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration like 30s")
    m = _DURATION_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a duration (use e.g. 500ms, 30s, 2m)")
    number = float(m.group(1))
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]
    return number * scale


def default(dotted: str) -> Any:
    """The declared default of ``section.key`` as the dataclasses hold it (durations in s)."""
    where, _, name = dotted.rpartition(".")
    key = CONFIG.key(where).key(name) if where else CONFIG.key(name)
    return parse_duration(key.default) if key.type == "duration" else key.default


@dataclass(frozen=True)
class Expect:
    """What a release is expected to report in its build info (``artifact/version-mismatch``)."""

    version: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class ArtifactSpec:
    """A target's artifact, validated at load time: what ``artifact/*`` inspects.

    Paths are resolved; :meth:`spec` is the mapping :func:`compatcheck.artifact.inspect_artifact`
    reads (empty when the target names no artifact).
    """

    image: str | None = None
    oci_layout: str | None = None
    registry: str | None = None
    release: Mapping[str, str] | None = None
    kubernetes: Mapping[str, str] | None = None

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("image", "registry", "oci_layout", "release", "kubernetes"):
            value = getattr(self, name)
            if value is not None:
                out[name] = dict(value) if isinstance(value, Mapping) else value
        return out


@dataclass(frozen=True, kw_only=True)
class _Target:
    """What every target has, whichever way it reaches its release."""

    kind: ClassVar[str]
    role: str  # "old" | "new"
    label: str
    expect: Expect = Expect()
    artifact: ArtifactSpec = ArtifactSpec()
    #: Alembic script location of this release (default: ``migrations.script_location`` resolved
    #: against ``cwd``); its head is what the release's scratch database is upgraded to.
    migrations: Path | None = None
    #: The line of the target's key in the config file.
    line: int = 0

    @property
    def image(self) -> str | None:
        return self.artifact.image


@dataclass(frozen=True, kw_only=True)
class CommandTarget(_Target):
    """A release compatcheck starts: an argv template, its environment and working directory."""

    kind: ClassVar[str] = "command"
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    @property
    def uses_database(self) -> bool:
        """Its argv or env takes ``{database_url}``: it gets a scratch database."""
        return any("{database_url}" in s for s in (*self.command, *self.env.values()))


@dataclass(frozen=True, kw_only=True)
class UrlTarget(_Target):
    """A release that already runs, at its base URL."""

    kind: ClassVar[str] = "url"
    url: str


@dataclass(frozen=True, kw_only=True)
class SnapshotTarget(_Target):
    """A snapshot file recorded earlier."""

    kind: ClassVar[str] = "snapshot"
    snapshot: Path


@dataclass(frozen=True, kw_only=True)
class ExpositionTarget(_Target):
    """An exposition file: the metrics only."""

    kind: ClassVar[str] = "exposition"
    exposition: Path


@dataclass(frozen=True, kw_only=True)
class StoredTarget(_Target):
    """A version name in the snapshot store: ``<store>/<service>/<stored>.snapshot.json``."""

    kind: ClassVar[str] = "stored"
    stored: str


@dataclass(frozen=True, kw_only=True)
class ContractTarget(_Target):
    """The contract attached to an image digest (``oci:IMAGE@sha256:…`` or
    ``oci-layout:DIR@sha256:…``, a layout folder made absolute against the config file)."""

    kind: ClassVar[str] = "contract"
    contract: str


Target = (
    CommandTarget | UrlTarget | SnapshotTarget | ExpositionTarget | StoredTarget | ContractTarget
)


@dataclass(frozen=True)
class ReadinessConfig:
    """The readiness contract. ``healthz`` is probed too when set (a manifest's livenessProbe)."""

    path: str = default("readiness.path")
    healthz: str | None = None
    timeout: float = default("readiness.timeout")
    interval: float = default("readiness.interval")
    expect_status: tuple[int, ...] = ()
    expect_json: Mapping[str, Any] | None = None
    #: Where the probe paths came from (``k8s/deployment.yaml:42``), for evidence.
    source: str = ""
    #: Ports the manifest declared for the probes (the local run maps them onto ``{port}``).
    manifest_ports: Mapping[str, int | str] = field(default_factory=dict)
    #: Per probe role (``readiness``, ``liveness``): ``https`` when the manifest's probe says
    #: ``scheme: HTTPS`` (probed over TLS, unverified, as the kubelet does); absent: plain HTTP.
    schemes: Mapping[str, str] = field(default_factory=dict)
    #: Per probe role: the manifest's ``httpHeaders``, sent with every probe.
    headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def probe_url(self, base_url: str, role: str) -> str:
        """The URL of the ``readiness`` or ``liveness`` probe of a target at ``base_url``."""
        path = self.path if role == "readiness" else self.healthz or ""
        scheme = self.schemes.get(role)
        if scheme is not None:
            base_url = scheme + base_url[base_url.index("://") :]
        return base_url + path


@dataclass(frozen=True)
class WarmupRequest:
    method: str = default("warmup.method")
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    repeat: int = default("warmup.repeat")


@dataclass(frozen=True)
class MetricsConfig:
    path: str = default("metrics.path")
    scrapes: int = default("metrics.scrapes")
    interval: float = default("metrics.interval")
    timeout: float = default("metrics.timeout")
    max_bytes: int = default("metrics.max_bytes")


@dataclass(frozen=True)
class MigrationsConfig:
    #: Relative to each release tree; with ``alembic_ini``, what that file names (``.``: unused).
    script_location: Path
    #: ``auto`` or the framework of the folder (``dir`` is kept here too, as the location).
    framework: str = default("migrations.framework")
    #: ``sqlite`` (a temporary file per target) or a server URL on which scratch databases are made.
    database: str = default("migrations.database")
    #: The project's ``alembic.ini`` (relative to each release tree), its section, ``-x`` values,
    #: the application's interpreter, and the schema before the first revision.
    alembic_ini: Path | None = None
    name: str = default("migrations.name")
    x: tuple[str, ...] = ()
    python: str | None = None
    base_sql: Path | None = None
    base_command: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    service: str
    old: Target
    new: Target
    readiness: ReadinessConfig = ReadinessConfig()
    warmup: tuple[WarmupRequest, ...] = ()
    metrics: MetricsConfig = MetricsConfig()
    migrations: MigrationsConfig | None = None
    #: Consumer files and folders, and ``prometheus:URL`` live sources (kept as written).
    consumers: tuple[Path | str, ...] = ()
    policy: tuple[Path, ...] = ()
    #: Seconds between SIGTERM and SIGKILL when stopping a target.
    grace: float = default("grace")
    #: Store of release contracts (directory or http(s) base URL) for ``stored`` targets.
    snapshot_dir: str | None = None
    #: A docker ``config.json`` with registry credentials for ``contract`` targets.
    registry_config: Path | None = None
    #: The family that carries the service's build identity (``build_info: shop_build_info``);
    #: by default the service's own ``<service>_build_info`` is preferred over a runtime's.
    build_info: str | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def target(self, role: str) -> Target:
        if role == "old":
            return self.old
        if role == "new":
            return self.new
        raise UsageError(f"unknown target {role!r}: expected 'old' or 'new'")


def target_alembic_ini(config: Config, target: Target) -> Path | None:
    """The release's ``alembic.ini`` (``migrations.alembic_ini`` against its tree), or None."""
    mig = config.migrations
    if mig is None or mig.alembic_ini is None:
        return None
    if mig.alembic_ini.is_absolute():
        return mig.alembic_ini
    cwd = target.cwd if isinstance(target, CommandTarget) else None
    return (cwd or config.base_dir) / mig.alembic_ini


def target_script_location(config: Config, target: Target) -> Path | None:
    """The Alembic script location of one release, or ``None`` when migrations are not configured.

    ``migrations.script_location`` is relative to each release tree (the target's ``cwd``) so one
    config describes both releases; an explicit ``<target>.migrations`` wins.
    """
    if target.migrations is not None:
        return target.migrations
    if config.migrations is None:
        return None
    loc = config.migrations.script_location
    if loc.is_absolute():
        return loc
    cwd = target.cwd if isinstance(target, CommandTarget) else None
    return (cwd or config.base_dir) / loc
