"""The exact command that performs the rollback, for the report's last line.

Every word is passed through :func:`shlex.quote`: names come from configuration and registries,
and a command a person pastes during an incident must not be able to expand into anything else.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from compatcheck.errors import UsageError

_K8S_KEYS = ("deployment", "container", "namespace")


@dataclass(frozen=True)
class KubernetesTarget:
    deployment: str
    container: str
    namespace: str | None = None


def parse_kubernetes(data: object) -> KubernetesTarget:
    """Validate ``kubernetes: {deployment, container, namespace?}``."""
    if not isinstance(data, Mapping):
        raise UsageError(
            "artifact `kubernetes` must be a mapping with `deployment` and `container`"
        )
    unknown = sorted(set(data) - set(_K8S_KEYS))
    if unknown:
        raise UsageError(f"artifact `kubernetes` has unknown key `{unknown[0]}`")
    values: dict[str, str | None] = {}
    for key in _K8S_KEYS:
        value = data.get(key)
        if value is None and key == "namespace":
            values[key] = None
            continue
        if not isinstance(value, str) or not value:
            raise UsageError(f"artifact `kubernetes.{key}` must be a non-empty string")
        values[key] = value
    return KubernetesTarget(
        deployment=str(values["deployment"]),
        container=str(values["container"]),
        namespace=values["namespace"],
    )


def kubectl_command(target: KubernetesTarget, pinned_image: str) -> str:
    """``kubectl set image deployment/NAME CONTAINER=REPO@sha256:DIGEST [-n NS]``."""
    argv = [
        "kubectl",
        "set",
        "image",
        f"deployment/{target.deployment}",
        f"{target.container}={pinned_image}",
    ]
    if target.namespace:
        argv += ["-n", target.namespace]
    return shlex.join(argv)


def switch_lock(current_link: Path) -> Path:
    """The lock file every switch of ``current_link`` takes: beside the link, in the directory
    that holds the releases' ``current`` (``/opt/app/current.lock``)."""
    return current_link.with_name(current_link.name + ".lock")


def symlink_command(release_dir: Path, current_link: Path) -> str:
    """Switch ``current`` to ``release_dir`` atomically, one operator at a time.

    Trap: ``ln -sfn DIR current`` is not atomic (it unlinks, then creates: a request in between
    finds no ``current``). Creating a temporary link and renaming it over ``current`` is, because
    rename(2) replaces the name in one step; ``mv -T`` (GNU coreutils) stops ``mv`` from moving
    the temporary link *into* the directory ``current`` points at.

    Trap: two operators switching at once with one fixed temporary name (``current.tmp``) race:
    B's ``ln -sfn`` repoints A's temporary link, A's ``mv`` installs B's target and reports
    success, B's ``mv`` finds nothing. So the switch holds ``flock -n`` on
    :func:`switch_lock` (a second switch fails at once, saying so, instead of queueing behind
    the first and silently undoing it) and uses a fresh temporary name from ``mktemp -u``,
    created with ``ln -sn`` (no ``-f``: a name that exists is an error, never overwritten).
    """
    q = shlex.quote
    lock, link = q(str(switch_lock(current_link))), q(str(current_link))
    template = q(str(current_link.with_name(current_link.name + ".tmp.XXXXXXXXXX")))
    busy = q("compatcheck: switch refused: another switch holds the lock")
    return (
        f"( flock -n 9 || {{ echo {busy} {lock} >&2; exit 1; }}; "
        f'tmp=$(mktemp -u {template}) && ln -sn {q(str(release_dir))} "$tmp" && '
        f'{{ mv -T "$tmp" {link} || {{ rm -f "$tmp"; exit 1; }}; }} ) 9>{lock}'
    )
