"""What Buildkite's official Go client (go-buildkite v5) sends and how it reads the answers.

Go and the module proxy are out of reach here, so these tests speak for the client: each Go
call is rebuilt request for request (method, path, query, headers, body bytes), sent to the
live server, and its answer is decoded the way ``encoding/json`` decodes it into the
client's structs. The facts relied on, read from github.com/buildkite/go-buildkite (module
``github.com/buildkite/go-buildkite/v5``, ``go 1.25.0`` in ``go.mod``):

``buildkite.go``
  * ``NewClient``: ``BaseURL`` defaults to ``https://api.buildkite.com/``; ``UserAgent`` is
    ``DefaultUserAgent = "go-buildkite/" + Version`` (``version.go`` takes ``Version`` from the
    module's build info, so here we send ``go-buildkite/5.0.0``); ``maxRetries`` is
    ``DefaultMaxRetries = 3``; the HTTP client is ``http.DefaultClient``.
  * ``WithTokenAuth(token)`` sets ``Authorization: Bearer <token>``. There is no Accept header.
  * ``resolveURL`` joins the base path and the relative path with one ``/`` and keeps the
    relative URL's query.
  * ``NewRequest`` sets ``Authorization`` (if any) and ``User-Agent``. A non-nil body that is not
    an ``io.Reader`` gets ``Content-Type: application/json`` and is written with
    ``json.NewEncoder(buf).Encode(body)``: compact JSON, ``<``, ``>``, ``&``, U+2028 and U+2029
    escaped as ``\\u003c`` and so on, struct field order, and a trailing newline. A nil body
    sends no Content-Type. ``net/http`` itself adds ``Host``, ``Content-Length`` (for the
    ``bytes.Buffer`` body) and ``Accept-Encoding: gzip``, undoing gzip transparently (no other
    encoding); ``http.Client`` follows redirects (301/302/303 turn a POST into a GET).
  * ``Do``: a ``roko`` retrier makes up to ``maxRetries + 1`` attempts and retries only 429s
    (rewindable bodies are replayed). ``retryDelay``: ``RateLimit-Reset`` read with
    ``strconv.Atoi`` as delta-seconds, if ``>= 0`` capped at 120, plus 500 ms plus up to 1 s of
    jitter; otherwise ``2**min(attempt, 5)`` s capped at 30 s plus jitter. Then
    ``newResponse`` (pagination values), ``checkResponse``, and, when ``v != nil``,
    ``json.NewDecoder(resp.Body).Decode(v)``: the first JSON value; an empty body is ``EOF``,
    an error.
  * ``checkResponse``: status 200..299 is success. Otherwise the whole body is
    ``json.Unmarshal``-ed into ``ErrorResponse{Message string `json:"message"`}``; a body that
    is not such JSON yields a wrapped plain error that carries no message.
  * ``Response.populatePageValues``: only the first ``Link`` header value, split on ``,``; each
    link split on ``;`` needs at least two segments and a ``<href>``; ``url.Parse`` and
    ``Query().Get("page")`` must give a non-empty page; a trimmed segment equal to
    ``rel="next"``, ``rel="prev"``, ``rel="first"`` or ``rel="last"`` sets ``NextPage``,
    ``PrevPage``, ``FirstPage`` or ``LastPage`` to ``strconv.Atoi(page)`` (0 on error).
  * ``ListOptions{Page `url:"page,omitempty"`; PerPage `url:"per_page,omitempty"`}`` is
    encoded by ``addOptions`` (go-querystring, ``url.Values.Encode``: keys sorted).

``package_registry_tokens.go`` (``PackageRegistryTokensService``)
  * ``Get``: GET ``v2/packages/organizations/{org}/registries/{registry}/tokens/{id}``.
  * ``List``: GET ``…/tokens`` with no options at all (no query string), into
    ``[]PackageRegistryToken``. Its comment says it "retrieves all" tokens.
  * ``Create``: POST ``…/tokens`` with
    ``CreatePackageRegistryTokenInput{Description string `json:"description"`}`` (no
    omitempty: an empty description is sent as ``""``).
  * ``Update``: **POST** ``…/tokens/{id}`` (its comment: "unlike most Update methods in this
    client, this issues a POST, not a PATCH") with
    ``UpdatePackageRegistryTokenInput{Description Optional[string] `json:"description,omitzero"`}``.
  * ``Delete(ctx, org, registry, id) (*Response, error)``, as
    ``examples/package_registry_tokens/delete/main.go`` calls it. Its body is not in the
    indexed copy of the file; like its sibling ``PackageRegistriesService.Delete``
    (``package_registries.go``) we take it to be ``NewRequest("DELETE", u, nil)`` and
    ``Do(req, nil)``: any 2xx, the body unread.
  * ``PackageRegistryToken``: ``ID string id``, ``GraphQLID string graphql_id``,
    ``Description string description``, ``URL string url``, ``CreatedAt *Timestamp created_at``,
    ``CreatedBy PackageRegistryTokenCreator created_by``,
    ``Organization PackageRegistryTokenOrg organization``,
    ``Registry PackageRegistryTokenRegistry registry``, ``Token string token`` (only ever filled
    by Create). Creator: ``id, graphql_id, name, email, avatar_url`` strings and
    ``created_at *Timestamp``. Org: ``id, slug, url, web_url``. Registry:
    ``id, graphql_id, slug, url, web_url``. Every tag has ``omitempty``.

``optional.go``: ``Optional[T]{value T; set bool}``; ``IsZero()`` is ``!set``, so
``omitzero`` leaves an unset field out (the body is ``{}``); ``Some(v)`` sends ``v``, even ``""``.

``timestamp.go``: ``Timestamp{time.Time}``; ``UnmarshalJSON`` is
``time.Parse(`"` + time.RFC3339Nano + `"`, data)``, falling back to the webhook format
``"2006-01-02 15:04:05 MST"``.

``access_tokens.go``: ``AccessTokensService.Get`` is GET ``v2/access-token`` into
``AccessToken{UUID string uuid; Scopes []string scopes; Description string description;
CreatedAt *Timestamp created_at; User struct{Name string name; Email string email} user}``;
``Revoke`` is DELETE ``v2/access-token`` with ``Do(req, nil)``.

``UserService`` (the indexed ``user.go``): ``CurrentUser`` is GET ``v2/user`` into
``User{ID id; Name name; Email email; CreatedAt *Timestamp created_at}``.

``OrganizationsService.Get`` (``buildkite/organizations.go``; the root ``organizations_test.go``
shows v5 returns a value whose ``ID`` is a plain string): GET ``v2/organizations/{slug}`` into
``Organization{ID id; GraphQLID graphql_id; URL url; WebURL web_url; Name name; Slug slug;
Repository repository; PipelinesURL pipelines_url; EmojisURL emojis_url; AgentsURL agents_url;
CreatedAt *Timestamp created_at}``.

``package_registries.go``: ``PackageRegistriesService.Get`` is GET
``v2/packages/organizations/{org}/registries/{registry}`` into ``PackageRegistry{ID id;
GraphQLID graphql_id; Slug slug; URL url; WebURL web_url; Name name; Ecosystem ecosystem;
Description description; Emoji emoji; Color color; OIDCPolicy oidc_policy}`` (all ``string``)
and ``Public bool public``. (Its ``Update`` sends PATCH.)

And ``encoding/json`` itself: unknown keys are ignored; keys match the tag exactly, else
case-insensitively; ``null`` leaves a value at its zero (a pointer nil); a value of the wrong
JSON type is an error, and so is a timestamp that ``time.Parse`` refuses.
"""

import base64
import json
import random
import re
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar, cast, get_args, get_origin, get_type_hints
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.harness import Seeder, Server, Tenant, in_process_server

GO_USER_AGENT = "go-buildkite/5.0.0"
GO_REQUEST_HEADERS_WITH_BODY = {
    "host",
    "authorization",
    "user-agent",
    "content-type",
    "content-length",
    "accept-encoding",
}
GO_REQUEST_HEADERS_WITHOUT_BODY = {"host", "authorization", "user-agent", "accept-encoding"}
BLANK_DESCRIPTION = "Validation failed: Description can't be blank"

T = TypeVar("T")


# --- The Go structs, field for field, with their json tags -------------------------------


def tag(name: str) -> dict[str, str]:
    """A struct field's ``json:"name"`` tag (each field's default is Go's zero value)."""
    return {"json": name}


@dataclass
class PackageRegistryTokenCreator:
    id: str = field(default="", metadata=tag("id"))
    graphql_id: str = field(default="", metadata=tag("graphql_id"))
    name: str = field(default="", metadata=tag("name"))
    email: str = field(default="", metadata=tag("email"))
    avatar_url: str = field(default="", metadata=tag("avatar_url"))
    created_at: datetime | None = field(default=None, metadata=tag("created_at"))


@dataclass
class PackageRegistryTokenOrg:
    id: str = field(default="", metadata=tag("id"))
    slug: str = field(default="", metadata=tag("slug"))
    url: str = field(default="", metadata=tag("url"))
    web_url: str = field(default="", metadata=tag("web_url"))


@dataclass
class PackageRegistryTokenRegistry:
    id: str = field(default="", metadata=tag("id"))
    graphql_id: str = field(default="", metadata=tag("graphql_id"))
    slug: str = field(default="", metadata=tag("slug"))
    url: str = field(default="", metadata=tag("url"))
    web_url: str = field(default="", metadata=tag("web_url"))


@dataclass
class PackageRegistryToken:
    id: str = field(default="", metadata=tag("id"))
    graphql_id: str = field(default="", metadata=tag("graphql_id"))
    description: str = field(default="", metadata=tag("description"))
    url: str = field(default="", metadata=tag("url"))
    created_at: datetime | None = field(default=None, metadata=tag("created_at"))
    created_by: PackageRegistryTokenCreator = field(
        default_factory=PackageRegistryTokenCreator, metadata=tag("created_by")
    )
    organization: PackageRegistryTokenOrg = field(
        default_factory=PackageRegistryTokenOrg, metadata=tag("organization")
    )
    registry: PackageRegistryTokenRegistry = field(
        default_factory=PackageRegistryTokenRegistry, metadata=tag("registry")
    )
    token: str = field(default="", metadata=tag("token"))


@dataclass
class AccessTokenUser:
    name: str = field(default="", metadata=tag("name"))
    email: str = field(default="", metadata=tag("email"))


@dataclass
class AccessToken:
    uuid: str = field(default="", metadata=tag("uuid"))
    scopes: list[str] = field(default_factory=list, metadata=tag("scopes"))
    description: str = field(default="", metadata=tag("description"))
    created_at: datetime | None = field(default=None, metadata=tag("created_at"))
    user: AccessTokenUser = field(default_factory=AccessTokenUser, metadata=tag("user"))


@dataclass
class User:
    id: str = field(default="", metadata=tag("id"))
    name: str = field(default="", metadata=tag("name"))
    email: str = field(default="", metadata=tag("email"))
    created_at: datetime | None = field(default=None, metadata=tag("created_at"))


@dataclass
class Organization:
    id: str = field(default="", metadata=tag("id"))
    graphql_id: str = field(default="", metadata=tag("graphql_id"))
    url: str = field(default="", metadata=tag("url"))
    web_url: str = field(default="", metadata=tag("web_url"))
    name: str = field(default="", metadata=tag("name"))
    slug: str = field(default="", metadata=tag("slug"))
    repository: str = field(default="", metadata=tag("repository"))
    pipelines_url: str = field(default="", metadata=tag("pipelines_url"))
    emojis_url: str = field(default="", metadata=tag("emojis_url"))
    agents_url: str = field(default="", metadata=tag("agents_url"))
    created_at: datetime | None = field(default=None, metadata=tag("created_at"))


@dataclass
class PackageRegistry:
    id: str = field(default="", metadata=tag("id"))
    graphql_id: str = field(default="", metadata=tag("graphql_id"))
    slug: str = field(default="", metadata=tag("slug"))
    url: str = field(default="", metadata=tag("url"))
    web_url: str = field(default="", metadata=tag("web_url"))
    name: str = field(default="", metadata=tag("name"))
    ecosystem: str = field(default="", metadata=tag("ecosystem"))
    description: str = field(default="", metadata=tag("description"))
    emoji: str = field(default="", metadata=tag("emoji"))
    color: str = field(default="", metadata=tag("color"))
    public: bool = field(default=False, metadata=tag("public"))
    oidc_policy: str = field(default="", metadata=tag("oidc_policy"))


@dataclass
class ErrorResponseBody:
    message: str = field(default="", metadata=tag("message"))


# --- encoding/json, as far as these structs need it ----------------------------------------


class GoDecodeError(Exception):
    """Where the Go client's ``Do`` would return a decoding error instead of a value."""


class Unset:
    """An ``Optional[T]`` nobody called ``Some`` on: ``omitzero`` leaves it out."""


UNSET = Unset()

# time.RFC3339Nano as time.Parse reads it: a "T", optional fraction, "Z" or a numeric offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})"
)


def go_parse_timestamp(value: object, path: str) -> datetime:
    """``Timestamp.UnmarshalJSON``: ``time.Parse`` with ``"RFC3339Nano"`` (quotes included)."""
    if not isinstance(value, str):
        raise GoDecodeError(f"{path}: {value!r} is not a quoted RFC 3339 time")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise GoDecodeError(f"{path}: parsing time {value!r} as RFC3339Nano failed")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone == "Z":
        tz = UTC
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise GoDecodeError(f"{path}: time zone offset out of range in {value!r}")
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as error:
        raise GoDecodeError(f"{path}: parsing time {value!r}: {error}") from error


def _reject_constant(name: str) -> object:
    raise GoDecodeError(f"invalid character in JSON: {name}")


def _decode_value(hint: Any, value: object, path: str) -> Any:
    """``encoding/json`` into the Go types the contract tests' structs use: ``string``,
    ``bool``, ``int64``, ``time.Time`` and ``*Timestamp``, pointers (``X | None``), slices,
    ``map[string]any`` / ``map[string]string`` and structs."""
    if hint is str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        raise GoDecodeError(f"{path}: cannot unmarshal {value!r} into a Go string")
    if hint is bool:
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        raise GoDecodeError(f"{path}: cannot unmarshal {value!r} into a Go bool")
    if hint is int:  # int64
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise GoDecodeError(f"{path}: cannot unmarshal {value!r} into a Go int64")
        return value
    if hint is datetime:  # time.Time, not a pointer: null leaves the zero time
        return datetime.min if value is None else go_parse_timestamp(value, path)
    origin = get_origin(hint)
    if origin is types.UnionType:  # a pointer: null is nil
        (inner,) = [arg for arg in get_args(hint) if arg is not type(None)]
        if value is None:
            return None
        if inner is datetime:  # *Timestamp
            return go_parse_timestamp(value, path)
        return _decode_value(inner, value, path)
    if origin is dict:  # map[string]any, or map[string]string
        _key, element = get_args(hint)
        if value is None:
            return {}
        if not isinstance(value, dict) or (
            element is str and not all(isinstance(item, str) for item in value.values())
        ):
            raise GoDecodeError(f"{path}: cannot unmarshal {value!r} into a Go map")
        return dict(value)
    if origin is list:
        (element,) = get_args(hint)
        if value is None:
            return []
        if not isinstance(value, list):
            raise GoDecodeError(f"{path}: cannot unmarshal {value!r} into a Go slice")
        return [_decode_value(element, item, f"{path}[{n}]") for n, item in enumerate(value)]
    if isinstance(hint, type) and is_dataclass(hint):
        return _decode_struct(hint, value, path)
    raise AssertionError(f"no Go type for {hint!r}")


def go_decode(hint: Any, value: object, path: str = "$") -> Any:
    """``value`` (decoded JSON) as ``encoding/json`` would unmarshal it into ``hint``."""
    return _decode_value(hint, value, path)


def _decode_struct(struct: type[T], value: object, path: str) -> T:
    decoded = struct()
    if value is None:
        return decoded
    if not isinstance(value, dict):
        raise GoDecodeError(f"{path}: cannot unmarshal {value!r} into Go struct {struct.__name__}")
    hints = get_type_hints(struct)
    tagged = {f.metadata["json"]: f.name for f in fields(cast(Any, struct))}
    for key, item in value.items():
        name = tagged.get(key)
        if name is None:  # encoding/json falls back to a case-insensitive match
            name = next((n for t, n in tagged.items() if t.casefold() == key.casefold()), None)
        if name is not None:
            setattr(decoded, name, _decode_value(hints[name], item, f"{path}.{key}"))
    return decoded


def go_decoder_decode(raw: bytes) -> object:
    """``json.NewDecoder(body).Decode``: the first JSON value; nothing at all is ``EOF``."""
    text = raw.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    if start == len(text):
        raise GoDecodeError("EOF: the response body is empty")
    try:
        value, _ = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise GoDecodeError(f"invalid JSON: {error}") from error
    return value


def go_unmarshal(raw: bytes) -> object:
    """``json.Unmarshal``: exactly one JSON value, surrounded only by whitespace."""
    try:
        return json.loads(raw.decode("utf-8", errors="replace"), parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise GoDecodeError(f"invalid JSON: {error}") from error


def go_json_encode(body: dict[str, object]) -> bytes:
    """``json.NewEncoder(buf).Encode(body)``: compact, HTML-safe escapes, a trailing newline."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return (text + "\n").encode("utf-8")


# --- net/url, strconv and the client's pagination and retry helpers ------------------------


def go_atoi(text: str) -> int | None:
    """``strconv.Atoi``: an optional sign and decimal digits, nothing else, within int64."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


@dataclass(frozen=True)
class Pages:
    next_page: int = 0
    prev_page: int = 0
    first_page: int = 0
    last_page: int = 0


def go_populate_page_values(link_values: list[str]) -> Pages:
    """``Response.populatePageValues``, step for step."""
    found: dict[str, int] = {}
    if not link_values:
        return Pages()
    for link in link_values[0].split(","):
        segments = link.strip().split(";")
        if len(segments) < 2:
            continue
        if not (segments[0].startswith("<") and segments[0].endswith(">")):
            continue
        try:
            query = urlsplit(segments[0][1:-1]).query
        except ValueError:
            continue
        page = next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == "page"), "")
        if page == "":
            continue
        for segment in segments[1:]:
            rel = {
                'rel="next"': "next_page",
                'rel="prev"': "prev_page",
                'rel="first"': "first_page",
                'rel="last"': "last_page",
            }.get(segment.strip())
            if rel is not None:
                found[rel] = go_atoi(page) or 0
    return Pages(**found)


def go_retry_delay(headers: httpx.Headers, attempt: int, jitter: float) -> float:
    """``retryDelay``: seconds to wait after a 429 before attempt ``attempt + 1``."""
    reset = headers.get("RateLimit-Reset", "")
    if reset:
        seconds = go_atoi(reset)
        if seconds is not None and seconds >= 0:
            return min(seconds, 120) + 0.5 + jitter
    return min(1 << min(attempt, 5), 30) + jitter


def go_add_options(path: str, page: int = 0, per_page: int = 0) -> str:
    """``addOptions(u, &ListOptions{...})``: omitempty fields, keys sorted."""
    values = {"page": page, "per_page": per_page}
    query = urlencode(sorted((k, str(v)) for k, v in values.items() if v))
    return f"{path}?{query}" if query else path


# --- The client --------------------------------------------------------------------------


class GoErrorResponse(Exception):
    """``*ErrorResponse``: a non-2xx answer whose body decoded as ``{"message": ...}``."""

    def __init__(self, response: httpx.Response, message: str) -> None:
        self.response = response
        self.status = response.status_code
        self.message = message
        self.raw_body = response.content
        super().__init__(
            f"{response.request.method} {response.request.url}: {self.status} {message}"
        )


class GoUndecodableError(Exception):
    """The wrapped error ``checkResponse`` returns when the error body is not JSON."""


@dataclass
class GoResponse:
    """``*buildkite.Response``: the HTTP response and its pagination values."""

    http: httpx.Response
    pages: Pages
    attempts: int

    @property
    def status(self) -> int:
        return self.http.status_code


class GoClient:
    """``buildkite.NewClient(WithBaseURL(...), WithTokenAuth(...))``, service by service."""

    def __init__(
        self,
        server: Server,
        token: str | None,
        *,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = server.base_url
        self.auth_header = f"Bearer {token}" if token is not None else ""
        self.max_retries = max_retries
        self.sleep = sleep
        # Redirects not followed, so that the check in ``send`` sees them.
        self.http = server.client(timeout=60).__enter__()
        self.sent: list[httpx.Request] = []

    def close(self) -> None:
        self.http.__exit__(None, None, None)

    def resolve_url(self, rel: str) -> str:
        base = urlsplit(self.base_url)
        parsed = urlsplit(rel)
        base_path = base.path.rstrip("/")
        path = f"{base_path}/{parsed.path.lstrip('/')}"
        return urlunsplit((base.scheme, base.netloc, path, parsed.query or base.query, ""))

    def new_request(self, method: str, url: str, body: dict[str, object] | None) -> httpx.Request:
        headers: dict[str, str] = {}
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        headers["User-Agent"] = GO_USER_AGENT
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = go_json_encode(body)
        headers["Accept-Encoding"] = "gzip"  # net/http's Transport adds it
        return httpx.Request(method, self.resolve_url(url), headers=headers, content=content)

    def send(self, request: httpx.Request) -> tuple[httpx.Response, int]:
        """The retry loop of ``Do``: 429s are retried after ``retryDelay``."""
        attempt = 0
        while True:
            self.sent.append(request)
            response = self.http.send(request)
            response.read()
            assert not (300 <= response.status_code < 400 and "location" in response.headers), (
                f"{request.method} {request.url} redirected to {response.headers['location']}: "
                "Go's http.Client would follow it (turning a POST into a GET on 301/302/303)"
            )
            encoding = response.headers.get("content-encoding", "identity")
            assert encoding in ("identity", "gzip"), f"Go cannot undo Content-Encoding {encoding}"
            if response.status_code != 429 or attempt >= self.max_retries:
                return response, attempt + 1
            self.sleep(go_retry_delay(response.headers, attempt, random.random()))
            attempt += 1

    def _do(self, request: httpx.Request) -> GoResponse:
        response, attempts = self.send(request)
        result = GoResponse(
            response, go_populate_page_values(response.headers.get_list("link")), attempts
        )
        if not 200 <= response.status_code <= 299:
            try:
                error = _decode_struct(ErrorResponseBody, go_unmarshal(response.content), "$")
            except GoDecodeError as problem:
                raise GoUndecodableError(
                    f"{request.method} {request.url}: {response.status_code}, but parsing "
                    f"the body failed ({problem}): {response.content!r}"
                ) from problem
            raise GoErrorResponse(response, error.message)
        return result

    def do(self, request: httpx.Request, into: type[T]) -> tuple[T, GoResponse]:
        result = self._do(request)
        return _decode_struct(into, go_decoder_decode(result.http.content), "$"), result

    def do_list(self, request: httpx.Request, element: type[T]) -> tuple[list[T], GoResponse]:
        result = self._do(request)
        value = go_decoder_decode(result.http.content)
        return cast(list[T], _decode_value(list[element], value, "$")), result  # type: ignore[valid-type]

    def do_without_body(self, request: httpx.Request) -> GoResponse:
        return self._do(request)

    # PackageRegistryTokensService
    @staticmethod
    def tokens_path(org: str, registry: str) -> str:
        return f"v2/packages/organizations/{org}/registries/{registry}/tokens"

    def registry_tokens_get(
        self, org: str, registry: str, token_id: str
    ) -> tuple[PackageRegistryToken, GoResponse]:
        url = f"{self.tokens_path(org, registry)}/{token_id}"
        return self.do(self.new_request("GET", url, None), PackageRegistryToken)

    def registry_tokens_list(
        self, org: str, registry: str
    ) -> tuple[list[PackageRegistryToken], GoResponse]:
        request = self.new_request("GET", self.tokens_path(org, registry), None)
        return self.do_list(request, PackageRegistryToken)

    def registry_tokens_create(
        self, org: str, registry: str, description: str
    ) -> tuple[PackageRegistryToken, GoResponse]:
        body: dict[str, object] = {"description": description}  # no omitempty
        request = self.new_request("POST", self.tokens_path(org, registry), body)
        return self.do(request, PackageRegistryToken)

    def registry_tokens_update(
        self, org: str, registry: str, token_id: str, description: str | Unset
    ) -> tuple[PackageRegistryToken, GoResponse]:
        body: dict[str, object] = {}
        if not isinstance(description, Unset):  # Optional[string] with omitzero
            body["description"] = description
        url = f"{self.tokens_path(org, registry)}/{token_id}"
        return self.do(self.new_request("POST", url, body), PackageRegistryToken)

    def registry_tokens_delete(self, org: str, registry: str, token_id: str) -> GoResponse:
        url = f"{self.tokens_path(org, registry)}/{token_id}"
        return self.do_without_body(self.new_request("DELETE", url, None))

    # AccessTokensService, UserService, OrganizationsService, PackageRegistriesService
    def access_tokens_get(self) -> tuple[AccessToken, GoResponse]:
        return self.do(self.new_request("GET", "v2/access-token", None), AccessToken)

    def access_tokens_revoke(self) -> GoResponse:
        return self.do_without_body(self.new_request("DELETE", "v2/access-token", None))

    def user_current_user(self) -> tuple[User, GoResponse]:
        return self.do(self.new_request("GET", "v2/user", None), User)

    def organizations_get(self, slug: str) -> tuple[Organization, GoResponse]:
        return self.do(self.new_request("GET", f"v2/organizations/{slug}", None), Organization)

    def package_registries_get(self, org: str, registry: str) -> tuple[PackageRegistry, GoResponse]:
        url = f"v2/packages/organizations/{org}/registries/{registry}"
        return self.do(self.new_request("GET", url, None), PackageRegistry)


# --- Helpers and fixtures ------------------------------------------------------------------


def header_names(request: httpx.Request) -> set[str]:
    return {name.lower() for name in request.headers}


def assert_go_request(
    request: httpx.Request, method: str, path: str, body: bytes | None, query: str = ""
) -> None:
    """The request is byte for byte what the Go client sends."""
    assert request.method == method
    assert request.url.path == "/" + path
    assert request.url.query.decode() == query
    assert request.headers["user-agent"] == GO_USER_AGENT
    assert request.headers["accept-encoding"] == "gzip"
    assert "accept" not in request.headers
    if body is None:
        assert header_names(request) == GO_REQUEST_HEADERS_WITHOUT_BODY
        assert request.content == b""
    else:
        assert header_names(request) == GO_REQUEST_HEADERS_WITH_BODY
        assert request.headers["content-type"] == "application/json"
        assert request.content == body
        assert request.headers["content-length"] == str(len(body))


def recent(moment: datetime | None) -> datetime:
    assert moment is not None, "a *Timestamp Go decoded as nil"
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5), moment
    return moment


def graphql_id_of(encoded: str) -> str:
    return base64.b64decode(encoded, validate=True).decode()


@pytest.fixture
def go(server: Server, tenant: Tenant) -> Iterator[GoClient]:
    client = GoClient(server, tenant.tokens["rw"])
    yield client
    client.close()


def token_path(tenant: Tenant, token_id: str = "") -> str:
    path = GoClient.tokens_path(tenant.org, tenant.registry)
    return f"{path}/{token_id}" if token_id else path


# --- PackageRegistryTokensService ----------------------------------------------------------


def test_create_sends_go_json_and_decodes_into_package_registry_token(
    go: GoClient, tenant: Tenant, server: Server
) -> None:
    description = "Usher <deploy> & co\u2028ünïcode"
    created, response = go.registry_tokens_create(tenant.org, tenant.registry, description)

    assert_go_request(
        go.sent[-1],
        "POST",
        token_path(tenant),
        b'{"description":"Usher \\u003cdeploy\\u003e \\u0026 co\\u2028'
        + "ünïcode".encode()
        + b'"}\n',
    )
    assert response.status == 200
    assert response.attempts == 1
    assert response.pages == Pages()
    assert created.description == description
    assert created.token.startswith("bkpt_")
    assert uuid.UUID(created.id).version == 7
    assert graphql_id_of(created.graphql_id) == f"RegistryToken---{created.id}"
    assert created.url == f"{server.base_url}/{token_path(tenant, created.id)}"
    recent(created.created_at)
    assert created.created_by.id == str(tenant.user_id)
    assert created.created_by.email == tenant.email
    assert created.created_by.name == "Test User"
    assert created.created_by.avatar_url == ""  # null: Go keeps the zero value
    assert created.created_by.created_at is not None
    assert graphql_id_of(created.created_by.graphql_id) == f"User---{tenant.user_id}"
    assert created.organization.slug == tenant.org
    assert created.organization.url == f"{server.base_url}/v2/organizations/{tenant.org}"
    assert created.registry.slug == tenant.registry
    assert created.registry.url == (
        f"{server.base_url}/v2/packages/organizations/{tenant.org}/registries/{tenant.registry}"
    )
    assert created.registry.web_url.startswith("http://web.example.test/")
    assert graphql_id_of(created.registry.graphql_id) == f"Registry---{created.registry.id}"


def test_create_with_an_empty_description_is_an_error_response(
    go: GoClient, tenant: Tenant
) -> None:
    with pytest.raises(GoErrorResponse) as raised:
        go.registry_tokens_create(tenant.org, tenant.registry, "")
    # CreatePackageRegistryTokenInput has no omitempty: the empty string is sent.
    assert_go_request(go.sent[-1], "POST", token_path(tenant), b'{"description":""}\n')
    assert raised.value.status == 422
    assert raised.value.message == BLANK_DESCRIPTION
    tokens, _ = go.registry_tokens_list(tenant.org, tenant.registry)
    assert tokens == []


def test_get_and_list_decode_the_token_without_its_secret(go: GoClient, tenant: Tenant) -> None:
    created, _ = go.registry_tokens_create(tenant.org, tenant.registry, "Usher")

    fetched, response = go.registry_tokens_get(tenant.org, tenant.registry, created.id)
    assert_go_request(go.sent[-1], "GET", token_path(tenant, created.id), None)
    assert response.status == 200
    assert fetched.token == ""
    assert fetched == replace(created, token="")

    listed, response = go.registry_tokens_list(tenant.org, tenant.registry)
    assert_go_request(go.sent[-1], "GET", token_path(tenant), None)
    assert response.status == 200
    assert listed == [fetched]
    # Everything fits on one page: no Link relations, so every page value stays 0.
    assert response.pages == Pages()


def test_update_is_a_post_that_sends_description_only_when_set(
    go: GoClient, tenant: Tenant
) -> None:
    created, _ = go.registry_tokens_create(tenant.org, tenant.registry, "Usher")
    path = token_path(tenant, created.id)

    renamed, response = go.registry_tokens_update(
        tenant.org, tenant.registry, created.id, "Renamed <x>"
    )
    assert_go_request(go.sent[-1], "POST", path, b'{"description":"Renamed \\u003cx\\u003e"}\n')
    assert response.status == 200
    assert renamed.description == "Renamed <x>"
    assert renamed.token == ""
    assert (renamed.id, renamed.created_at) == (created.id, created.created_at)

    unchanged, response = go.registry_tokens_update(tenant.org, tenant.registry, created.id, UNSET)
    assert_go_request(go.sent[-1], "POST", path, b"{}\n")
    assert response.status == 200
    assert unchanged == renamed

    with pytest.raises(GoErrorResponse) as raised:
        go.registry_tokens_update(tenant.org, tenant.registry, created.id, "")
    assert_go_request(go.sent[-1], "POST", path, b'{"description":""}\n')
    assert raised.value.status == 422
    assert raised.value.message == BLANK_DESCRIPTION
    assert go.registry_tokens_get(tenant.org, tenant.registry, created.id)[0] == renamed


def test_delete_succeeds_with_2xx_and_the_token_is_then_a_404_error_response(
    go: GoClient, tenant: Tenant
) -> None:
    created, _ = go.registry_tokens_create(tenant.org, tenant.registry, "Usher")

    response = go.registry_tokens_delete(tenant.org, tenant.registry, created.id)
    assert_go_request(go.sent[-1], "DELETE", token_path(tenant, created.id), None)
    assert response.status == 200

    with pytest.raises(GoErrorResponse) as fetched:
        go.registry_tokens_get(tenant.org, tenant.registry, created.id)
    assert fetched.value.status == 404
    assert fetched.value.message == "No registry token found"
    with pytest.raises(GoErrorResponse) as deleted_again:
        go.registry_tokens_delete(tenant.org, tenant.registry, created.id)
    assert deleted_again.value.status == 404
    assert deleted_again.value.message == "No registry token found"


def test_list_link_header_gives_go_its_page_numbers(go: GoClient, tenant: Tenant) -> None:
    created = [
        go.registry_tokens_create(tenant.org, tenant.registry, f"token {n}")[0].id
        for n in range(31)
    ]

    # List() sends no page options: Go sees the first page, and NextPage says there is more.
    first, response = go.registry_tokens_list(tenant.org, tenant.registry)
    assert_go_request(go.sent[-1], "GET", token_path(tenant), None)
    assert len(first) == 30
    assert response.pages == Pages(next_page=2, last_page=2)

    # The Go idiom for the next page: NewRequest on addOptions(u, &ListOptions{Page: 2}).
    url = go_add_options(token_path(tenant), page=response.pages.next_page)
    second, response = go.do_list(go.new_request("GET", url, None), PackageRegistryToken)
    assert_go_request(go.sent[-1], "GET", token_path(tenant), None, query="page=2")
    assert len(second) == 1
    assert response.pages == Pages(prev_page=1, first_page=1)

    seen = [token.id for token in first + second]
    assert len(set(seen)) == len(seen) == 31
    assert set(seen) == set(created)


def test_error_responses_carry_a_message_go_can_decode(
    server: Server, seeder: Seeder, tenant: Tenant
) -> None:
    reader = seeder.api_token(tenant.email, ("read_registries",))
    cases: list[tuple[str | None, Callable[[GoClient], object], int, str | None]] = [
        (None, lambda c: c.registry_tokens_list(tenant.org, tenant.registry), 401, None),
        (
            "bkua_not-a-real-token",
            lambda c: c.registry_tokens_list(tenant.org, tenant.registry),
            401,
            None,
        ),
        (
            reader,
            lambda c: c.registry_tokens_create(tenant.org, tenant.registry, "x"),
            403,
            "Your access token doesn't have the write_registries scope",
        ),
        (
            tenant.tokens["rw"],
            lambda c: c.registry_tokens_list(tenant.org, "no-such-registry"),
            404,
            "No registry found",
        ),
        (
            tenant.tokens["rw"],
            lambda c: c.registry_tokens_get(tenant.org, tenant.registry, "not-a-uuid"),
            404,
            None,
        ),
        (
            tenant.tokens["rw"],
            lambda c: c.registry_tokens_get(tenant.org, tenant.registry, str(uuid.uuid4())),
            404,
            None,
        ),
        (tenant.tokens["rw"], lambda c: c.package_registries_get("no_such_org", "x"), 404, None),
    ]
    for token, call, status, message in cases:
        client = GoClient(server, token)
        try:
            with pytest.raises(GoErrorResponse) as raised:
                call(client)
        finally:
            client.close()
        assert raised.value.status == status, raised.value
        assert raised.value.message, f"{raised.value.raw_body!r} has no message for Go to show"
        if message is not None:
            assert raised.value.message == message


# --- AccessTokensService, UserService, OrganizationsService, PackageRegistriesService ---


def test_access_token_get_and_revoke(server: Server, seeder: Seeder, tenant: Tenant) -> None:
    client = GoClient(server, seeder.api_token(tenant.email, ("read_registries",)))
    try:
        token, response = client.access_tokens_get()
        assert_go_request(client.sent[-1], "GET", "v2/access-token", None)
        assert response.status == 200
        uuid.UUID(token.uuid)
        assert token.scopes == ["read_registries"]
        recent(token.created_at)
        assert token.user == AccessTokenUser(name="Test User", email=tenant.email)

        response = client.access_tokens_revoke()
        assert_go_request(client.sent[-1], "DELETE", "v2/access-token", None)
        assert 200 <= response.status <= 299

        with pytest.raises(GoErrorResponse) as raised:
            client.access_tokens_get()
        assert raised.value.status == 401
        assert raised.value.message
    finally:
        client.close()


def test_user_current_user(server: Server, seeder: Seeder, tenant: Tenant) -> None:
    client = GoClient(server, seeder.api_token(tenant.email, ("read_user",)))
    try:
        user, response = client.user_current_user()
        assert_go_request(client.sent[-1], "GET", "v2/user", None)
        assert response.status == 200
        assert user.id == str(tenant.user_id)
        assert user.name == "Test User"
        assert user.email == tenant.email
        recent(user.created_at)
    finally:
        client.close()


def test_organizations_get(go: GoClient, tenant: Tenant, server: Server) -> None:
    token, _ = go.registry_tokens_create(tenant.org, tenant.registry, "Usher")
    organization, response = go.organizations_get(tenant.org)
    assert_go_request(go.sent[-1], "GET", f"v2/organizations/{tenant.org}", None)
    assert response.status == 200
    assert organization.id == token.organization.id
    assert graphql_id_of(organization.graphql_id) == f"Organization---{organization.id}"
    assert organization.slug == tenant.org
    assert organization.name == f"Org {tenant.org}"
    assert organization.url == token.organization.url
    assert organization.web_url == token.organization.web_url
    recent(organization.created_at)


def test_package_registries_get(go: GoClient, tenant: Tenant) -> None:
    token, _ = go.registry_tokens_create(tenant.org, tenant.registry, "Usher")
    registry, response = go.package_registries_get(tenant.org, tenant.registry)
    assert_go_request(
        go.sent[-1],
        "GET",
        f"v2/packages/organizations/{tenant.org}/registries/{tenant.registry}",
        None,
    )
    assert response.status == 200
    assert registry.id == token.registry.id
    assert registry.graphql_id == token.registry.graphql_id
    assert registry.slug == tenant.registry
    assert registry.url == token.registry.url
    assert registry.web_url == token.registry.web_url
    assert registry.name == "My Registry"
    assert registry.ecosystem
    assert registry.public is False


# --- Rate limits ---------------------------------------------------------------------------


def test_rate_limited_requests_are_retried_the_way_go_retries_them(tmp_path: Path) -> None:
    """Go reads ``RateLimit-Reset`` with ``strconv.Atoi`` and needs a JSON 429 body."""
    limits = {
        "REGISTRY_TOKENS_RATE_LIMIT_PER_ORGANIZATION": "20",
        "REGISTRY_TOKENS_RATE_LIMIT_WINDOW_SECONDS": "3",
    }
    with in_process_server(tmp_path, env=limits) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        _burst_then_retry_like_go(server, tenant)
        seeder.services.database.dispose()


def _burst_then_retry_like_go(server: Server, tenant: Tenant) -> None:
    burst = GoClient(server, tenant.tokens["rw"], max_retries=0)
    limited: httpx.Response | None = None
    try:
        for _ in range(260):
            response, _ = burst.send(burst.new_request("GET", token_path(tenant), None))
            reset = response.headers.get("RateLimit-Reset")
            if reset is not None:
                seconds = go_atoi(reset)
                assert seconds is not None, f"strconv.Atoi cannot read RateLimit-Reset {reset!r}"
                assert seconds >= 0, f"Go ignores a negative RateLimit-Reset {reset!r}"
            if response.status_code == 429:
                limited = response
                break
            assert response.status_code == 200
    finally:
        burst.close()
    assert limited is not None, "the server answered 260 requests in a row without a 429"

    error = _decode_struct(ErrorResponseBody, go_unmarshal(limited.content), "$")
    assert error.message
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        time.sleep(seconds)

    patient = GoClient(server, tenant.tokens["rw"], sleep=sleep)
    try:
        tokens, listed = patient.registry_tokens_list(tenant.org, tenant.registry)
    finally:
        patient.close()
    assert listed.status == 200
    assert tokens == []
    assert listed.attempts == len(waited) + 1
    assert waited, "Go's retry never waited"
    assert all(0.5 <= seconds <= 4.5 for seconds in waited), waited
