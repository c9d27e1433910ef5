"""``compatcheck serve``: the policy hook other rollback tools call over HTTP.

Built on Starlette + uvicorn (the optional extra ``compatcheck[serve]``) rather than a hand-written
HTTP loop: HTTP/1.1 parsing, keep-alive, slow clients, graceful SIGTERM shutdown and request
draining are exactly what a well-kept server already gets right. Starlette is the thinnest
well-maintained ASGI toolkit (routing, request streaming, a real ``TestClient``) without a
framework's validation layer we would not use; uvicorn is its reference server.

Public entry points: :func:`create_app` (tests, embedding), :func:`add_serve_parser` and
:func:`cmd_serve` (the CLI).

Where it sits: another front end to the one ``evaluate()``, beside the CLI. The modules:
:mod:`~compatcheck.serve.app` (the HTTP face: routes, auth, and the one table turning domain
errors into statuses), :mod:`~compatcheck.serve.requests` (request bodies, validated),
:mod:`~compatcheck.serve.checker` (the work without HTTP: slots, deadlines, cache),
:mod:`~compatcheck.serve.settings`, :mod:`~compatcheck.serve.metrics` and
:mod:`~compatcheck.serve.protocol` (connection limits).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import IO, TYPE_CHECKING, Any

from compatcheck.argtypes import port, positive_int, seconds
from compatcheck.errors import UsageError
from compatcheck.serve.settings import TOKEN_ENV, ServeSettings, settings_from_args

if TYPE_CHECKING:
    import socket

    from starlette.applications import Starlette


def _missing_extra(exc: ImportError) -> UsageError:
    return UsageError(
        f"compatcheck serve needs the `serve` extra ({exc.name} is missing): "
        "pip install 'compatcheck[serve]'"
    )


def create_app(settings: ServeSettings) -> Starlette:
    """The ASGI application for ``settings`` (see :mod:`compatcheck.serve.app`)."""
    try:
        from compatcheck.serve.app import create_app as _create
    except ImportError as exc:
        raise _missing_extra(exc) from None
    return _create(settings)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The ``serve`` flags, on the CLI's subparser or on ``python -m compatcheck.serve``."""
    p.add_argument(
        "-c", "--config", metavar="FILE", help="compatcheck.yaml (snapshot_dir, policy, consumers)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--port", type=port, default=8080, help="port (default: 8080; 0 picks a free one)"
    )
    p.add_argument(
        "--snapshot-dir", metavar="DIR|URL", help="store of <service>/<version>.snapshot.json"
    )
    p.add_argument(
        "--policy", action="append", default=[], metavar="FILE", help="policy file (repeatable)"
    )
    p.add_argument(
        "--consumers",
        action="append",
        default=[],
        metavar="PATH|prometheus:URL",
        help="rule files, dashboards or folders whose breakage to name, or the rules a running "
        "Prometheus loaded (repeatable)",
    )
    p.add_argument(
        "--live-consumers-max-age",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="how old the rules read from a prometheus:URL consumer may be before they are "
        "read again (default: 10)",
    )
    p.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        default="error",
        help="lowest severity that makes the verdict no-go (default: error)",
    )
    _add_callers(p)
    _add_limits(p)


def _add_callers(p: argparse.ArgumentParser) -> None:
    """What callers may ask the hook to reach (targets, Prometheus, images) and how they and the
    replicas are trusted and shared."""
    p.add_argument(
        "--allow-url-targets",
        action="store_true",
        help='let callers give {"url": ...} targets to scrape (off: stored snapshots only)',
    )
    p.add_argument(
        "--allow-prometheus",
        action="append",
        default=[],
        metavar="URL",
        help="a Prometheus base URL POST /v1/verify may ask (repeatable; none: verify refused)",
    )
    p.add_argument(
        "--registry-config",
        metavar="FILE",
        help='docker config.json with credentials for {"image": ...} targets (`allow_images`)',
    )
    p.add_argument(
        "--state",
        metavar="redis://HOST:PORT/DB",
        help="share asynchronous checks and verdicts between replicas in Redis "
        "(?prefix=KEYS&lease=SECONDS; default: in this process)",
    )
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"bearer token callers must send (default: ${TOKEN_ENV}; none: loopback only)",
    )


def _add_limits(p: argparse.ArgumentParser) -> None:
    """The bounds that keep one hook alive under abuse: body size, concurrency, deadlines."""
    p.add_argument(
        "--max-body",
        type=positive_int,
        default=64 * 1024,
        metavar="BYTES",
        help="request body cap (default: 65536; 413 beyond)",
    )
    p.add_argument(
        "--max-concurrent",
        type=positive_int,
        default=4,
        metavar="N",
        help="checks evaluated at once (default: 4; 429 beyond)",
    )
    p.add_argument(
        "--check-timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="per-check deadline (default: 30; 503 / TERMINAL beyond)",
    )
    p.add_argument(
        "--header-timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="time a client has to send a request's headers (default: 10; then closed)",
    )
    p.add_argument(
        "--body-timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="time a client has to send a request's body (default: 10; 408 beyond)",
    )
    p.add_argument(
        "--max-connections",
        type=positive_int,
        default=512,
        metavar="N",
        help="connections served at once (default: 512; 503 beyond)",
    )


def add_serve_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``serve`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser("serve", help="run the policy hook (HTTP) other tools call")
    add_serve_arguments(p)


def cmd_serve(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Run the hook until SIGTERM/SIGINT; uvicorn drains requests, then running checks end.

    The listening socket is bound here (not by uvicorn) so that ``--port 0`` can announce the port
    it got, on stderr, before serving: tests and supervisors read that line.
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise _missing_extra(exc) from None
    settings = settings_from_args(args)
    app = create_app(settings)
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    port = sock.getsockname()[1]
    auth = "bearer token" if settings.token else "no auth (loopback)"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(
        f"compatcheck serve: listening on http://{host}:{port} ({auth})",
        file=sys.stderr,
        flush=True,
    )
    from compatcheck.serve.protocol import protocol_class

    _log_to_stderr()
    config = uvicorn.Config(
        app,
        http=protocol_class(settings.header_timeout),
        limit_concurrency=settings.max_connections,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.check_timeout) + 5,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # Trap: after its graceful shutdown uvicorn re-raises the captured SIGTERM with the previous
    # handler in place; with the default one the process dies "by signal" instead of exiting 0.
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    return 0


def _log_to_stderr() -> None:
    """The hook's own log: one line per refused or failed request, on stderr, never a traceback
    (the lines are masked and one line each where they are made, in :mod:`.app`)."""
    import logging

    logger = logging.getLogger("compatcheck.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("compatcheck serve: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, created with ``proto=IPPROTO_TCP``.

    Trap: ``socket.create_server`` leaves ``proto`` 0, and asyncio only sets TCP_NODELAY on
    accepted sockets whose proto is IPPROTO_TCP. Without it, Nagle's algorithm plus the client's
    delayed ACK add ~40 ms to every keep-alive response (headers and body are two writes).
    """
    import socket  # here: every command builds this module's parser; only serving listens

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


__all__ = [
    "ServeSettings",
    "add_serve_arguments",
    "add_serve_parser",
    "cmd_serve",
    "create_app",
]
