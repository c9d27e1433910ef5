"""``compatcheck.yaml``: load and validate, with ``file:line: problem`` errors.

The file is parsed with ``yaml.safe_load`` semantics; ``yaml.compose`` runs alongside to map every
key path to its line, because "unknown key `comand`" is useless without saying where. Unknown keys
are errors (a typo must not silently disable a check). Relative paths are resolved against the
config file's folder, and a target's ``cwd`` too, so the file works from any working directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compatcheck.errors import UsageError
from compatcheck.files import read_text
from compatcheck.masking import mask_secrets
from compatcheck.yamlfile import MAX_YAML_BYTES, YamlDocument, parse_yaml

PLACEHOLDERS = ("port", "host", "database_url", "python")
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]*)\}")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Expect:
    """What OLD is expected to report in its build info (``artifact/version-mismatch``)."""

    version: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class TargetConfig:
    """How to reach one release. Exactly one of command / url / snapshot / exposition is set."""

    role: str  # "old" | "new"
    label: str
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = None
    snapshot: Path | None = None
    exposition: Path | None = None
    #: A version name in the snapshot store (``snapshot_dir``/``--snapshot-dir``):
    #: ``<store>/<service>/<stored>.snapshot.json``.
    stored: str | None = None
    image: str | None = None
    #: What :func:`compatcheck.artifact.inspect_artifact` reads: ``image``, ``oci_layout``,
    #: ``registry``, ``release`` and ``kubernetes``, paths resolved; empty when none is given.
    artifact: Mapping[str, Any] = field(default_factory=dict)
    expect: Expect = Expect()
    #: Alembic script location of this release (default: ``migrations.script_location`` resolved
    #: against ``cwd``); its head is what the release's scratch database is upgraded to.
    migrations: Path | None = None
    line: int = 0

    @property
    def kind(self) -> str:
        if self.command is not None:
            return "command"
        if self.url is not None:
            return "url"
        if self.snapshot is not None:
            return "snapshot"
        if self.stored is not None:
            return "stored"
        return "exposition"


@dataclass(frozen=True)
class ReadinessConfig:
    """The readiness contract. ``healthz`` is probed too when set (a manifest's livenessProbe)."""

    path: str = "/readyz"
    healthz: str | None = None
    timeout: float = 30.0
    interval: float = 0.05
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
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    repeat: int = 1


@dataclass(frozen=True)
class MetricsConfig:
    path: str = "/metrics"
    scrapes: int = 2
    interval: float = 0.2
    timeout: float = 10.0
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class MigrationsConfig:
    #: Relative to each release tree; with ``alembic_ini``, what that file names (``.``: unused).
    script_location: Path
    #: ``sqlite`` (a temporary file per target) or a server URL on which scratch databases are made.
    database: str = "sqlite"
    #: The project's ``alembic.ini`` (relative to each release tree), its section, ``-x`` values,
    #: the application's interpreter, and the schema before the first revision (issue 12).
    alembic_ini: Path | None = None
    name: str = "alembic"
    x: tuple[str, ...] = ()
    python: str | None = None
    base_sql: Path | None = None
    base_command: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    service: str
    old: TargetConfig
    new: TargetConfig
    readiness: ReadinessConfig = ReadinessConfig()
    warmup: tuple[WarmupRequest, ...] = ()
    metrics: MetricsConfig = MetricsConfig()
    migrations: MigrationsConfig | None = None
    consumers: tuple[Path, ...] = ()
    policy: tuple[Path, ...] = ()
    #: Seconds between SIGTERM and SIGKILL when stopping a target.
    grace: float = 5.0
    #: Store of release contracts (directory or http(s) base URL) for ``stored`` targets.
    snapshot_dir: str | None = None
    #: The family that carries the service's build identity (``build_info: shop_build_info``);
    #: by default the service's own ``<service>_build_info`` is preferred over a runtime's.
    build_info: str | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def target(self, role: str) -> TargetConfig:
        if role == "old":
            return self.old
        if role == "new":
            return self.new
        raise UsageError(f"unknown target {role!r}: expected 'old' or 'new'")


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


# --- validation ------------------------------------------------------------------------------


class _Loader(YamlDocument):
    """Config-specific validators on top of the generic ones (HTTP paths, durations)."""

    def http_path(self, value: Any, where: tuple[Any, ...]) -> str:
        text = self.string(value, where)
        if not text.startswith("/"):
            raise self.error(where, f"`{self.dotted(where)}` must start with `/` (got {text!r})")
        return text

    def duration(self, value: Any, where: tuple[Any, ...]) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(where, f"`{self.dotted(where)}`: {exc}") from None


# --- sections --------------------------------------------------------------------------------

_TOP_KEYS = (
    "service",
    "old",
    "new",
    "readiness",
    "warmup",
    "metrics",
    "migrations",
    "consumers",
    "policy",
    "grace",
    "snapshot_dir",
    "build_info",
)
_TARGET_KEYS = (
    "label",
    "command",
    "env",
    "cwd",
    "url",
    "snapshot",
    "exposition",
    "stored",
    "image",
    "oci_layout",
    "registry",
    "release",
    "kubernetes",
    "expect",
    "migrations",
)
_SOURCE_KEYS = ("command", "url", "snapshot", "exposition", "stored")


def _target(ld: _Loader, raw: Any, role: str) -> TargetConfig:
    where: tuple[Any, ...] = (role,)
    data = ld.mapping(raw, where, _TARGET_KEYS)
    sources = [k for k in _SOURCE_KEYS if k in data]
    if len(sources) != 1:
        problem = "has none" if not sources else "has " + ", ".join(f"`{s}`" for s in sources)
        raise ld.error(
            where,
            f"`{role}` needs exactly one of command, url, snapshot, exposition, stored ({problem})",
        )
    base = ld.path.parent
    cwd = ld.path_in(data["cwd"], (*where, "cwd"), base) if "cwd" in data else None
    if cwd is not None and not cwd.is_dir():
        raise ld.error((*where, "cwd"), f"`{role}.cwd`: no such directory: {cwd}")
    command: tuple[str, ...] | None = None
    if "command" in data:
        argv = data["command"]
        if isinstance(argv, str):
            raise ld.error(
                (*where, "command"),
                f'`{role}.command` must be an argv list, e.g. ["{{python}}", "-m", "app"]',
            )
        items = ld.string_list(argv, (*where, "command"))
        if not items:
            raise ld.error((*where, "command"), f"`{role}.command` is empty")
        for i, item in enumerate(items):
            _check_placeholders(ld, item, (*where, "command", i))
        command = tuple(items)
    env: dict[str, str] = {}
    if "env" in data:
        raw_env = data["env"]
        if not isinstance(raw_env, dict):
            raise ld.error((*where, "env"), f"`{role}.env` must be a mapping")
        for k, v in raw_env.items():
            env[k] = ld.string(v, (*where, "env", k))
            _check_placeholders(ld, env[k], (*where, "env", k))
    if (env or cwd) and command is None:
        raise ld.error(where, f"`{role}`: `env` and `cwd` only apply to a `command` target")
    url = None
    if "url" in data:
        url = ld.string(data["url"], (*where, "url"))
        if not re.match(r"^https?://[^/]+", url):
            raise ld.error((*where, "url"), f"`{role}.url` must be an http(s) URL")
        url = url.rstrip("/")
    snapshot = (
        ld.path_in(data["snapshot"], (*where, "snapshot"), base) if "snapshot" in data else None
    )
    exposition = (
        ld.path_in(data["exposition"], (*where, "exposition"), base)
        if "exposition" in data
        else None
    )
    for key, p in (("snapshot", snapshot), ("exposition", exposition)):
        if p is not None and not p.is_file():
            raise ld.error((*where, key), f"`{role}.{key}`: no such file: {p}")
    expect = Expect()
    if "expect" in data:
        ex = ld.mapping(data["expect"], (*where, "expect"), ("version", "revision"))
        expect = Expect(
            version=ld.string(ex["version"], (*where, "expect", "version"))
            if "version" in ex
            else None,
            revision=ld.string(ex["revision"], (*where, "expect", "revision"))
            if "revision" in ex
            else None,
        )
    migrations = None
    if "migrations" in data:
        migrations = ld.path_in(data["migrations"], (*where, "migrations"), cwd or base)
    stored = _stored_name(ld, data["stored"], (*where, "stored")) if "stored" in data else None
    if "label" in data:
        label = ld.string(data["label"], (*where, "label"))
    else:
        label = _default_label(role, cwd=cwd, url=url, file=snapshot or exposition, stored=stored)
    artifact: dict[str, Any] = {}
    for key in ("image", "registry"):
        if key in data:
            artifact[key] = ld.string(data[key], (*where, key))
    if "oci_layout" in data:
        artifact["oci_layout"] = str(ld.path_in(data["oci_layout"], (*where, "oci_layout"), base))
    if "release" in data:
        rel = ld.mapping(data["release"], (*where, "release"), ("path", "sha256", "current_link"))
        artifact["release"] = {k: ld.string(v, (*where, "release", k)) for k, v in rel.items()}
    if "kubernetes" in data:
        k8s = ld.mapping(
            data["kubernetes"], (*where, "kubernetes"), ("deployment", "container", "namespace")
        )
        artifact["kubernetes"] = {
            k: ld.string(v, (*where, "kubernetes", k)) for k, v in k8s.items()
        }
    return TargetConfig(
        role=role,
        label=label,
        command=command,
        env=env,
        cwd=cwd,
        url=url,
        snapshot=snapshot,
        exposition=exposition,
        stored=stored,
        image=artifact.get("image"),
        artifact=artifact,
        expect=expect,
        migrations=migrations,
        line=ld.line_of(where),
    )


def _default_label(
    role: str, *, cwd: Path | None, url: str | None, file: Path | None, stored: str | None
) -> str:
    """A label that names the release when the config gives none: messages then read
    "OLD `v1` ..." rather than "OLD `OLD` ..."."""
    if stored:
        return stored
    if file is not None:
        return file.name.removesuffix(".json").removesuffix(".snapshot").removesuffix(".prom")
    if url is not None:
        # host:port only: the userinfo (``user:password@``) must not become a label.
        return urlsplit(url).netloc.rpartition("@")[2] or mask_secrets(url)
    if cwd is not None:
        return cwd.name
    return role.upper()


def _stored_name(ld: _Loader, value: Any, where: tuple[Any, ...]) -> str:
    from compatcheck.store import validate_name

    try:
        return validate_name(ld.string(value, where), "version")
    except UsageError as exc:
        raise ld.error(where, f"`{ld.dotted(where)}`: {exc}") from None


def _check_placeholders(ld: _Loader, text: str, where: tuple[Any, ...]) -> None:
    for name in _PLACEHOLDER_RE.findall(text):
        if name not in PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ld.error(where, f"unknown placeholder `{{{name}}}` (allowed: {allowed})")


def _readiness(ld: _Loader, raw: Any) -> ReadinessConfig:
    where: tuple[Any, ...] = ("readiness",)
    data = ld.mapping(
        raw,
        where,
        (
            "path",
            "healthz",
            "timeout",
            "interval",
            "expect_status",
            "expect_json",
            "from_manifest",
            "container",
            "workload",
        ),
    )
    path = "/readyz"
    healthz: str | None = None
    source = ""
    ports: dict[str, int | str] = {}
    schemes: dict[str, str] = {}
    headers: dict[str, Mapping[str, str]] = {}
    if "from_manifest" in data:
        if "path" in data or "healthz" in data:
            raise ld.error(where, "`readiness`: give either `from_manifest` or `path`/`healthz`")
        manifest = ld.path_in(data["from_manifest"], (*where, "from_manifest"), ld.path.parent)
        container = (
            ld.string(data["container"], (*where, "container")) if "container" in data else None
        )
        workload = ld.string(data["workload"], (*where, "workload")) if "workload" in data else None
        from compatcheck.manifest import probes_from_manifest

        try:
            probes = probes_from_manifest(manifest, container, workload)
        except UsageError as exc:
            raise ld.error((*where, "from_manifest"), str(exc)) from None
        if "readiness" not in probes:
            raise ld.error(
                (*where, "from_manifest"), f"{manifest}: container has no httpGet readinessProbe"
            )
        path = probes["readiness"].path
        source = f"{manifest}:{probes['readiness'].line}"
        if "liveness" in probes:
            healthz = probes["liveness"].path
        for role, probe in probes.items():
            ports[role] = probe.port
            if probe.scheme != "http":
                schemes[role] = probe.scheme
            if probe.headers:
                headers[role] = dict(probe.headers)
    else:
        for key in ("container", "workload"):
            if key in data:
                raise ld.error((*where, key), f"`readiness.{key}` needs `from_manifest`")
    if "path" in data:
        path = ld.http_path(data["path"], (*where, "path"))
    if "healthz" in data:
        healthz = ld.http_path(data["healthz"], (*where, "healthz"))
    expect_status: tuple[int, ...] = ()
    if "expect_status" in data:
        raw_status = data["expect_status"]
        items = raw_status if isinstance(raw_status, list) else [raw_status]
        codes = []
        for i, code in enumerate(items):
            w = (
                (*where, "expect_status", i)
                if isinstance(raw_status, list)
                else (*where, "expect_status")
            )
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                raise ld.error(w, "`readiness.expect_status` must list HTTP status codes")
            codes.append(code)
        expect_status = tuple(codes)
    expect_json = None
    if "expect_json" in data:
        if not isinstance(data["expect_json"], dict):
            raise ld.error((*where, "expect_json"), "`readiness.expect_json` must be a mapping")
        expect_json = data["expect_json"]
    return ReadinessConfig(
        path=path,
        healthz=healthz,
        timeout=ld.duration(data["timeout"], (*where, "timeout")) if "timeout" in data else 30.0,
        interval=ld.duration(data["interval"], (*where, "interval"))
        if "interval" in data
        else 0.05,
        expect_status=expect_status,
        expect_json=expect_json,
        source=source,
        manifest_ports=ports,
        schemes=schemes,
        headers=headers,
    )


def _warmup(ld: _Loader, raw: Any) -> tuple[WarmupRequest, ...]:
    if not isinstance(raw, list):
        raise ld.error(("warmup",), "`warmup` must be a list of requests")
    out = []
    for i, item in enumerate(raw):
        where: tuple[Any, ...] = ("warmup", i)
        data = ld.mapping(item, where, ("method", "path", "headers", "json", "repeat"))
        if "path" not in data:
            raise ld.error(where, f"`warmup[{i}]` needs a `path`")
        method = ld.string(data.get("method", "GET"), (*where, "method")).upper()
        if method not in _HTTP_METHODS:
            raise ld.error((*where, "method"), f"`warmup[{i}].method`: unknown method {method!r}")
        headers: dict[str, str] = {}
        if "headers" in data:
            hd = data["headers"]
            if not isinstance(hd, dict):
                raise ld.error((*where, "headers"), f"`warmup[{i}].headers` must be a mapping")
            headers = {str(k): ld.string(v, (*where, "headers", k)) for k, v in hd.items()}
        out.append(
            WarmupRequest(
                method=method,
                path=ld.http_path(data["path"], (*where, "path")),
                headers=headers,
                json=data.get("json"),
                repeat=ld.integer(data["repeat"], (*where, "repeat"), 1) if "repeat" in data else 1,
            )
        )
    return tuple(out)


def _metrics(ld: _Loader, raw: Any) -> MetricsConfig:
    where: tuple[Any, ...] = ("metrics",)
    data = ld.mapping(raw, where, ("path", "scrapes", "interval", "timeout", "max_bytes"))
    d = MetricsConfig()
    return MetricsConfig(
        path=ld.http_path(data["path"], (*where, "path")) if "path" in data else d.path,
        scrapes=ld.integer(data["scrapes"], (*where, "scrapes"), 1)
        if "scrapes" in data
        else d.scrapes,
        interval=ld.duration(data["interval"], (*where, "interval"))
        if "interval" in data
        else d.interval,
        timeout=ld.duration(data["timeout"], (*where, "timeout"))
        if "timeout" in data
        else d.timeout,
        max_bytes=ld.integer(data["max_bytes"], (*where, "max_bytes"), 1)
        if "max_bytes" in data
        else d.max_bytes,
    )


def _migrations(ld: _Loader, raw: Any) -> MigrationsConfig:
    where: tuple[Any, ...] = ("migrations",)
    keys = ("script_location", "database", "alembic_ini", "name", "x", "python", "base_sql")
    data = ld.mapping(raw, where, (*keys, "base_command"))
    if ("script_location" in data) == ("alembic_ini" in data):
        raise ld.error(where, "`migrations` needs `script_location` or `alembic_ini` (one)")
    location = ld.string(data.get("script_location", "."), (*where, "script_location"))
    database = ld.string(data.get("database", "sqlite"), (*where, "database"))
    if database != "sqlite" and "://" not in database:
        raise ld.error(
            (*where, "database"),
            "`migrations.database` must be `sqlite` or a server URL "
            "(postgresql+psycopg://..., mysql+pymysql://...)",
        )
    x = data.get("x", {})
    if not isinstance(x, dict):
        raise ld.error((*where, "x"), "`migrations.x` must be a mapping (KEY: VALUE, as -x K=V)")
    opt = {k: ld.string(data[k], (*where, k)) for k in keys[2:] if k in data and k != "x"}
    if "base_command" in data:
        opt["base_command"] = ld.string(data["base_command"], (*where, "base_command"))
    # Kept relative: each command target resolves them against its own cwd (its release tree).
    return MigrationsConfig(
        script_location=Path(location),
        database=database,
        alembic_ini=Path(opt["alembic_ini"]) if "alembic_ini" in opt else None,
        name=opt.get("name", "alembic"),
        x=tuple(f"{k}={ld.string(v, (*where, 'x', k))}" for k, v in x.items()),
        python=opt.get("python"),
        base_sql=ld.path_in(opt["base_sql"], (*where, "base_sql"), ld.path.parent)
        if "base_sql" in opt
        else None,
        base_command=opt.get("base_command"),
    )


def _refuse_password_in_argv(
    ld: _Loader, target: TargetConfig, migrations: MigrationsConfig | None
) -> None:
    """A scratch URL carrying a password goes to a release through ``env``, never its argv.

    Trap: a command line is world-readable (``ps``, ``/proc/PID/cmdline``) and is the release's
    own ``sys.argv``; the scratch database's URL holds the server account's password.
    """
    if target.command is None or migrations is None or migrations.database == "sqlite":
        return
    try:
        password = urlsplit(migrations.database).password
    except ValueError:
        return
    if password and any("{database_url}" in a for a in target.command):
        raise ld.error(
            (target.role, "command"),
            "`{database_url}` in a command line would show the database password to every "
            "user of this machine (ps); pass it in `env` instead "
            '(e.g. `env: {DATABASE_URL: "{database_url}"}`)',
        )


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; every problem is a UsageError ``file:line: problem``."""
    p = Path(path)
    return parse_config(read_text(p, "config file", max_bytes=MAX_YAML_BYTES), p)


def parse_config(text: str, path: Path) -> Config:
    path = path.resolve()
    doc = parse_yaml(text, path)
    ld = _Loader(doc.path, doc.data, doc.lines)
    data = doc.data
    if data is None:
        raise UsageError(f"{path}:1: empty config file")
    top = ld.mapping(data, (), _TOP_KEYS)
    for required in ("old", "new"):
        if required not in top:
            raise UsageError(f"{path}:1: missing `{required}` target")
    service = ld.string(top["service"], ("service",)) if "service" in top else path.parent.name
    old = _target(ld, top["old"], "old")
    new = _target(ld, top["new"], "new")
    migrations = _migrations(ld, top["migrations"]) if "migrations" in top else None
    for t in (old, new):
        uses_db = t.command is not None and any(
            "{database_url}" in s for s in (*t.command, *t.env.values())
        )
        if uses_db and migrations is None and t.migrations is not None:
            raise ld.error(
                (t.role, "migrations"), f"`{t.role}.migrations` needs a top-level `migrations`"
            )
        _refuse_password_in_argv(ld, t, migrations)
    return Config(
        path=path,
        service=service,
        old=old,
        new=new,
        readiness=_readiness(ld, top["readiness"]) if "readiness" in top else ReadinessConfig(),
        warmup=_warmup(ld, top["warmup"]) if "warmup" in top else (),
        metrics=_metrics(ld, top["metrics"]) if "metrics" in top else MetricsConfig(),
        migrations=migrations,
        consumers=tuple(
            ld.path_in(v, ("consumers", i), path.parent)
            for i, v in enumerate(ld.string_list(top["consumers"], ("consumers",)))
        )
        if "consumers" in top
        else (),
        policy=tuple(
            ld.path_in(v, ("policy", i), path.parent)
            for i, v in enumerate(ld.string_list(top["policy"], ("policy",)))
        )
        if "policy" in top
        else (),
        grace=ld.duration(top["grace"], ("grace",)) if "grace" in top else 5.0,
        snapshot_dir=_snapshot_dir(ld, top["snapshot_dir"]) if "snapshot_dir" in top else None,
        build_info=_build_info(ld, top["build_info"]) if "build_info" in top else None,
    )


def _build_info(ld: _Loader, value: Any) -> str:
    """A family name as PromQL selects it (``shop_build_info``, ``target_info``)."""
    text = ld.string(value, ("build_info",))
    if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        raise ld.error(("build_info",), f"`build_info`: {text!r} is not a metric family name")
    return text


def _snapshot_dir(ld: _Loader, value: Any) -> str:
    """A store is an http(s) base URL or a directory (relative to the config file)."""
    text = ld.string(value, ("snapshot_dir",))
    if text.startswith(("http://", "https://")):
        return text
    return str(ld.path_in(text, ("snapshot_dir",), ld.path.parent))


def target_alembic_ini(config: Config, target: TargetConfig) -> Path | None:
    """The release's ``alembic.ini`` (``migrations.alembic_ini`` against its tree), or None."""
    mig = config.migrations
    if mig is None or mig.alembic_ini is None:
        return None
    if mig.alembic_ini.is_absolute():
        return mig.alembic_ini
    return (target.cwd or config.base_dir) / mig.alembic_ini


def target_script_location(config: Config, target: TargetConfig) -> Path | None:
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
    return (target.cwd or config.base_dir) / loc
