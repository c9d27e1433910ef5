"""Image references parse the way Docker parses them (host:port, nested paths, tag + digest)."""

from __future__ import annotations

import pytest

from compatcheck.artifact.reference import parse_reference
from compatcheck.errors import InputError
from tests._support import one_line_error

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "repo", "pinned", "canonical"),
    [
        (
            "busybox",
            "docker.io",
            "library/busybox",
            None,
            None,
            "busybox",
            False,
            "docker.io/library/busybox:latest",
        ),
        (
            "reg:5000/a/b:v1",
            "reg:5000",
            "a/b",
            "v1",
            None,
            "reg:5000/a/b",
            False,
            "reg:5000/a/b:v1",
        ),
        (
            "reg:5000/a/b",
            "reg:5000",
            "a/b",
            None,
            None,
            "reg:5000/a/b",
            False,
            "reg:5000/a/b:latest",
        ),
        (f"a/b@{D}", "docker.io", "a/b", None, D, "a/b", True, f"docker.io/a/b@{D}"),
        (f"a/b:v1@{D}", "docker.io", "a/b", "v1", D, "a/b", True, f"docker.io/a/b:v1@{D}"),
        (
            "localhost/shop:1.0",
            "localhost",
            "shop",
            "1.0",
            None,
            "localhost/shop",
            False,
            "localhost/shop:1.0",
        ),
        (
            "ghcr.io/org/team/svc/api:2024.05-rc_1",
            "ghcr.io",
            "org/team/svc/api",
            "2024.05-rc_1",
            None,
            "ghcr.io/org/team/svc/api",
            False,
            "ghcr.io/org/team/svc/api:2024.05-rc_1",
        ),
        (
            "index.docker.io/library/redis:7",
            "docker.io",
            "library/redis",
            "7",
            None,
            "index.docker.io/library/redis",
            False,
            "docker.io/library/redis:7",
        ),
        (
            "[::1]:5000/shop:v1",
            "[::1]:5000",
            "shop",
            "v1",
            None,
            "[::1]:5000/shop",
            False,
            "[::1]:5000/shop:v1",
        ),
        ("reg/shop:v1", "docker.io", "reg/shop", "v1", None, "reg/shop", False, None),
        (
            "my_org/a__b/c-d:x",
            "docker.io",
            "my_org/a__b/c-d",
            "x",
            None,
            "my_org/a__b/c-d",
            False,
            None,
        ),
    ],
)
def test_parse(
    text: str,
    domain: str,
    path: str,
    tag: str | None,
    digest: str | None,
    repo: str,
    pinned: bool,
    canonical: str | None,
) -> None:
    ref = parse_reference(text)
    assert (ref.written, ref.domain, ref.path, ref.tag, ref.digest) == (
        text,
        domain,
        path,
        tag,
        digest,
    )
    assert ref.written_repository == repo
    assert ref.pinned is pinned
    if canonical is not None:
        assert ref.canonical == canonical
    assert ref.pinned_form(D) == f"{repo}@{D}"
    assert ref.manifest_reference == (digest or tag or "latest")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        (" busybox", "whitespace"),
        ("Shop/api:v1x/Upper", "not a valid repository path component"),
        ("shop/API:v1", "not a valid repository path component"),
        ("shop:", "not a valid tag"),
        ("shop:-bad", "not a valid tag"),
        ("shop@sha256:abc", "is not a digest"),
        ("shop@sha256:" + "AB" * 32, "lowercase hex"),
        ("shop@md5:" + "ab" * 32, "not supported"),
        ("a//b", "(empty)"),
        ("a/b/", "(empty)"),
        ("-reg.example/shop", "not a valid registry host"),
        ("a/" + "b" * 300, "longer than 255"),
        ("a/../b", "not a valid repository path component"),
    ],
)
def test_invalid_references_name_the_input(text: str, fragment: str) -> None:
    message = one_line_error(InputError, lambda: parse_reference(text))
    assert message.startswith(f"image reference `{text}`: ")
    assert fragment in message
