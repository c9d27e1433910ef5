"""Every key of ``compatcheck.yaml``, declared once: name, type, default, meaning.

The loader takes each section's allowed keys (in this order: the order its "allowed: ..." hint
lists them), each plain key's parser and each absent key's default from here; the config dataclasses
take their defaults from here; the JSON Schema (:mod:`compatcheck.config.jsonschema`) and the
reference page ``docs/config.md`` are rendered from here. A key added anywhere else would be
refused by the loader as unknown, so this is the one place to add one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: The value types a key can have; each has a parser in the loader, a JSON Schema fragment and a
#: name in the reference page.
TYPES = (
    "string",
    "path",
    "http_path",
    "url",
    "duration",
    "integer",
    "strings",
    "paths",
    "consumer_sources",
    "argv",
    "string_map",
    "mapping",
    "any",
    "status_codes",
    "method",
    "metric_name",
    "version_name",
    "database",
    "store",
    "section",
    "sections",
)


@dataclass(frozen=True)
class Key:
    """One key of the file: what it holds and what it means.

    ``default`` is written as a user would write it in YAML (``30s``), None when absent means
    "not set"; ``default_doc`` says what an absent key means when that is not a constant.
    ``keys`` are a ``section``'s (or each item of a ``sections`` list's) own keys.
    """

    name: str
    type: str
    doc: str
    default: Any = None
    required: bool = False
    minimum: int | None = None
    default_doc: str = ""
    keys: tuple[Key, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"config key `{self.name}`: unknown type {self.type!r}")

    def names(self) -> tuple[str, ...]:
        """The section's allowed keys, in declaration order."""
        return tuple(k.name for k in self.keys)

    def key(self, name: str) -> Key:
        for k in self.keys:
            if k.name == name:
                return k
        raise KeyError(f"{self.name}.{name}")


#: A target's ways of reaching a release: exactly one of them is given.
SOURCE_KEYS = ("command", "url", "snapshot", "exposition", "stored", "contract")
#: The target keys that describe its artifact (what ``artifact/*`` inspects).
ARTIFACT_KEYS = ("image", "oci_layout", "registry", "release", "kubernetes")
#: The placeholders a ``command`` or ``env`` value may hold.
PLACEHOLDERS = ("port", "host", "database_url", "python")


def _strings(*keys: tuple[str, str]) -> tuple[Key, ...]:
    """A section of plain string keys, each ``(name, meaning)``."""
    return tuple(Key(name, "string", doc) for name, doc in keys)


_TARGET = (
    Key("label", "string", "The version's name in reports.", default_doc="derived from the source"),
    Key(
        "command",
        "argv",
        "Start the release: an argv list; `{port}`, `{host}`, `{database_url}` and `{python}` "
        "are filled in.",
    ),
    Key("env", "string_map", "Environment of the command (placeholders allowed)."),
    Key("cwd", "path", "Working directory of the command (a release tree)."),
    Key("url", "url", "Base URL of a release that already runs."),
    Key("snapshot", "path", "A snapshot file recorded earlier (`compatcheck snapshot`)."),
    Key("exposition", "path", "A Prometheus/OpenMetrics exposition file: the metrics only."),
    Key("stored", "version_name", "A version in the snapshot store (`snapshot_dir`)."),
    Key(
        "contract",
        "string",
        "The contract attached to an image digest: `oci:IMAGE@sha256:…` (a registry, with "
        "`registry_config`) or `oci-layout:DIR@sha256:…` (DIR relative to the config file); a "
        "tag is refused (`artifact/not-pinned`).",
    ),
    Key("image", "string", "The release's OCI image reference (pinned: `...@sha256:...`)."),
    Key("oci_layout", "path", "An OCI image layout directory read instead of a registry."),
    Key("registry", "string", "Registry URL or host overriding the image reference's host."),
    Key(
        "release",
        "section",
        "A release binary and its expected digest (the symlink switch of a rollback).",
        keys=_strings(
            ("path", "The release file (or the symlink that selects it)."),
            ("sha256", "Its expected sha256 digest."),
            ("current_link", "The symlink a rollback switches."),
        ),
    ),
    Key(
        "kubernetes",
        "section",
        "The workload a rollback sets the image of (`kubectl set image`).",
        keys=_strings(
            ("deployment", "Deployment name."),
            ("container", "Container name."),
            ("namespace", "Namespace."),
        ),
    ),
    Key(
        "expect",
        "section",
        "Build info the release must report (`artifact/version-mismatch`).",
        keys=_strings(
            ("version", "Expected `version` label of the build info."),
            ("revision", "Expected `revision` label of the build info."),
        ),
    ),
    Key(
        "migrations",
        "path",
        "This release's Alembic script location (relative to `cwd`).",
        default_doc="`migrations.script_location` under `cwd`",
    ),
)

CONFIG = Key(
    "compatcheck.yaml",
    "section",
    "How to reach OLD and NEW, and what to compare.",
    keys=(
        Key("service", "string", "The service's name.", default_doc="the config folder's name"),
        Key("old", "section", "The release rolled back to.", required=True, keys=_TARGET),
        Key("new", "section", "The release running now.", required=True, keys=_TARGET),
        Key(
            "readiness",
            "section",
            "The readiness contract.",
            keys=(
                Key("path", "http_path", "Readiness endpoint.", default="/readyz"),
                Key("healthz", "http_path", "Health (liveness) endpoint, probed too when set."),
                Key("timeout", "duration", "How long a release may take to be ready.", "30s"),
                Key("interval", "duration", "Pause between two readiness polls.", "50ms"),
                Key("expect_status", "status_codes", "Status codes the endpoint must answer."),
                Key("expect_json", "mapping", "Fields the readiness body must hold."),
                Key(
                    "from_manifest",
                    "path",
                    "A Kubernetes manifest whose probes give `path` and `healthz`.",
                ),
                Key("container", "string", "The manifest's container (with `from_manifest`)."),
                Key("workload", "string", "The manifest's workload (with `from_manifest`)."),
            ),
        ),
        Key(
            "warmup",
            "sections",
            "Requests sent once a release is ready, before the metrics are scraped.",
            keys=(
                Key("method", "method", "HTTP method.", default="GET"),
                Key("path", "http_path", "Request path.", required=True),
                Key("headers", "string_map", "Request headers."),
                Key("json", "any", "A JSON body."),
                Key("repeat", "integer", "How many times to send it.", default=1, minimum=1),
            ),
        ),
        Key(
            "metrics",
            "section",
            "How the metrics are scraped.",
            keys=(
                Key("path", "http_path", "Metrics endpoint.", default="/metrics"),
                Key("scrapes", "integer", "Scrapes merged into one schema.", 2, minimum=1),
                Key("interval", "duration", "Pause between two scrapes.", default="200ms"),
                Key("timeout", "duration", "Timeout of one scrape.", default="10s"),
                Key("max_bytes", "integer", "Size cap of one scrape.", 64 * 1024 * 1024, minimum=1),
            ),
        ),
        Key(
            "migrations",
            "section",
            "The migrations between the two heads (Alembic or SQL files).",
            keys=(
                Key(
                    "framework",
                    "string",
                    "The tool whose files the migrations folder holds: `auto` (detected from "
                    "the files), `alembic`, `golang-migrate`, `goose`, `dbmate` or `flyway`.",
                    default="auto",
                ),
                Key(
                    "script_location",
                    "string",
                    "Alembic script location, relative to each release tree (`cwd`); this, "
                    "`dir` or `alembic_ini`.",
                ),
                Key(
                    "dir",
                    "string",
                    "The SQL migrations folder (golang-migrate, goose, dbmate, Flyway), relative "
                    "to each release tree; this, `script_location` or `alembic_ini`.",
                ),
                Key(
                    "database",
                    "database",
                    "`sqlite` (a temporary file) or a server URL on which scratch databases "
                    "are created and dropped.",
                    default="sqlite",
                ),
                Key(
                    "alembic_ini",
                    "string",
                    "The project's `alembic.ini`, relative to each release tree: its "
                    "`script_location` and `version_locations` are used, and `env.py` sees it "
                    "as `config_file_name`; this or `script_location`.",
                ),
                Key("name", "string", "The ini section (`alembic --name`).", default="alembic"),
                Key("x", "string_map", "`-x KEY=VALUE` arguments for `env.py`."),
                Key(
                    "python",
                    "string",
                    "The application's interpreter (its virtual environment), relative to each "
                    "release tree: everything that imports revisions or `env.py` runs there.",
                ),
                Key(
                    "base_sql",
                    "path",
                    "SQL run on the empty scratch database before the first revision (the "
                    "schema an application creates itself).",
                ),
                Key(
                    "base_command",
                    "string",
                    "A command run for the same purpose; `{database_url}` is filled in.",
                ),
            ),
        ),
        Key(
            "consumers",
            "consumer_sources",
            "Rule files, dashboards or folders whose breakage to name, or `prometheus:URL`: the "
            "rules that Prometheus has loaded, read once per run (`serve`: at most every "
            "`--live-consumers-max-age`).",
        ),
        Key("policy", "paths", "Policy files (severities, waivers)."),
        Key("grace", "duration", "Time between SIGTERM and SIGKILL when stopping a release.", "5s"),
        Key(
            "snapshot_dir",
            "store",
            "Store of release contracts (a directory or an http(s) base URL) for `stored`.",
        ),
        Key(
            "registry_config",
            "path",
            "A docker `config.json` with registry credentials for `contract` targets (and the "
            "hook's image targets).",
        ),
        Key(
            "build_info",
            "metric_name",
            "The family that carries the build identity.",
            default_doc="`<service>_build_info`, then other `*_build_info`, `target_info`",
        ),
    ),
)


def section(name: str) -> Key:
    """A top-level section's declaration (``readiness``, ``old``...)."""
    return CONFIG.key(name)


def walk(key: Key = CONFIG, prefix: str = "") -> Iterator[tuple[str, Key]]:
    """Every key with its dotted path (``readiness.timeout``; list items as ``warmup[].path``)."""
    for k in key.keys:
        dotted = f"{prefix}{k.name}"
        yield dotted, k
        if k.keys:
            yield from walk(k, dotted + ("[]." if k.type == "sections" else "."))
