"""What every REST router shares: dependencies, error documentation, pages, updates.

The REST door knows no domain: an authenticated handler takes one dependency, :class:`Rest`
(:func:`rest`: the caller, authenticated by whatever was registered as the :class:`Gate`,
and the process's services, registered by type when the app is built); a public one takes
``provided(TheService)``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar, cast

from fastapi import APIRouter, Depends, Query, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry_tokens.api.http import error_responses
from registry_tokens.api.observability import note_caller
from registry_tokens.db import Database
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.pagination import MAX_PAGE, Page
from registry_tokens.kit.urls import Urls
from registry_tokens.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class PackageAccess:
    """What a Packages API route of one registry needs: the one place a credential that
    is not an API access token (an OIDC token) may be accepted on the REST API."""

    registry_slug: str
    scope: Scope
    action: str


class Gate(Protocol):
    """Authenticates an API request and counts it against its rate limits."""

    async def admit(
        self,
        authorization: str | None,
        organization_slug: str | None,
        context: RequestContext,
        package_access: PackageAccess | None = None,
    ) -> tuple[Caller, Mapping[str, str] | None]:
        """The caller and the ``RateLimit-*`` headers to send; raises 401 or 429 (whose
        headers then carry them)."""
        ...


def provided(kind: type[T]) -> Any:
    """A dependency on the process's instance of ``kind`` (see :func:`app.create_app`)."""

    async def dependency(request: Request) -> T:  # async: no thread hop for a lookup
        return cast(T, request.app.state.provided[kind])

    return Depends(dependency)


bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="bkua_…",
    description="An API access token (`bkua_…`) with the scopes each operation names.",
)


def request_context(request: Request) -> RequestContext:
    """The client's address (see :mod:`registry_tokens.kit.network`) and user agent."""
    settings: Settings = request.app.state.settings
    return RequestContext.of(request, settings.trusted_proxy_networks)


@dataclass(frozen=True)
class Rest:
    """What an authenticated REST handler works with: the caller, where the request came
    from, and the process's services (``service(TheService)``, the database, the URLs)."""

    caller: Caller
    context: RequestContext
    provided: Mapping[type, object]

    def service(self, kind: type[T]) -> T:
        return cast(T, self.provided[kind])

    @property
    def database(self) -> Database:
        return self.service(Database)

    @property
    def urls(self) -> Urls:
        return self.service(Urls)


async def rest(
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
) -> Rest:
    """Authenticates the request through the :class:`Gate` (``_credentials`` only
    documents the scheme in OpenAPI). One dependency: FastAPI's solving costs per
    dependency, on every request."""
    return await _admitted(request, None)


async def _admitted(request: Request, package_access: PackageAccess | None) -> Rest:
    provided: Mapping[type, object] = request.app.state.provided
    context = request_context(request)
    caller, headers = await cast(Gate, provided[Gate]).admit(
        request.headers.get("authorization"),
        request.path_params.get("org"),
        context,
        package_access,
    )
    if headers:  # RateLimitHeaders adds them to the response, whatever it is
        request.state.rate_limit_headers = headers
    note_caller(request, "api_token" if caller.user_id else "oidc_token", caller.token_id)
    return Rest(caller, context, provided)


def packages_rest(scope: Scope, action: str) -> Any:
    """:func:`rest` for a Packages API route of ``{registry}`` needing ``scope``: an OIDC
    token whose registry policy grants that scope is accepted here too."""

    async def dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    ) -> Rest:
        access = PackageAccess(request.path_params["registry"], scope, action)
        return await _admitted(request, access)

    return Depends(dependency)


async def _request_context(request: Request) -> RequestContext:
    return request_context(request)


RestDep = Annotated[Rest, Depends(rest)]
ContextDep = Annotated[RequestContext, Depends(_request_context)]
DatabaseDep = Annotated[Database, provided(Database)]
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]
PerPage = Annotated[
    int, Query(ge=1, le=2**31 - 1, description="Default 30; values above 100 mean 100.")
]

READ_ERRORS = error_responses(401, 403, 404, 422, 429, 503)
WRITE_ERRORS = error_responses(400, 401, 403, 404, 413, 415, 422, 429, 503, 507)
PAGED_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {
                "description": 'RFC 8288 links: rel="first", "prev", "next", "last"',
                "schema": {"type": "string"},
            }
        }
    },
    **READ_ERRORS,
}


def set_page_links(
    response: Response, page: Page[Any], base_url: str, filters: dict[str, str | None]
) -> None:
    """The ``Link`` header of a classic paged list (keeping its filters), readable by
    browsers too."""
    link = page.link_header(base_url, {k: v for k, v in filters.items() if v is not None})
    if link is not None:
        response.headers["Link"] = link
    response.headers["Access-Control-Expose-Headers"] = "Link"


def add_update_routes(
    router: APIRouter,
    path: str,
    endpoint: Callable[..., Any],
    *,
    noun: str,
    description: str,
    response_model: Any,
) -> None:
    """Buildkite documents updates as POST; its clients also send PATCH (go-buildkite's
    registries) and PUT (the Terraform provider). All three do the same."""
    for method, verb in (("POST", "update"), ("PATCH", "patch"), ("PUT", "put")):
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            operation_id=f"{verb}{noun.title().replace(' ', '')}",
            summary=f"Update a {noun} ({method})",
            description=description,
            response_model=response_model,
            responses=WRITE_ERRORS,
        )
