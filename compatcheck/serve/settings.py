"""What the policy hook is allowed to do, fixed when it starts: :class:`ServeSettings`.

Everything that could launch a process, name a file or reach a host comes from here (the operator's
command line and config file), never from a request: callers only name a service and versions.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compatcheck.errors import UsageError

# compatcheck.scrape (httpx) and compatcheck.yamlfile (PyYAML) are imported where used: every
# `compatcheck` command builds the serve parser from this module, and `compatcheck --help` must
# not pay ~0.15 s for an HTTP client and a YAML parser it never uses.

TOKEN_ENV = "COMPATCHECK_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """Server configuration. ``token=None`` means no authentication (loopback only, see below)."""

    snapshot_dir: str | None = None
    policy: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    #: Let callers give ``{"url": ...}`` targets: the hook then scrapes hosts callers name, so it
    #: is off unless the operator accepts that.
    allow_url_targets: bool = False
    max_body: int = 64 * 1024
    max_concurrent: int = 4
    check_timeout: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    fail_on: str = "error"
    #: Verdicts kept (LRU) and finished asynchronous checks kept for polling.
    cache_size: int = 512
    max_jobs: int = 1000
    #: Per-scrape budget for URL targets (also bounded by ``check_timeout``).
    scrape_timeout: float = 10.0
    #: Slow clients: a request's headers must arrive within ``header_timeout`` of the connection
    #: (or of the previous response), its body within ``body_timeout`` of the headers; at most
    #: ``max_connections`` connections are served at once (503 beyond).
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 512
    #: Registries and repositories whose image digests callers may name (``{"image": ...}``):
    #: ``reg.example.com/shop`` (one repository), ``reg.example.com/team/*`` (a subtree),
    #: ``reg.example.com`` or ``reg.example.com/*`` (a whole registry). Empty: image targets off.
    allow_images: tuple[str, ...] = ()
    #: Prometheus base URLs ``POST /v1/verify`` may ask (exactly, without a trailing slash): the
    #: hook would otherwise send requests wherever a caller points it. Empty: verify refused.
    allow_prometheus: tuple[str, ...] = ()
    #: A docker ``config.json`` with credentials for those registries.
    registry_config: str | None = None
    #: ``redis://HOST:PORT/DB``: asynchronous checks and verdicts shared by replicas (see
    #: :mod:`compatcheck.serve.state`). None: everything in this process.
    state: str | None = None
    #: How old the rules read from a ``prometheus:URL`` consumer may be before they are read
    #: again (see :mod:`compatcheck.serve.inputs`).
    live_consumers_max_age: float = 10.0

    def __post_init__(self) -> None:
        if self.max_body < 1:
            raise UsageError(f"--max-body must be at least 1 byte, got {self.max_body}")
        if self.max_concurrent < 1:
            raise UsageError(f"--max-concurrent must be at least 1, got {self.max_concurrent}")
        if self.check_timeout <= 0:
            raise UsageError(f"--check-timeout must be positive, got {self.check_timeout}")
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise UsageError("--header-timeout and --body-timeout must be positive")
        if self.max_connections < 2 * self.max_concurrent:
            raise UsageError(
                f"--max-connections ({self.max_connections}) must be at least twice "
                f"--max-concurrent ({self.max_concurrent})"
            )
        if self.cache_size < 0 or self.max_jobs < 1:
            raise UsageError("cache and job limits must be positive")
        if self.token is not None and not self.token:
            raise UsageError("the bearer token is empty")


def read_token(token_file: str | None) -> str | None:
    """The bearer token from ``--token-file`` (first line, stripped) or ``$COMPATCHECK_TOKEN``."""
    if token_file:
        try:
            text = Path(token_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{token_file}: cannot read token file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"{token_file}: token file is not UTF-8 text") from None
        lines = text.strip().splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise UsageError(f"{token_file}: token file is empty")
        return token
    env = os.environ.get(TOKEN_ENV, "").strip()
    return env or None


def read_config(path: str) -> dict[str, Any]:
    """The keys of ``compatcheck.yaml`` the hook uses: ``snapshot_dir``, ``policy``, ``consumers``,
    ``allow_images``, ``allow_prometheus``, ``registry_config``.

    Relative paths are relative to the config file, as in ``compatcheck check``. Other keys belong
    to other commands and are ignored here (a hook's config need not describe launch targets).
    """
    from compatcheck.yamlfile import load_yaml_file

    doc = load_yaml_file(path, "config file")
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        doc.mapping(data, (), ())  # raises the usual "the file must be a mapping" line
    base = doc.path.resolve().parent

    def paths(key: str) -> list[str]:
        if key not in data:
            return []
        items = doc.string_list(data[key], (key,))
        return [
            # `prometheus:URL` consumers are kept as written (checked by the consumers' reader).
            v if key == "consumers" and v.startswith("prometheus:") else
            str(doc.path_in(v, (key, i), base))
            for i, v in enumerate(items)
        ]  # fmt: skip

    out: dict[str, Any] = {"policy": paths("policy"), "consumers": paths("consumers")}
    if "allow_images" in data:
        out["allow_images"] = doc.string_list(data["allow_images"], ("allow_images",))
    if "allow_prometheus" in data:
        out["allow_prometheus"] = doc.string_list(data["allow_prometheus"], ("allow_prometheus",))
    if "registry_config" in data:
        out["registry_config"] = str(
            doc.path_in(doc.string(data["registry_config"], ("registry_config",)), (), base)
        )
    if "snapshot_dir" in data:
        snap = doc.string(data["snapshot_dir"], ("snapshot_dir",))
        if not snap:
            raise doc.error(
                ("snapshot_dir",), "`snapshot_dir` must be a directory or an http(s) URL"
            )
        out["snapshot_dir"] = (
            snap if snap.startswith(("http://", "https://")) else str(doc.path_in(snap, (), base))
        )
    return out


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """Merge ``-c`` config and flags (flags win; policy and consumer lists add up, config first).

    Refuses to serve without a token anywhere but loopback: a hook that can veto rollbacks must not
    be open to the network.
    """
    conf = read_config(args.config) if args.config else {}
    token = read_token(args.token_file)
    from compatcheck.scrape import is_loopback

    if token is None and not is_loopback(args.host):
        raise UsageError(
            f"refusing to listen on {args.host} without a token: "
            f"give --token-file FILE or set {TOKEN_ENV}"
        )
    snapshot_dir = args.snapshot_dir or conf.get("snapshot_dir")
    allow_images = tuple(conf.get("allow_images", []))
    if not snapshot_dir and not args.allow_url_targets and not allow_images:
        raise UsageError(
            "nothing to check against: give --snapshot-dir DIR|URL, --allow-url-targets, "
            "or `allow_images` in the config"
        )
    registry_config = getattr(args, "registry_config", None) or conf.get("registry_config")
    if registry_config:
        from compatcheck.artifact.auth import load_registry_config

        load_registry_config(registry_config)  # a broken file stops the start, in its words
    state = getattr(args, "state", None)
    if state is not None:
        from compatcheck.serve.state import parse_state_url

        parse_state_url(state)  # a bad URL stops the start, in one line
    return ServeSettings(
        snapshot_dir=snapshot_dir,
        policy=(*conf.get("policy", []), *args.policy),
        consumers=(*conf.get("consumers", []), *args.consumers),
        allow_url_targets=args.allow_url_targets,
        max_body=args.max_body,
        max_concurrent=args.max_concurrent,
        check_timeout=args.check_timeout,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        host=args.host,
        port=args.port,
        token=token,
        fail_on=args.fail_on,
        allow_images=allow_images,
        allow_prometheus=tuple(
            u.strip().rstrip("/")
            for u in (*conf.get("allow_prometheus", []), *getattr(args, "allow_prometheus", []))
        ),
        registry_config=registry_config,
        state=state,
        live_consumers_max_age=getattr(args, "live_consumers_max_age", 10.0),
    )
