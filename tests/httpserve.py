"""Small HTTP servers the tests stand up on loopback: a quiet handler base and the thread that
serves it, in one place instead of a copy per test module."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A handler that logs nothing (the test's output stays its own) and answers in one call.
    Stdlib only: the small releases the tests write and start import it too (``PYTHONPATH`` set
    to the repository in their target's ``env``)."""

    def send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Quiet(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client gave up: fine
        pass


def start_server(handler: type[http.server.BaseHTTPRequestHandler]) -> _Quiet:
    """``handler`` served from a daemon thread on a free loopback port; stop it with
    :func:`stop_server`."""
    server = _Quiet(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_server(server: http.server.HTTPServer) -> None:
    server.shutdown()
    server.server_close()


@contextmanager
def serve_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port; yields the base URL."""
    server = start_server(handler)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop_server(server)


class Background:
    """A handler served on loopback until :meth:`close`; ``host`` is ``127.0.0.1:PORT``."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = start_server(handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        stop_server(self.server)
