"""HTTP plumbing of the REST API: error rendering, strict JSON, body limits, headers."""

import json
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry_tokens.db.failures import (
    CommitOutcomeUnknown,
    is_busy,
    is_storage_full,
    is_unavailable,
)
from registry_tokens.kit.errors import AppError, FieldProblem, ValidationFailed
from registry_tokens.kit.metrics import DATABASE_ERRORS, STORAGE_ERRORS
from registry_tokens.kit.schemas import ErrorBody, carries_secret
from registry_tokens.kit.urls import EXTERNAL_REDIRECT
from registry_tokens.kit.validation import field_problem

logger = logging.getLogger("registry_tokens")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request (e.g. the body is not valid JSON)",
        401: "No API access token, or an unknown, malformed or revoked one",
        403: "The API access token lacks the scope this operation needs",
        404: "No such resource, or one the caller may not see",
        406: "None of the media types the client accepts can be served",
        409: "It already exists (e.g. a file with that name is already published)",
        413: "The request body is too large",
        415: "The request body is not JSON",
        422: "Validation failed",
        429: "Rate limited: wait RateLimit-Reset seconds",
        503: "The database is busy or unreachable; retry after Retry-After seconds",
        507: "No room left to store it; reads still work. Retry after Retry-After seconds",
    }
    return {
        status: {"model": ErrorBody, "description": descriptions[status]} for status in statuses
    }


def error_response(error: AppError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _validation_error(request: Request, exc: RequestValidationError) -> AppError:
    """FastAPI's validation errors, in Buildkite's words (each field's by ``field_problem``,
    the one translation of the request models' errors)."""
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return AppError("Problems parsing JSON: the request body is not valid JSON", 400)
    content_type = request.headers.get("content-type")
    body_errors = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("body",)]
    if body_errors and content_type is not None and not is_json(content_type):
        return AppError("The request body must be JSON (Content-Type: application/json)", 415)
    problems = []
    for error in errors:
        location = tuple(str(part) for part in error.get("loc", ()))
        if location == ("body",):
            if error.get("type") == "missing":
                problems.append(FieldProblem("body", "missing", "is required (a JSON object)"))
            else:
                problems.append(FieldProblem("body", "invalid", "must be a JSON object"))
            continue
        # ("body", field), ("query", name): the field the client named, never a part of it.
        field = location[1] if len(location) > 1 else "request"
        problems.append(field_problem(field, error))
    return ValidationFailed(problems)


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (RFC 9110 ``Allow``), HEAD wherever GET
    is (``HeadAsGet``).

    Starlette's 405 names only the methods of the first route whose path matched, but one
    path is often served by several routes (list and create, get and update): ask the
    router, method by method, which ones would be served.
    """
    routes = request.app.router.routes

    def served(method: str) -> bool:
        scope = {**request.scope, "method": "GET" if method == "HEAD" else method}
        return any(route.matches(scope)[0] is Match.FULL for route in routes)

    return ", ".join(method for method in _HTTP_METHODS if served(method))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def on_app_error(_request: Request, exc: AppError) -> JSONResponse:
        return exception_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_error(request, exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = exception_response(exc)
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(request)
        return response

    @app.exception_handler(DataError)
    async def on_unstorable_value(_request: Request, exc: DataError) -> JSONResponse:
        return exception_response(exc)

    @app.exception_handler(DBAPIError)
    async def on_database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        return exception_response(exc)

    @app.exception_handler(OSError)
    async def on_disk_error(_request: Request, exc: OSError) -> JSONResponse:
        return exception_response(exc)

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return exception_response(exc)


# The answers to failures of the database or the disk (db.failures tells them apart), for
# every door: the REST API and the package protocols are served by one app.
DATABASE_UNAVAILABLE = AppError(
    "The database is unavailable; please retry", 503, headers={"Retry-After": "5"}
)
STORAGE_FULL = AppError(
    "Insufficient storage: there is no room to store this; please retry later",
    507,
    headers={"Retry-After": "60"},
)


def _cause(exc: Exception) -> object:
    """What failed, without the statement and its parameters (SQLAlchemy's message)."""
    return exc.orig if isinstance(exc, DBAPIError) else exc


def exception_response(exc: Exception) -> JSONResponse:
    """The answer to an exception raised while serving a request, logged where it is ours."""
    if isinstance(exc, AppError):
        if isinstance(exc, CommitOutcomeUnknown):
            DATABASE_ERRORS.labels("commit_lost").inc()
        return error_response(exc)
    if isinstance(exc, StarletteHTTPException):  # e.g. the 413 of BodySizeLimit
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        headers = dict(exc.headers) if exc.headers else None
        return error_response(AppError(message, exc.status_code, headers=headers))
    if isinstance(exc, DataError):
        # e.g. a NUL character in a path or query value, which PostgreSQL refuses in text.
        return error_response(
            AppError("The request holds a value that cannot be used (such as a NUL)", 400)
        )
    if is_storage_full(exc):
        logger.warning("storage full: %s", _cause(exc))
        STORAGE_ERRORS.labels("full").inc()
        return error_response(STORAGE_FULL)
    if is_busy(exc):
        logger.warning("database busy: %s", _cause(exc))
        DATABASE_ERRORS.labels("busy").inc()
        return error_response(
            AppError("The database is busy; please retry", 503, headers={"Retry-After": "1"})
        )
    if is_unavailable(exc):
        logger.warning("database unavailable: %s", _cause(exc))
        DATABASE_ERRORS.labels("unavailable").inc()
        return error_response(DATABASE_UNAVAILABLE)
    if isinstance(exc, DBAPIError):
        logger.exception("database error", exc_info=exc)
        DATABASE_ERRORS.labels("error").inc()
        return error_response(AppError("Internal server error", 500))
    logger.exception("unhandled error", exc_info=exc)
    return error_response(AppError("Internal server error", 500))


def _not_json(constant: str) -> NoReturn:
    raise json.JSONDecodeError(f"{constant} is not JSON", constant, 0)


# How deep arrays and objects may nest in a JSON body (RFC 8259 lets a parser set the
# limit). Request bodies and leak reports nest two or three levels.
MAX_JSON_DEPTH = 64
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def json_depth_exceeds(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays and objects more than ``max_depth`` deep, found before
    parsing it: Python's parser recurses once per level with no limit of its own.

    The brackets inside strings are text: escaped backslashes and quotes are dropped, then
    every other quote opens or closes a string (UTF-8 never puts these bytes inside a
    character). What stays outside strings is counted; invalid JSON may be judged deeper
    than it is, never shallower, and fails to parse anyway.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:  # most bodies: too few to nest
        return False
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    depth = 0
    for bracket in structure:
        if bracket in b"[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def strict_json(body: bytes) -> Any:
    """Parses RFC 8259 JSON only: UTF-8 without a byte order mark, no NaN or Infinity,
    nested at most ``MAX_JSON_DEPTH`` deep.

    Python's parser accepts the first three, so a malformed body could pass unnoticed; and
    every failure (invalid UTF-8, nesting too deep, an integer too long) becomes a
    ``JSONDecodeError``, which FastAPI reports and we answer with a clear 400.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("Invalid UTF-8", "", exc.start) from exc
    if json_depth_exceeds(body):
        raise json.JSONDecodeError(f"Nested more than {MAX_JSON_DEPTH} levels deep", "", 0)
    try:
        return json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from exc


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_json(await self.body())
        return self._json


class JsonRoute(APIRoute):
    """Reads JSON bodies with :func:`strict_json`, and sends the responses that hold a
    secret (their model has a ``kit.schemas.Secret`` field) with ``Cache-Control:
    no-store``, so no cache or browser keeps them; a router's ``route_class``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        secret = carries_secret(self.response_model)

        async def strict_json_handler(request: Request) -> Response:
            response = await handler(StrictJsonRequest(request.scope, request.receive))
            if secret:
                response.headers["Cache-Control"] = "no-store"
            return response

        return strict_json_handler


class BodySizeLimit:
    """Refuses request bodies over a limit with 413, without holding them in memory.

    A declared ``Content-Length`` over the limit is refused before the app runs; a body
    without one is counted as the app reads it, and reading past the limit raises the 413.
    Some routes get a limit of their own (``larger``: package uploads a larger one, leak
    reports a smaller one).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        larger: Sequence[tuple[str, re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger

    def limit_for(self, method: str, path: str) -> int:
        for larger_method, pattern, limit in self.larger:
            if method == larger_method and pattern.fullmatch(path):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        too_large = f"The request body is too large (the limit is {limit} bytes)"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                declared_length = int(declared)
            except ValueError:
                await error_response(AppError("Invalid Content-Length", 400))(scope, receive, send)
                return
            if declared_length > limit:
                await error_response(AppError(too_large, 413))(scope, receive, send)
                return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI lets HTTPExceptions through its body parsing untouched.
                    raise StarletteHTTPException(413, detail=too_large)
            return message

        await self.app(scope, counted_receive, send)


class ResponseStartRewrite:
    """A middleware that rewrites the start (status and headers) of every HTTP response
    of the app, errors included: subclasses say how, in :meth:`rewrite`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def rewrite(self, scope: Scope, message: Message) -> Message:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_rewritten(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = self.rewrite(scope, message)
            await send(message)

        await self.app(scope, receive, send_rewritten)


class RateLimitHeaders(ResponseStartRewrite):
    """Adds the request's ``RateLimit-*`` headers to its response, errors included."""

    def rewrite(self, scope: Scope, message: Message) -> Message:
        extra = scope.get("state", {}).get("rate_limit_headers")
        if not extra:
            return message
        present = {name.lower() for name, _ in message.get("headers", [])}
        added = [
            (name.lower().encode(), value.encode())
            for name, value in extra.items()
            if name.lower().encode() not in present
        ]
        return {**message, "headers": [*message.get("headers", []), *added]}


class HeadAsGet:
    """Answers HEAD as GET without the body, on every route of the app (RFC 9110 9.3.2).

    The request goes through as a GET (same authentication, rate limits, handler), so the
    headers, ``Content-Length`` and ``RateLimit-*`` included, are GET's; only the body is
    dropped. FastAPI's routes serve no HEAD of their own, and listing HEAD beside every GET
    would double the OpenAPI document, so this is the one mechanism, for both doors.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        # In place: what the router leaves in the scope (the matched route) is read by
        # the middleware outside (api.observability), which hands the app a copy of the
        # server's scope (whose HEAD tells the server to send no body).
        scope["method"] = "GET"
        await self.app(scope, receive, headers_only)


def relative_location(location: str) -> str:
    """A redirect target as a path on this server: no scheme or host, and no leading
    ``//`` or ``\\`` that a client would read as another host."""
    parts = urlsplit(location)
    if not (parts.scheme or parts.netloc or location.startswith(("/", "\\"))):
        return location  # relative to the request's own path already
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, parts.fragment))


class RelativeRedirects(ResponseStartRewrite):
    """Every redirect the app answers points at this server, relative to the request,
    but for the ones the app marks as leaving it on purpose.

    Starlette's trailing-slash redirect (``redirect_slashes``) writes an absolute URL
    built from the request's ``Host`` header, so ``Host: evil.example`` would send the
    client there. A relative ``Location`` (RFC 9110 10.2.2) resolves against the URL the
    client actually asked for, behind any proxy, whatever the Host header says. A
    response that carries the ``EXTERNAL_REDIRECT`` header (a download's presigned URL in
    the package store; no client can set a response's headers) keeps its ``Location``,
    and the marker is removed.
    """

    def rewrite(self, scope: Scope, message: Message) -> Message:
        if not 300 <= message["status"] < 400:
            return message
        sent = message.get("headers", [])
        marker = EXTERNAL_REDIRECT.encode("latin-1")
        if any(name.lower() == marker for name, _ in sent):
            return {**message, "headers": [(n, v) for n, v in sent if n.lower() != marker]}
        headers = [
            (name, relative_location(value.decode("latin-1")).encode("latin-1"))
            if name.lower() == b"location"
            else (name, value)
            for name, value in sent
        ]
        return {**message, "headers": headers}
