"""The few operations served before FastAPI's routing, for speed.

FastAPI's own work per request (matching the path against every route, resolving
dependencies, validating) costs several times what a bare ASGI app spends on a request:
an empty FastAPI route with three path parameters answers ~5,400 requests a second here,
about 185 µs each, where the bare app takes about 40 µs (bench/RESULTS.md). That is nothing for most
operations, but the install path answers every package download of every CI job. A hot
route is matched by method and path here and calls the same services the FastAPI route
does; everything else, and every other method on the same path (HEAD, say), goes on to
FastAPI, which also documents the operation in OpenAPI. The middleware sits inside the
body-size and rate-limit-header middleware, so those apply to hot routes too.

``REGISTRY_TOKENS_HOT_ROUTES=false`` leaves every request to FastAPI's routes, which call
the same code; tests/test_hot_paths.py checks that both answer byte for byte alike.

Handlers run their database work with :meth:`Database.run_reads` and ``run_writes``.
"""

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry_tokens.kit.http import exception_response

# A handler may decline a request it does not fully understand (an unusual query string,
# a body that fails validation) by answering None before doing anything else: FastAPI then
# serves it, as it would have, reading the same body.
HotHandler = Callable[[Request, re.Match[str]], Awaitable[Response | None]]


@dataclass(frozen=True)
class HotRoute:
    method: str
    path: re.Pattern[str]
    handler: HotHandler


class HotRoutes:
    """ASGI middleware: serves the hot routes, passes every other request on."""

    def __init__(self, app: ASGIApp, routes: Sequence[HotRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                if scope["method"] == route.method:
                    match = route.path.fullmatch(scope["path"])
                    if match is not None:
                        await self._serve(route, match, scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def _serve(
        self, route: HotRoute, match: re.Match[str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        received: list[Message] = []

        async def recorded() -> Message:
            message = await receive()
            received.append(message)
            return message

        request = Request(scope, recorded)
        request.scope["path_params"] = match.groupdict()
        try:
            response = await route.handler(request, match)
        except Exception as exc:  # rendered as FastAPI's handlers would
            response = exception_response(exc)
        if response is not None:
            await response(scope, receive, send)
            return

        async def replayed() -> Message:
            """What the handler read of the body, then the rest."""
            return received.pop(0) if received else await receive()

        await self.app(scope, replayed, send)
