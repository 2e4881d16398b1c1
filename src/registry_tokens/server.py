"""The HTTP server of ``serve``: uvicorn, with bounds on what a client may hold before its
request reaches the app.

uvicorn bounds the number of connections (``limit_concurrency``: the request of one more
is answered 503) and idle keep-alive (``timeout_keep_alive``), but not a request's head:
its HTTP implementation here, httptools (uvicorn's choice whenever it is installed, as
``uvicorn[standard]`` installs it), buffers a header line of any length, for as long as
the client takes to send it. ``BoundedHttpToolsProtocol`` adds the two bounds it lacks,
on the bytes of the head (request line and headers: 431) and on the time to receive it
(408), and answers uvicorn's 503 in our error shape. It relies on uvicorn's
``HttpToolsProtocol`` hooks (``data_received``, the parser callbacks,
``_start_asgi_task``), which is why pyproject.toml pins uvicorn's minor version.
"""

import asyncio
import functools
import http
import json
import logging
from typing import Any

from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from registry_tokens.kit.errors import AppError
from registry_tokens.settings import Settings

logger = logging.getLogger("uvicorn.error")


@functools.cache
def _settings() -> Settings:
    """This process's settings: ``serve`` hands them to its workers in the environment."""
    return Settings()


def _body(status: int, message: str) -> bytes:
    """The app's error shape, as its JSON responses render it."""
    return json.dumps(AppError(message, status).body(), separators=(",", ":")).encode()


def error_bytes(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 error response that ends the connection, written before (or
    instead of) any request reaching the app."""
    body = _body(status, message)
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def over_capacity(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """uvicorn's answer past ``limit_concurrency``, in our error shape."""
    body = _body(503, "The server has too many connections open; please retry")
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over
    ``REGISTRY_TOKENS_MAX_HEADER_BYTES`` (431) or not received within
    ``REGISTRY_TOKENS_HEADER_TIMEOUT_SECONDS`` (408), then closing the connection.

    The parser is never fed more than the bound of a head, so a client claiming a header
    of any size costs at most that much memory. The head's clock starts when the
    connection opens, or when the first byte of a later request on it arrives (until
    then, uvicorn's keep-alive timeout applies), and it is a deadline for the whole head,
    however steadily the bytes trickle in.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = _settings()
        self.max_head_bytes = settings.max_header_bytes
        self.head_timeout = settings.header_timeout_seconds
        self.reading_head = True  # the next bytes belong to a request's head
        self.head_bytes = 0
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.reading_head:
            super().data_received(data)
            return
        if self.head_timer is None:
            self._start_head_clock()
        room = self.max_head_bytes - self.head_bytes
        if len(data) <= room:
            self.head_bytes += len(data)
            super().data_received(data)
            return
        # Feed the parser only what the bound allows; if the head is still open, refuse.
        self.head_bytes += room
        super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self.reading_head:
            self._refuse(
                431,
                f"The request's headers are too large (the limit is {self.max_head_bytes} "
                "bytes, request line included)",
            )
            return
        self.data_received(data[room:])

    # Parser callbacks: where a head ends, and where the next one may begin.
    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._stop_head_clock()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head = True
        self.head_bytes = 0

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if app is not self.app:  # uvicorn's own 503, past limit_concurrency
            app = over_capacity
        super()._start_asgi_task(cycle, app)

    def _start_head_clock(self) -> None:
        self._stop_head_clock()
        self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or not self.reading_head:
            return
        if self._responding():
            # A pipelined head waits behind the response being written: look again later.
            self._start_head_clock()
            return
        self._refuse(
            408,
            f"The request's headers did not arrive within {self.head_timeout:g} seconds",
        )

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, status: int, message: str) -> None:
        self._stop_head_clock()
        logger.warning("%s from %s: %s", status, self.client and self.client[0], message)
        if not self._responding():  # never write into another response
            self.transport.write(error_bytes(status, message))
        self.transport.close()
