"""``POST /v1/verify``: post-rollback verification as an Argo Rollouts web metric.

An AnalysisTemplate run after a rollback asks the hook whether the release it rolled back to runs
as its stored contract says; the answer is the ``compatcheck.report/v1`` with its ``verify``
section, ``go`` true when verified (read with ``jsonPath: "{$.go}"``), like ``/v1/check``. One
request is one verification with a short window (default: a single poll): Argo's ``count`` and
``interval`` do the waiting, and a measurement must end within its ``timeoutSeconds``.

The hook only asks the Prometheus servers the operator listed (``--allow-prometheus``): a caller
must not be able to make it send requests to any address it names. The body becomes the
``compatcheck verify`` options, so each value is checked exactly as on the command line.
"""

from __future__ import annotations

import argparse
import functools
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from compatcheck.arguments import Parser
from compatcheck.errors import RefusedError, UsageError
from compatcheck.masking import mask_secrets
from compatcheck.store import validate_name

_KEYS = ("prometheus", "selector", "service", "expect", "window", "interval", "max_error_rate")


class _BodyParser(Parser):
    """The ``verify`` options parsed from a request body: an error is a 400, not an exit."""

    def error(self, message: str) -> NoReturn:
        # `argument --max-error-rate: ...` names the body key the caller wrote.
        raise UsageError(
            re.sub(r"argument --([\w-]+)", lambda m: f"`{m.group(1).replace('-', '_')}`", message)
        )


@functools.cache
def _parser() -> _BodyParser:
    """The ``verify`` options' parser, built once (parsing does not change it)."""
    from compatcheck.verify.cli import add_verify_parser

    parser = _BodyParser(prog="verify")
    add_verify_parser(parser.add_subparsers(dest="command", parser_class=_BodyParser))
    return parser


@dataclass(frozen=True)
class VerifyRequest:
    """A checked ``/v1/verify`` body as ``verify`` options (``args``) for the hook's store."""

    args: argparse.Namespace
    window: float


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise UsageError(f"`{key}` is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UsageError(f"`{key}` must be a string or a number")
    return str(value)


def _expect(
    expect: object,
    snapshot_dir: str | None,
    allow_images: tuple[str, ...],
    registry_config: str | None,
) -> list[str]:
    """The ``--expect`` options of ``{"version": V}`` or ``{"image": "REPO@sha256:…"}``."""
    if not isinstance(expect, dict) or len(expect) != 1 or set(expect) - {"version", "image"}:
        raise UsageError(
            '`expect` must be {"version": V} (a stored contract) or {"image": "REPO@sha256:…"} '
            "(the contract attached to that image)"
        )
    if "image" in expect:
        from compatcheck.serve.requests import image_target

        image = image_target(expect["image"], "expect", allow_images).image
        extra = [f"--registry-config={registry_config}"] if registry_config else []
        return [f"--expect=oci:{image}", *extra]
    version = validate_name(expect["version"], "expect version")
    if snapshot_dir is None:
        raise RefusedError("this hook has no snapshot store (--snapshot-dir) to read `expect` from")
    return [f"--expect=stored:{version}", f"--snapshot-dir={snapshot_dir}"]


def parse_verify_request(
    body: object,
    *,
    allow: tuple[str, ...],
    snapshot_dir: str | None,
    fail_on: str,
    allow_images: tuple[str, ...] = (),
    registry_config: str | None = None,
) -> VerifyRequest:
    """Check ``body``; :class:`RefusedError` (403) for a Prometheus the operator did not list,
    or an image outside ``allow_images``. ``expect`` is a stored version or, like ``/v1/check``'s
    targets, an image digest whose attached contract is read."""
    if not isinstance(body, dict):
        raise UsageError("the body must be a JSON object")
    unknown = sorted(set(body) - set(_KEYS))
    if unknown:
        raise UsageError(f"unknown key `{unknown[0]}` (expected {', '.join(_KEYS)})")
    prometheus = _text(body, "prometheus", required=True)
    assert prometheus is not None
    if prometheus.strip().rstrip("/") not in allow:
        raise RefusedError(
            f"Prometheus {mask_secrets(prometheus)} is not allowed here (the hook asks only "
            "those given with --allow-prometheus)"
        )
    selector = _text(body, "selector", required=True)
    source = _expect(body.get("expect"), snapshot_dir, allow_images, registry_config)
    service = _text(body, "service")
    if service is None:
        from compatcheck.verify.plan import job_of

        service = job_of(selector or "")
    if service is None:
        raise UsageError('`service` is required when the selector has no job="..." matcher')
    validate_name(service, "service")
    argv = [
        "verify",
        f"--prometheus={prometheus}",
        f"--selector={selector}",
        *source,
        f"--service={service}",
        f"--fail-on={fail_on}",
        "--quiet",
    ]
    # No `window`: one poll (Argo repeats the measurement itself). The CLI's `--window` must be
    # positive, so zero is set after parsing rather than passed as `--window=0s`.
    for key in ("window", "interval", "max_error_rate"):
        value = _text(body, key)
        if value is not None:
            argv.append(f"--{key.replace('_', '-')}={value}")
    args = _parser().parse_args(argv)
    if _text(body, "window") is None:
        args.window = 0.0
    return VerifyRequest(args, float(args.window))
