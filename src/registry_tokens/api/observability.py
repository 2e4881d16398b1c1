"""What every request leaves for the operator: its ``X-Request-Id``, its metrics, and (with
``REGISTRY_TOKENS_LOG_FORMAT=json``) its log line; and ``GET /metrics``.

:class:`RequestObserver` is a pure ASGI middleware around the whole app (outside
Starlette's own error middleware, so a 500 carries the request id too). It does no I/O
and no parsing on the request path: one header looked for, two metric children found in
a dict, and the log line only in JSON mode. The route is the template the router matched
(``/{org}/{registry}/pypi/simple/{project}/``), which the router leaves in the scope.

Who called (an API access token, a registry token, an OIDC token, a console user) is
known only where a door resolves the credential: it calls :func:`note_caller`, which
leaves the id in the request's state for the log line. Never a secret, a query string or
a header's value is logged.
"""

import hmac
import logging
import random
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics import Counter, Histogram
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry_tokens.kit import metrics
from registry_tokens.kit.errors import AppError
from registry_tokens.kit.logs import FIELDS, REQUEST_LOGGER
from registry_tokens.kit.network import Network, client_address
from registry_tokens.kit.validation import is_organization_slug
from registry_tokens.settings import Settings

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
request_log = logging.getLogger(REQUEST_LOGGER)


def note_caller(connection: HTTPConnection, kind: str, caller_id: uuid.UUID | None) -> None:
    """Who the request turned out to be from, for its log line (``kind``: ``api_token``,
    ``registry_token``, ``oidc_token``, ``user``)."""
    if caller_id is not None:
        connection.state.caller = (kind, str(caller_id))


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` when it is sane (at most 128 of ``A-Za-z0-9._-``:
    safe in a header and a log), else a new one."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            try:
                given = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if _SANE_REQUEST_ID.fullmatch(given):
                return given
            break
    return new_request_id()


# A version 4 UUID's fixed bits: the version (4) and the variant (RFC 9562).
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A version 4 UUID in hex, from Python's own generator: a request id names a request
    in the logs and is no secret, and ``uuid.uuid4`` asks the kernel for randomness, a
    system call on every request of the hot path."""
    return f"{random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"


def route_templates(routes: Iterable[BaseRoute], prefix: str = "") -> dict[int, str]:
    """Each route's whole template (a mounted route's includes its mount's), by the id of
    what the router leaves in the scope: the route (``route``: a mount's routes), or else
    its endpoint (``endpoint``: a plain route of the app, a mount)."""
    templates: dict[int, str] = {}
    endpoints: dict[int, str] = {}
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        templates[id(route)] = prefix + path
        if isinstance(route, Mount):
            endpoints.setdefault(id(route.app), prefix + path)
            templates.update(route_templates(route.routes, prefix + path))
        elif isinstance(route, Route):
            endpoints.setdefault(id(route.endpoint), prefix + path)
    return {**endpoints, **templates}


class RequestObserver:
    """Gives every response an ``X-Request-Id``, counts it, and logs it (JSON mode)."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], settings: Settings) -> None:
        self.app = app
        self.routes = routes
        self.templates: dict[int, str] | None = None  # built at the first request
        self.log_json = settings.log_format == "json"
        self.trusted_proxies: list[Network] = settings.trusted_proxy_networks
        self.children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]  # before HeadAsGet makes a HEAD a GET
        request_id = request_id_of(scope["headers"])
        # The app's own copy of the scope: the router leaves the route it matched in it
        # (read here), and HeadAsGet makes a HEAD a GET in it, while the server's stays
        # as the client sent it (uvicorn sends no body for a HEAD because it says HEAD).
        inner = {**scope}
        inner.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # if the app fails before answering, the server answers 500
        observed = False

        async def send_observed(message: Message) -> None:
            nonlocal status, observed
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the last bytes leave: a client that has its answer (and
                # scrapes next) finds it counted.
                observed = True
                self.observe(inner, method, status, time.perf_counter() - started, request_id)
            await send(message)

        try:
            await self.app(inner, receive, send_observed)
        finally:
            if not observed:
                self.observe(inner, method, status, time.perf_counter() - started, request_id)

    def observe(
        self, scope: Scope, method: str, status: int, seconds: float, request_id: str
    ) -> None:
        route = self.template(scope)
        label = metrics.method_label(method)
        key = (route, label, status)
        children = self.children.get(key)
        if children is None:
            children = (
                metrics.REQUESTS.labels(route, label, str(status)),
                metrics.REQUEST_DURATION.labels(route, label),
            )
            self.children[key] = children
        counter, histogram = children
        counter.inc()
        histogram.observe(seconds)
        if self.log_json:
            self.log(scope, label, route, status, seconds, request_id)

    def template(self, scope: Scope) -> str:
        if self.templates is None:
            self.templates = route_templates(self.routes)
        route = scope.get("route")
        if route is not None:
            # A mounted route's template is its mount's and its own; FastAPI leaves a
            # route of an included router whose path is already the whole template.
            found = self.templates.get(id(route)) or getattr(route, "path_format", None)
            if isinstance(found, str):
                return found
        endpoint = scope.get("endpoint")
        if endpoint is not None and (found := self.templates.get(id(endpoint))) is not None:
            return found
        return metrics.UNMATCHED

    def log(
        self, scope: Scope, label: str, route: str, status: int, seconds: float, request_id: str
    ) -> None:
        fields: dict[str, Any] = {
            "request_id": request_id,
            "method": label,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        caller = scope.get("state", {}).get("caller")
        if caller is not None:
            fields["caller_type"], fields["caller_id"] = caller
        org = scope.get("path_params", {}).get("org")
        if isinstance(org, str) and is_organization_slug(org):
            fields["organization"] = org
        peer = scope.get("client")
        forwarded = b",".join(
            value for name, value in scope["headers"] if name.lower() == b"x-forwarded-for"
        )
        address = client_address(
            peer[0] if peer else None,
            forwarded.decode("latin-1") or None,
            self.trusted_proxies,
        )
        if address is not None:
            fields["client"] = address
        request_log.info("request", extra={FIELDS: fields})


NO_STORE = {"Cache-Control": "no-store"}


class MetricsUnauthorized(AppError):
    def __init__(self) -> None:
        super().__init__(
            "Authentication required: Authorization: Bearer <REGISTRY_TOKENS_METRICS_TOKEN>",
            401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', **NO_STORE},
        )


def metrics_route(settings: Settings) -> Route:
    """``GET /metrics``: open, or behind ``REGISTRY_TOKENS_METRICS_TOKEN`` when it is set
    (compared in constant time)."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    expected = token.encode("utf-8")

    async def scrape(request: Request) -> Response:
        if expected:
            scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode("utf-8"), expected
            ):
                raise MetricsUnauthorized()
        body, content_type = metrics.exposition()
        return Response(body, headers={"Content-Type": content_type, **NO_STORE})

    return Route("/metrics", scrape, methods=["GET"])
