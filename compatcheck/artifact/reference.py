"""Image references, parsed the way Docker and the distribution project parse them.

Why not ``ref.split(":")``: a registry host may carry a port (``reg:5000/a/b:v1``), so the first
colon is not the tag separator; a bare name (``busybox``) means
``docker.io/library/busybox:latest``; ``a/b:v1@sha256:...`` has both a tag and a digest, and the
digest is what gets pulled. Getting this wrong either calls a pinned image unpinned or, worse,
calls a tag pinned. The grammar follows ``github.com/distribution/reference`` (``reference.go``,
``normalize.go``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from compatcheck.errors import InputError

DEFAULT_DOMAIN = "docker.io"
#: Docker Hub's API host: ``docker.io`` is the name people write, not the host that answers.
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_HEX = {"sha256": 64, "sha512": 128}
_NAME_MAX = 255


@dataclass(frozen=True)
class ImageReference:
    """One parsed reference; ``written`` is kept verbatim for subjects and commands."""

    written: str
    #: Registry host as written or implied (``docker.io`` for Hub), port included.
    domain: str
    #: Repository path inside the registry (``library/busybox`` for Hub's official images).
    path: str
    tag: str | None
    digest: str | None
    #: Repository as written, without tag or digest (``reg/shop``, ``busybox``): what a person
    #: (and ``kubectl set image``) writes in front of ``@sha256:``.
    written_repository: str

    @property
    def pinned(self) -> bool:
        """Pulled by content, not by a movable name: a digest is present."""
        return self.digest is not None

    @property
    def effective_tag(self) -> str:
        """The tag a pull resolves when neither tag nor digest is written (``latest``)."""
        return self.tag or DEFAULT_TAG

    @property
    def manifest_reference(self) -> str:
        """What goes after ``/manifests/`` in the distribution API: the digest wins over the tag."""
        return self.digest or self.effective_tag

    @property
    def canonical(self) -> str:
        """Fully qualified form, ``docker.io/library/busybox:latest``."""
        out = f"{self.domain}/{self.path}"
        if self.tag or not self.digest:
            out += f":{self.effective_tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def pinned_form(self, digest: str) -> str:
        """``REPO@DIGEST`` in the written spelling, the form a rollback must target."""
        return f"{self.written_repository}@{digest}"


def parse_digest(text: str) -> str:
    """Validate ``algorithm:hex`` (lowercase hex of the right length for sha256/sha512).

    Trap: the digest later becomes a file path (``blobs/sha256/<hex>``) and a URL segment, so it is
    validated strictly here; anything else could walk out of an OCI layout directory.
    """
    if not _DIGEST.fullmatch(text):
        raise ValueError(f"`{text}` is not a digest (expected `sha256:<64 hex digits>`)")
    algorithm, _, encoded = text.partition(":")
    if algorithm not in _HEX:
        raise ValueError(f"digest algorithm `{algorithm}` is not supported (use sha256)")
    if len(encoded) != _HEX[algorithm] or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise ValueError(
            f"`{text}` is not a {algorithm} digest ({_HEX[algorithm]} lowercase hex digits)"
        )
    return text


def _split_domain(name: str) -> tuple[str, str, bool]:
    """(domain, path, domain_written). A first component is a host only if it looks like one.

    Docker's rule: the part before the first ``/`` is a registry host when it contains ``.`` or
    ``:``, is ``localhost``, or has an uppercase letter (repository paths are lowercase);
    otherwise the whole name is a Docker Hub repository.
    """
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain = first
        if domain == "index.docker.io":
            domain = DEFAULT_DOMAIN
        return domain, rest, True
    return DEFAULT_DOMAIN, name, False


def parse_reference(text: str) -> ImageReference:
    """Parse an image reference; raise :class:`InputError` naming it when it is not one."""
    try:
        return _parse(text)
    except ValueError as exc:
        raise InputError(f"image reference `{text}`: {exc}") from None


def _parse(text: str) -> ImageReference:
    if not text or text != text.strip():
        raise ValueError("empty or surrounded by whitespace")
    remainder, at, digest = text.partition("@")
    parsed_digest = parse_digest(digest) if at else None
    tag: str | None = None
    # The tag separator is the last ':' after the last '/': an earlier colon is a host's port.
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ValueError(f"`{tag}` is not a valid tag")
    if not remainder:
        raise ValueError("no repository name")
    domain, path, domain_written = _split_domain(remainder)
    if domain_written and not _DOMAIN.fullmatch(domain):
        raise ValueError(f"`{domain}` is not a valid registry host")
    components = path.split("/")
    for comp in components:
        if not _COMPONENT.fullmatch(comp):
            raise ValueError(
                f"`{comp or '(empty)'}` is not a valid repository path component "
                "(lowercase letters, digits, and single separators . _ __ -)"
            )
    if domain == DEFAULT_DOMAIN and len(components) == 1:
        path = f"library/{path}"
    if len(f"{domain}/{path}") > _NAME_MAX:
        raise ValueError(f"repository name longer than {_NAME_MAX} characters")
    return ImageReference(
        written=text,
        domain=domain,
        path=path,
        tag=tag,
        digest=parsed_digest,
        written_repository=remainder,
    )
