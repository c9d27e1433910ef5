"""Registry credentials the way users already have them: a docker ``config.json``.

``docker login`` (and ``podman login``, ``oras login``, ``crane auth login``) write the same file:
``{"auths": {"HOST": {"auth": base64("user:password")}}}``, or ``{"identitytoken": ...}`` when
the registry handed out an OAuth2 refresh token (Azure, some Harbor setups), or
``"registrytoken"`` (a bearer token used as is). compatcheck reads that file
(``--registry-config``) instead of inventing its own credential format.

Why credentials are kept in a class whose ``repr`` shows no secret: the values travel through
exceptions, dataclass reprs and log lines; none of them may ever print a password. Errors about
this file name the file and the host, never a value.

Credential helpers (``credsStore``, ``credHelpers``) would mean running a program named by the
file; compatcheck does not, and says so for the host concerned rather than silently going
anonymous.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from compatcheck.errors import InputError
from compatcheck.files import read_bytes
from compatcheck.jsondoc import JsonError, parse_object

#: A config.json is a few kilobytes; anything far larger is not one.
CONFIG_MAX_BYTES = 1024 * 1024
#: ``docker login`` without a server stores Docker Hub's credentials under this key.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    """What one host's entry holds; ``repr`` names only which kinds are present."""

    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)

    @property
    def kind(self) -> str:
        if self.registry_token:
            return "registry token"
        if self.identity_token:
            return "identity token"
        if self.username:
            return "basic"
        return "anonymous"

    def __repr__(self) -> str:
        return f"Credentials({self.kind})"


ANONYMOUS = Credentials()


def _host_of(key: str) -> str:
    """``https://reg:5000/v1/`` → ``reg:5000``; a bare ``reg:5000`` stays as it is."""
    text = key.strip()
    if "://" in text:
        return urlsplit(text).netloc.lower()
    return text.split("/", 1)[0].lower()


@dataclass(frozen=True)
class RegistryConfig:
    """The ``auths`` of one config.json, by host, plus the hosts left to credential helpers."""

    path: str = ""
    auths: dict[str, Credentials] = field(default_factory=dict, repr=False)
    helpers: dict[str, str] = field(default_factory=dict)
    store: str = ""

    def credentials(self, domain: str) -> Credentials:
        """The credentials for registry host ``domain`` (``docker.io`` means Docker Hub)."""
        host = domain.lower()
        keys = [host]
        if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
            keys = [_host_of(DOCKER_HUB_KEY), "docker.io", "registry-1.docker.io"]
        for key in keys:
            found = self.auths.get(key)
            # `docker login` with a credential store leaves an empty entry in `auths`.
            if found is not None and found.kind != "anonymous":
                return found
        helper = next((self.helpers[k] for k in keys if k in self.helpers), "") or self.store
        if helper:
            raise InputError(
                f"{self.path}: credentials for `{domain}` are kept by the credential helper "
                f"`docker-credential-{helper}`, which compatcheck does not run; "
                "give a config.json with an `auths` entry for it"
            )
        return ANONYMOUS


def _entry(path: str, host: str, value: object) -> Credentials:
    if not isinstance(value, dict):
        raise InputError(f"{path}: `auths.{host}` is not an object")
    strings = {k: v for k, v in value.items() if isinstance(v, str)}
    username, password = strings.get("username", ""), strings.get("password", "")
    encoded = strings.get("auth", "")
    if encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InputError(
                f"{path}: `auths.{host}.auth` is not base64 of `user:password`"
            ) from None
        user, colon, secret = decoded.partition(":")
        if not colon:
            raise InputError(f"{path}: `auths.{host}.auth` is not base64 of `user:password`")
        username, password = user, secret
    return Credentials(
        username=username,
        password=password,
        identity_token=strings.get("identitytoken", ""),
        registry_token=strings.get("registrytoken", ""),
    )


def load_registry_config(path: str | None) -> RegistryConfig:
    """Read ``path`` (a docker ``config.json``); ``None`` means anonymous access everywhere."""
    if not path:
        return RegistryConfig()
    raw = read_bytes(path, "registry config", max_bytes=CONFIG_MAX_BYTES)
    try:
        doc = parse_object(raw)
    except JsonError as exc:
        raise InputError(f"{path}: registry config is {exc}") from None
    auths = doc.get("auths") or {}
    helpers = doc.get("credHelpers") or {}
    if not isinstance(auths, dict) or not isinstance(helpers, dict):
        raise InputError(f"{path}: `auths` and `credHelpers` must be objects")
    store = doc.get("credsStore")
    return RegistryConfig(
        path=path,
        auths={_host_of(k): _entry(path, _host_of(k), v) for k, v in auths.items()},
        helpers={_host_of(k): str(v) for k, v in helpers.items()},
        store=store if isinstance(store, str) else "",
    )
