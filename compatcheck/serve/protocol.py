"""The hook's HTTP connections: uvicorn's h11 protocol plus the one limit uvicorn lacks.

uvicorn closes idle keep-alive connections and can cap connections (``limit_concurrency``), but a
client that sends its request head one byte at a time ("slowloris") resets the keep-alive timer
with every byte and is never closed: forty such clients hold forty connections for as long as
they like, and enough of them hold the connection cap. So the head of every request must arrive
within ``header_timeout`` of the connection (or of the previous response); otherwise the
connection is closed. Bodies are timed by the app (:func:`compatcheck.serve.app.read_json`,
408), which is where the request is known.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("compatcheck.serve")


def protocol_class(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline on each request head (pass it as ``http=``)."""

    class HeadTimedProtocol(H11Protocol):  # type: ignore[misc]
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is complete (or broken)
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()  # the next request's head is timed from now

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expire(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
                log.info(
                    "closed a connection from %s: no request head within %gs",
                    client,
                    header_timeout,
                )
                self.transport.close()

    return HeadTimedProtocol
