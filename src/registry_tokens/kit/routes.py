"""What every REST router shares: dependencies, error documentation, pages, updates."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from registry_tokens.audit.service import RequestContext
from registry_tokens.auth.caller import Caller
from registry_tokens.kit.http import current_caller, error_responses, request_context, services
from registry_tokens.kit.pagination import MAX_PAGE, Page
from registry_tokens.services import Services


# Async wrappers: FastAPI runs a sync dependency in a worker thread, a hop that costs more
# than these two lookups do.
async def _services(request: Request) -> Services:
    return services(request)


async def _request_context(request: Request) -> RequestContext:
    return request_context(request)


CallerDep = Annotated[Caller, Depends(current_caller)]
ServicesDep = Annotated[Services, Depends(_services)]
ContextDep = Annotated[RequestContext, Depends(_request_context)]
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]
PerPage = Annotated[
    int, Query(ge=1, le=2**31 - 1, description="Default 30; values above 100 mean 100.")
]

READ_ERRORS = error_responses(401, 403, 404, 422, 429, 503)
WRITE_ERRORS = error_responses(400, 401, 403, 404, 413, 415, 422, 429, 503)
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
