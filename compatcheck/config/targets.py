"""``old`` and ``new``: one target each, read into the type of its source.

Exactly one source key (:data:`~compatcheck.config.declaration.SOURCE_KEYS`) says how the release
is reached, and picks the target's type; the keys every target may have (label, expected build,
artifact, migrations) are read once for all types. The artifact keys are validated here, with
``file:line``, by the same parsers the artifact inspection uses, so a bad image reference or
Kubernetes spec stops the run before anything starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compatcheck.artifact.reference import parse_reference
from compatcheck.artifact.release import parse_release
from compatcheck.artifact.rollback import parse_kubernetes
from compatcheck.config.declaration import PLACEHOLDERS, SOURCE_KEYS, section
from compatcheck.config.document import Loader
from compatcheck.config.model import (
    ArtifactSpec,
    CommandTarget,
    ContractTarget,
    Expect,
    ExpositionTarget,
    SnapshotTarget,
    StoredTarget,
    Target,
    UrlTarget,
)
from compatcheck.errors import UsageError
from compatcheck.masking import mask_secrets
from compatcheck.store import validate_name

_PLACEHOLDER_RE = re.compile(r"\{([a-z_]*)\}")


def parse_target(ld: Loader, raw: Any, role: str) -> Target:
    """The ``old`` or ``new`` section as the target type its source key selects."""
    where: tuple[Any, ...] = (role,)
    data = ld.section(raw, where, section(role))
    sources = [k for k in SOURCE_KEYS if k in data]
    if len(sources) != 1:
        problem = "has none" if not sources else "has " + ", ".join(f"`{s}`" for s in sources)
        raise ld.error(
            where,
            f"`{role}` needs exactly one of {', '.join(SOURCE_KEYS)} ({problem})",
        )
    base = ld.path.parent
    cwd = ld.path_in(data["cwd"], (*where, "cwd"), base) if "cwd" in data else None
    if cwd is not None and not cwd.is_dir():
        raise ld.error((*where, "cwd"), f"`{role}.cwd`: no such directory: {cwd}")
    command = _command(ld, data["command"], role) if "command" in data else None
    env = _env(ld, data["env"], role) if "env" in data else {}
    if (env or cwd) and command is None:
        raise ld.error(where, f"`{role}`: `env` and `cwd` only apply to a `command` target")
    url = _url(ld, data["url"], role) if "url" in data else None
    files: dict[str, Path] = {}
    for key in ("snapshot", "exposition"):
        if key in data:
            files[key] = ld.path_in(data[key], (*where, key), base)
    for key, p in files.items():
        if not p.is_file():
            raise ld.error((*where, key), f"`{role}.{key}`: no such file: {p}")
    expect = _expect(ld, data["expect"], role) if "expect" in data else Expect()
    migrations = None
    if "migrations" in data:
        migrations = ld.path_in(data["migrations"], (*where, "migrations"), cwd or base)
    stored = _stored_name(ld, data["stored"], (*where, "stored")) if "stored" in data else None
    contract = _contract(ld, data["contract"], role) if "contract" in data else None
    file = next(iter(files.values()), None)
    if "label" in data:
        label = ld.string(data["label"], (*where, "label"))
    elif contract is not None:
        label = ""  # the contract's own label (known once it is read)
    else:
        label = _default_label(role, cwd=cwd, url=url, file=file, stored=stored)
    common: dict[str, Any] = {
        "role": role,
        "label": label,
        "expect": expect,
        "artifact": _artifact(ld, data, role),
        "migrations": migrations,
        "line": ld.line_of(where),
    }
    if command is not None:
        return CommandTarget(command=command, env=env, cwd=cwd, **common)
    if url is not None:
        return UrlTarget(url=url, **common)
    if stored is not None:
        return StoredTarget(stored=stored, **common)
    if contract is not None:
        return ContractTarget(contract=contract, **common)
    if "snapshot" in files:
        return SnapshotTarget(snapshot=files["snapshot"], **common)
    return ExpositionTarget(exposition=files["exposition"], **common)


def _command(ld: Loader, argv: Any, role: str) -> tuple[str, ...]:
    where: tuple[Any, ...] = (role, "command")
    if isinstance(argv, str):
        raise ld.error(
            where, f'`{role}.command` must be an argv list, e.g. ["{{python}}", "-m", "app"]'
        )
    items = ld.string_list(argv, where)
    if not items:
        raise ld.error(where, f"`{role}.command` is empty")
    for i, item in enumerate(items):
        _check_placeholders(ld, item, (*where, i))
    return tuple(items)


def _env(ld: Loader, raw: Any, role: str) -> dict[str, str]:
    where: tuple[Any, ...] = (role, "env")
    if not isinstance(raw, dict):
        raise ld.error(where, f"`{role}.env` must be a mapping")
    env: dict[str, str] = {}
    for k, v in raw.items():
        env[k] = ld.string(v, (*where, k))
        _check_placeholders(ld, env[k], (*where, k))
    return env


def _url(ld: Loader, raw: Any, role: str) -> str:
    url = ld.string(raw, (role, "url"))
    if not re.match(r"^https?://[^/]+", url):
        raise ld.error((role, "url"), f"`{role}.url` must be an http(s) URL")
    return url.rstrip("/")


def _expect(ld: Loader, raw: Any, role: str) -> Expect:
    where: tuple[Any, ...] = (role, "expect")
    decl = section(role).key("expect")
    ex = ld.section(raw, where, decl)
    return Expect(**{k.name: ld.plain(ex, where, k) for k in decl.keys})


def _artifact(ld: Loader, data: Mapping[str, Any], role: str) -> ArtifactSpec:
    """The artifact keys, each checked as the inspection will read it (``file:line`` errors):
    by the inspection's own parsers, so the two cannot disagree on what a valid spec is."""
    where: tuple[Any, ...] = (role,)
    decl = section(role)
    strings = {k: ld.string(data[k], (*where, k)) for k in ("image", "registry") if k in data}
    layout = ld.plain(data, where, decl.key("oci_layout"))
    nested: dict[str, dict[str, str]] = {}
    for key in ("release", "kubernetes"):
        if key in data:
            sub = ld.section(data[key], (*where, key), decl.key(key))
            nested[key] = {k: ld.string(v, (*where, key, k)) for k, v in sub.items()}
    spec = ArtifactSpec(
        image=strings.get("image"),
        oci_layout=str(layout) if layout is not None else None,
        registry=strings.get("registry"),
        release=nested.get("release"),
        kubernetes=nested.get("kubernetes"),
    )
    if not spec.spec():
        return spec
    checks = (
        ("image", parse_reference),
        ("release", parse_release),
        ("kubernetes", parse_kubernetes),
    )
    for key, parse in checks:
        if key in data:
            try:
                parse(getattr(spec, key))
            except UsageError as exc:
                raise ld.error((*where, key), f"`{role}.{key}`: {exc}") from None
    if spec.image is None and spec.oci_layout is None and spec.release is None:
        raise ld.error(where, f"`{role}`: an artifact needs `image`, `oci_layout` or `release`")
    if spec.kubernetes is not None and spec.image is None:
        raise ld.error(
            (*where, "kubernetes"), f"`{role}.kubernetes` needs `image` (the repository to pin)"
        )
    return spec


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


def _contract(ld: Loader, raw: Any, role: str) -> str:
    """An image digest's contract reference, checked now (a tag is ``artifact/not-pinned``); a
    layout folder is made absolute against the config file, like every path in it."""
    from compatcheck.artifact.contract import LAYOUT_PREFIX, parse_contract_ref

    where: tuple[Any, ...] = (role, "contract")
    text = ld.string(raw, where)
    try:
        ref = parse_contract_ref(text)
    except UsageError as exc:
        raise ld.error(where, f"`{role}.contract`: {exc}") from None
    if ref.root is None:
        return text
    root = ld.path_in(str(ref.root), where, ld.path.parent)
    return f"{LAYOUT_PREFIX}{root}@{ref.digest}"


def _stored_name(ld: Loader, value: Any, where: tuple[Any, ...]) -> str:
    try:
        return validate_name(ld.string(value, where), "version")
    except UsageError as exc:
        raise ld.error(where, f"`{ld.dotted(where)}`: {exc}") from None


def _check_placeholders(ld: Loader, text: str, where: tuple[Any, ...]) -> None:
    for name in _PLACEHOLDER_RE.findall(text):
        if name not in PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ld.error(where, f"unknown placeholder `{{{name}}}` (allowed: {allowed})")
