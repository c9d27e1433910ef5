"""``compatcheck.yaml``: load and validate, with ``file:line: problem`` errors.

The file is parsed with ``yaml.safe_load`` semantics; ``yaml.compose`` runs alongside to map every
key path to its line, because "unknown key `comand`" is useless without saying where. Unknown keys
are errors (a typo must not silently disable a check). Relative paths are resolved against the
config file's folder, and a target's ``cwd`` too, so the file works from any working directory.
Which keys a section allows, how a plain key is read and what an absent key defaults to come from
:mod:`compatcheck.config.declaration`; what is here is the checks that span keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compatcheck.arguments import MIGRATION_FRAMEWORKS
from compatcheck.config.declaration import CONFIG, section
from compatcheck.config.document import Loader
from compatcheck.config.model import (
    CommandTarget,
    Config,
    MetricsConfig,
    MigrationsConfig,
    ReadinessConfig,
    StoredTarget,
    Target,
    WarmupRequest,
    default,
    target_script_location,
)
from compatcheck.config.targets import parse_target
from compatcheck.errors import UsageError
from compatcheck.files import read_text
from compatcheck.manifest import probes_from_manifest
from compatcheck.yamlfile import MAX_YAML_BYTES, parse_yaml

_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _readiness(ld: Loader, raw: Any) -> ReadinessConfig:
    where: tuple[Any, ...] = ("readiness",)
    decl = section("readiness")
    data = ld.section(raw, where, decl)
    probes = _from_manifest(ld, data) if "from_manifest" in data else ReadinessConfig()
    if "from_manifest" not in data:
        for key in ("container", "workload"):
            if key in data:
                raise ld.error((*where, key), f"`readiness.{key}` needs `from_manifest`")
    path = ld.plain(data, where, decl.key("path")) if "path" in data else probes.path
    healthz = ld.plain(data, where, decl.key("healthz")) if "healthz" in data else probes.healthz
    expect_status = _status_codes(ld, data["expect_status"]) if "expect_status" in data else ()
    expect_json = None
    if "expect_json" in data:
        if not isinstance(data["expect_json"], dict):
            raise ld.error((*where, "expect_json"), "`readiness.expect_json` must be a mapping")
        expect_json = data["expect_json"]
    return ReadinessConfig(
        path=path,
        healthz=healthz,
        timeout=ld.plain(data, where, decl.key("timeout")),
        interval=ld.plain(data, where, decl.key("interval")),
        expect_status=expect_status,
        expect_json=expect_json,
        source=probes.source,
        manifest_ports=probes.manifest_ports,
        schemes=probes.schemes,
        headers=probes.headers,
    )


def _from_manifest(ld: Loader, data: Mapping[str, Any]) -> ReadinessConfig:
    """The probes of a Kubernetes manifest's container (``readiness.from_manifest``)."""
    where: tuple[Any, ...] = ("readiness",)
    if "path" in data or "healthz" in data:
        raise ld.error(where, "`readiness`: give either `from_manifest` or `path`/`healthz`")
    manifest = ld.path_in(data["from_manifest"], (*where, "from_manifest"), ld.path.parent)
    container = ld.string(data["container"], (*where, "container")) if "container" in data else None
    workload = ld.string(data["workload"], (*where, "workload")) if "workload" in data else None
    try:
        probes = probes_from_manifest(manifest, container, workload)
    except UsageError as exc:
        raise ld.error((*where, "from_manifest"), str(exc)) from None
    if "readiness" not in probes:
        raise ld.error(
            (*where, "from_manifest"), f"{manifest}: container has no httpGet readinessProbe"
        )
    ports: dict[str, int | str] = {}
    schemes: dict[str, str] = {}
    headers: dict[str, Mapping[str, str]] = {}
    for role, probe in probes.items():
        ports[role] = probe.port
        if probe.scheme != "http":
            schemes[role] = probe.scheme
        if probe.headers:
            headers[role] = dict(probe.headers)
    return ReadinessConfig(
        path=probes["readiness"].path,
        healthz=probes["liveness"].path if "liveness" in probes else None,
        source=f"{manifest}:{probes['readiness'].line}",
        manifest_ports=ports,
        schemes=schemes,
        headers=headers,
    )


def _status_codes(ld: Loader, raw: Any) -> tuple[int, ...]:
    where: tuple[Any, ...] = ("readiness", "expect_status")
    items = raw if isinstance(raw, list) else [raw]
    codes = []
    for i, code in enumerate(items):
        w = (*where, i) if isinstance(raw, list) else where
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise ld.error(w, "`readiness.expect_status` must list HTTP status codes")
        codes.append(code)
    return tuple(codes)


def _warmup(ld: Loader, raw: Any) -> tuple[WarmupRequest, ...]:
    if not isinstance(raw, list):
        raise ld.error(("warmup",), "`warmup` must be a list of requests")
    decl = section("warmup")
    out = []
    for i, item in enumerate(raw):
        where: tuple[Any, ...] = ("warmup", i)
        data = ld.section(item, where, decl)
        if "path" not in data:
            raise ld.error(where, f"`warmup[{i}]` needs a `path`")
        method = ld.string(data.get("method", default("warmup.method")), (*where, "method"))
        method = method.upper()
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
                path=ld.plain(data, where, decl.key("path")),
                headers=headers,
                json=data.get("json"),
                repeat=ld.plain(data, where, decl.key("repeat")),
            )
        )
    return tuple(out)


def _metrics(ld: Loader, raw: Any) -> MetricsConfig:
    where: tuple[Any, ...] = ("metrics",)
    decl = section("metrics")
    data = ld.section(raw, where, decl)
    return MetricsConfig(**{k.name: ld.plain(data, where, k) for k in decl.keys})


def _migrations(ld: Loader, raw: Any) -> MigrationsConfig:
    where: tuple[Any, ...] = ("migrations",)
    data = ld.section(raw, where, section("migrations"))
    given = [k for k in ("script_location", "dir", "alembic_ini") if k in data]
    if len(given) != 1:
        raise ld.error(where, "`migrations` needs `script_location`, `dir` or `alembic_ini` (one)")
    framework = ld.string(
        data.get("framework", default("migrations.framework")), (*where, "framework")
    )
    if framework not in MIGRATION_FRAMEWORKS:
        raise ld.error(
            (*where, "framework"),
            f"`migrations.framework` must be one of {', '.join(MIGRATION_FRAMEWORKS)}",
        )
    if framework not in ("auto", "alembic") and given != ["dir"]:
        raise ld.error(where, f"`migrations.framework: {framework}` reads a folder: give `dir`")
    if framework == "alembic" and given == ["dir"]:
        raise ld.error(where, "`migrations.dir` is a SQL folder: Alembic takes `script_location`")
    key = "dir" if given == ["dir"] else "script_location"
    location = ld.string(data.get(key, "."), (*where, key))
    database = ld.string(data.get("database", default("migrations.database")), (*where, "database"))
    if database != "sqlite" and "://" not in database:
        raise ld.error(
            (*where, "database"),
            "`migrations.database` must be `sqlite` or a server URL "
            "(postgresql+psycopg://..., mysql+pymysql://...)",
        )
    x = data.get("x", {})
    if not isinstance(x, dict):
        raise ld.error((*where, "x"), "`migrations.x` must be a mapping (KEY: VALUE, as -x K=V)")
    opt = {
        k: ld.string(data[k], (*where, k))
        for k in ("alembic_ini", "name", "python", "base_sql", "base_command")
        if k in data
    }
    # Kept relative: each command target resolves them against its own cwd (its release tree).
    return MigrationsConfig(
        script_location=Path(location),
        framework=framework,
        database=database,
        alembic_ini=Path(opt["alembic_ini"]) if "alembic_ini" in opt else None,
        name=opt.get("name", default("migrations.name")),
        x=tuple(f"{k}={ld.string(v, (*where, 'x', k))}" for k, v in x.items()),
        python=opt.get("python"),
        base_sql=(
            ld.path_in(opt["base_sql"], (*where, "base_sql"), ld.path.parent)
            if "base_sql" in opt
            else None
        ),
        base_command=opt.get("base_command"),
    )


def _refuse_password_in_argv(
    ld: Loader, target: Target, migrations: MigrationsConfig | None
) -> None:
    """A scratch URL carrying a password goes to a release through ``env``, never its argv.

    Trap: a command line is world-readable (``ps``, ``/proc/PID/cmdline``) and is the release's
    own ``sys.argv``; the scratch database's URL holds the server account's password.
    """
    if not isinstance(target, CommandTarget) or migrations is None:
        return
    if migrations.database == "sqlite":
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


def load_config(path: str | Path, *, store_given: bool = True) -> Config:
    """Read and validate a config file; every problem is a UsageError ``file:line: problem``.

    ``store_given=False`` (``check`` without ``--snapshot-dir``): a ``stored:`` target and no
    ``snapshot_dir`` is an error now, before anything starts, since the check would have
    nowhere to read it from.
    """
    p = Path(path)
    text = read_text(p, "config file", max_bytes=MAX_YAML_BYTES)
    return parse_config(text, p, store_given=store_given)


def parse_config(text: str, path: Path, *, store_given: bool = True) -> Config:
    """Validate the text of a config file at ``path`` (relative paths are resolved against it)."""
    path = path.resolve()
    doc = parse_yaml(text, path)
    ld = Loader(doc.path, doc.data, doc.lines)
    if doc.data is None:
        raise UsageError(f"{path}:1: empty config file")
    top = ld.section(doc.data, (), CONFIG)
    for required in ("old", "new"):
        if required not in top:
            raise UsageError(f"{path}:1: missing `{required}` target")
    service = ld.string(top["service"], ("service",)) if "service" in top else path.parent.name
    old = parse_target(ld, top["old"], "old")
    new = parse_target(ld, top["new"], "new")
    migrations = _migrations(ld, top["migrations"]) if "migrations" in top else None
    for t in (old, new):
        uses_db = isinstance(t, CommandTarget) and t.uses_database
        if uses_db and migrations is None and t.migrations is not None:
            raise ld.error(
                (t.role, "migrations"), f"`{t.role}.migrations` needs a top-level `migrations`"
            )
        _refuse_password_in_argv(ld, t, migrations)
        if uses_db and migrations is None and t.migrations is None:
            # Trap: without migrations the scratch database stays empty and the release fails
            # on its first query; the report would blame the release, not the config.
            raise ld.error(
                (t.role,),
                f"`{t.role}` takes `{{database_url}}` but the config has no `migrations:` "
                "section to build that database from",
            )
    config = Config(
        path=path,
        service=service,
        old=old,
        new=new,
        readiness=_readiness(ld, top["readiness"]) if "readiness" in top else ReadinessConfig(),
        warmup=_warmup(ld, top["warmup"]) if "warmup" in top else (),
        metrics=_metrics(ld, top["metrics"]) if "metrics" in top else MetricsConfig(),
        migrations=migrations,
        consumers=ld.plain(top, (), CONFIG.key("consumers")) or (),
        policy=ld.plain(top, (), CONFIG.key("policy")) or (),
        grace=ld.plain(top, (), CONFIG.key("grace")),
        snapshot_dir=_snapshot_dir(ld, top["snapshot_dir"]) if "snapshot_dir" in top else None,
        build_info=_build_info(ld, top["build_info"]) if "build_info" in top else None,
        registry_config=ld.plain(top, (), CONFIG.key("registry_config")),
    )
    _script_locations_exist(ld, config)
    if not store_given and config.snapshot_dir is None:
        for t in (config.old, config.new):
            if isinstance(t, StoredTarget):
                raise ld.error(
                    (t.role, "stored"), f"`{t.role}.stored` needs `snapshot_dir` or --snapshot-dir"
                )
    return config


def _script_locations_exist(ld: Loader, config: Config) -> None:
    """Each release's migrations folder exists (the one its scratch database is built from, the
    one its Alembic head is read from): checked now (``file:line``, exit 2), not after both
    releases were started and scraped (a url or snapshot target's folder is resolved against the
    config's folder, a command target's against its ``cwd``)."""
    both = (config.old, config.new)
    builds = [t for t in both if isinstance(t, CommandTarget) and t.uses_database]
    # The tree a scratch database is built from is named first: without it nothing can run.
    for t in [*builds, *(t for t in both if t not in builds)]:
        location = target_script_location(config, t)
        if location is None or location.is_dir():
            continue
        where: tuple[Any, ...] = (
            (t.role, "migrations")
            if t.migrations is not None
            else ("migrations", "script_location")
        )
        raise ld.error(where, f"{t.role}'s migrations folder {location} does not exist")


def _build_info(ld: Loader, value: Any) -> str:
    """A family name as PromQL selects it (``shop_build_info``, ``target_info``)."""
    text = ld.string(value, ("build_info",))
    if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        raise ld.error(("build_info",), f"`build_info`: {text!r} is not a metric family name")
    return text


def _snapshot_dir(ld: Loader, value: Any) -> str:
    """A store is an http(s) base URL or a directory (relative to the config file)."""
    text = ld.string(value, ("snapshot_dir",))
    if text.startswith(("http://", "https://")):
        return text
    return str(ld.path_in(text, ("snapshot_dir",), ld.path.parent))
