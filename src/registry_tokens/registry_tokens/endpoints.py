"""The Registry tokens API, as Buildkite specifies it. Handlers only translate HTTP."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import AwareDatetime, BeforeValidator

from registry_tokens.api.http import JsonRoute
from registry_tokens.api.routes import (
    PAGED_LIST_RESPONSES,
    READ_ERRORS,
    WRITE_ERRORS,
    PageNumber,
    PerPage,
    RestDep,
    add_update_routes,
    set_page_links,
)
from registry_tokens.kit.pagination import DEFAULT_PER_PAGE, PageRequest
from registry_tokens.kit.validation import rfc3339_timestamp
from registry_tokens.registry_tokens.schemas import (
    RegistryTokenCreate,
    RegistryTokenCreated,
    RegistryTokenOut,
    RegistryTokenRotate,
    RegistryTokenUpdate,
    RegistryUsageOut,
    UsageSeriesOut,
)
from registry_tokens.registry_tokens.service import (
    RegistryTokenService,
    TokenChanges,
    UsageReport,
    UsageWindow,
)


def _now(rest: RestDep) -> datetime:
    """The time tokens' usage is shown as of: the services' clock."""
    return rest.service(RegistryTokenService).clock()


router = APIRouter(
    prefix="/v2/packages/organizations/{org}/registries/{registry}/tokens",
    tags=["Registry tokens"],
    route_class=JsonRoute,
)


@router.post(
    "",
    operation_id="createRegistryToken",
    summary="Create a registry token",
    description="Required scope: `write_registries`. The response carries the secret as "
    "`token`, shown this once and never again.",
    response_model=RegistryTokenCreated,
    responses=WRITE_ERRORS,
)
async def create_registry_token(
    org: str,
    registry: str,
    body: RegistryTokenCreate,
    rest: RestDep,
) -> RegistryTokenCreated:
    created = await rest.database.write(
        rest.service(RegistryTokenService).create,
        rest.caller,
        org,
        registry,
        body.changes(),
        rest.context,
    )
    return RegistryTokenCreated.of_new(created, rest.urls, _now(rest))


@router.get(
    "",
    operation_id="listRegistryTokens",
    summary="List all registry tokens",
    description="Required scope: `read_registries`. Newest first, paginated with `page` and "
    "`per_page` (default 30; values above 100 mean 100) and a `Link` header.",
    response_model=list[RegistryTokenOut],
    responses=PAGED_LIST_RESPONSES,
)
async def list_registry_tokens(
    org: str,
    registry: str,
    rest: RestDep,
    response: Response,
    page: PageNumber = 1,
    per_page: PerPage = DEFAULT_PER_PAGE,
    state: Annotated[
        Literal["active", "expired"] | None,
        Query(description="Only tokens that have not expired yet, or only expired ones."),
    ] = None,
) -> list[RegistryTokenOut]:
    request = PageRequest.of(page, per_page)
    found, listed = await rest.database.read(
        rest.service(RegistryTokenService).list, rest.caller, org, registry, request, state
    )
    set_page_links(response, listed, rest.urls.registry_tokens(org, registry), {"state": state})
    return RegistryTokenOut.list_of(listed.items, found, rest.urls, _now(rest))


@router.get(
    "/{id}",
    operation_id="getRegistryToken",
    summary="Get a registry token",
    description="Required scope: `read_registries`. The secret is never included.",
    response_model=RegistryTokenOut,
    responses=READ_ERRORS,
)
async def get_registry_token(
    org: str,
    registry: str,
    id: str,
    rest: RestDep,
) -> RegistryTokenOut:
    found = await rest.database.read(
        rest.service(RegistryTokenService).get, rest.caller, org, registry, id
    )
    return RegistryTokenOut.of(found, rest.urls, _now(rest))


async def update_registry_token(
    org: str,
    registry: str,
    id: str,
    rest: RestDep,
    body: Annotated[RegistryTokenUpdate | None, Body()] = None,
) -> RegistryTokenOut:
    changes = body.changes() if body is not None else TokenChanges()
    updated = await rest.database.write(
        rest.service(RegistryTokenService).update,
        rest.caller,
        org,
        registry,
        id,
        changes,
        rest.context,
    )
    return RegistryTokenOut.of(updated, rest.urls, _now(rest))


add_update_routes(
    router,
    "/{id}",
    update_registry_token,
    noun="registry token",
    description="Required scope: `write_registries`. Fields left out stay as they are "
    "(`{}` changes nothing). The secret is never included.",
    response_model=RegistryTokenOut,
)


@router.delete(
    "/{id}",
    operation_id="deleteRegistryToken",
    summary="Delete a registry token",
    description="Required scope: `write_registries`. The token stops authenticating at once.",
    response_class=Response,
    responses={200: {"description": "Deleted; the body is empty"}, **READ_ERRORS},
)
async def delete_registry_token(
    org: str,
    registry: str,
    id: str,
    rest: RestDep,
) -> Response:
    await rest.database.write(
        rest.service(RegistryTokenService).delete, rest.caller, org, registry, id, rest.context
    )
    return Response(status_code=200)


@router.post(
    "/{id}/rotate",
    operation_id="rotateRegistryToken",
    summary="Rotate a registry token's secret",
    description="Required scope: `write_registries`. Returns the same token (id, "
    "description, expiry, CIDRs) with a new secret as `token`, shown once. The old secret "
    "keeps working for `grace_period_seconds` (0 to 604800, default 0), so a fleet can roll "
    "over without failed installs; after that its use is refused and recorded.",
    response_model=RegistryTokenCreated,
    responses=WRITE_ERRORS,
)
async def rotate_registry_token(
    org: str,
    registry: str,
    id: str,
    rest: RestDep,
    body: Annotated[RegistryTokenRotate | None, Body()] = None,
) -> RegistryTokenCreated:
    grace = body.grace_period_seconds if body is not None else None  # left out: None
    rotated = await rest.database.write(
        rest.service(RegistryTokenService).rotate,
        rest.caller,
        org,
        registry,
        id,
        grace,
        rest.context,
    )
    return RegistryTokenCreated.of_new(rotated, rest.urls, _now(rest))


def _token_action(
    path: str, operation_id: str, method: str, summary: str, description: str
) -> None:
    """A POST to ``…/tokens/{id}{path}`` that calls ``RegistryTokenService.<method>`` and
    answers with the token as it then is."""

    async def act(org: str, registry: str, id: str, rest: RestDep) -> RegistryTokenOut:
        service = getattr(rest.service(RegistryTokenService), method)
        found = await rest.database.write(service, rest.caller, org, registry, id, rest.context)
        return RegistryTokenOut.of(found, rest.urls, _now(rest))

    router.add_api_route(
        "/{id}" + path,
        act,
        methods=["POST"],
        operation_id=operation_id,
        summary=summary,
        description=description,
        response_model=RegistryTokenOut,
        responses=READ_ERRORS,
    )


_token_action(
    "/disable",
    "disableRegistryToken",
    "disable",
    "Disable a registry token",
    "Required scope: `write_registries`. From this response on, every use of the token is "
    "refused (401, recorded with reason `disabled`) on every process, until it is enabled. "
    "Disabling a disabled token changes nothing.",
)
_token_action(
    "/enable",
    "enableRegistryToken",
    "enable",
    "Enable a disabled registry token",
    "Required scope: `write_registries`. It works again from this response on.",
)
_token_action(
    "/usage/reset",
    "resetRegistryTokenUsage",
    "reset_usage",
    "Reset a registry token's usage",
    "Required scope: `write_registries`. Its counts (and so its quotas) start again now; "
    "the usage series keeps the history. Recorded as `REGISTRY_TOKEN_USAGE_RESET` with "
    "the counts it had.",
)

From = Annotated[
    AwareDatetime | None,
    BeforeValidator(rfc3339_timestamp),
    Query(
        alias="from",
        description="The window's start (ISO 8601 with a time zone), rounded down to its "
        "bucket. Default: 30 days (interval day) or 48 hours (hour) before `to`.",
    ),
]
To = Annotated[
    AwareDatetime | None,
    BeforeValidator(rfc3339_timestamp),
    Query(
        description="The window's end, exclusive (a bucket it falls inside is included). "
        "Default: now."
    ),
]
Interval = Annotated[
    Literal["day", "hour"],
    Query(description="Buckets of one UTC day or hour: at most 366 days or 744 hours."),
]


async def _usage(
    rest: RestDep,
    org: str,
    registry: str,
    token_id: str | None,
    start: datetime | None,
    end: datetime | None,
    interval: str,
) -> UsageReport:
    service = rest.service(RegistryTokenService)
    window = UsageWindow.of(start, end, interval, service.clock())
    return await rest.database.read(service.usage, rest.caller, org, registry, token_id, window)


@router.get(
    "/{id}/usage",
    operation_id="getRegistryTokenUsage",
    summary="A registry token's downloads over time",
    description="Required scope: `read_registries`. Package files downloaded with the "
    "token (index pages are not downloads) per UTC hour or day: downloads, bytes and "
    "distinct client addresses, every bucket of the window (zeros included), and the "
    "window's totals.",
    response_model=UsageSeriesOut,
    responses=READ_ERRORS,
)
async def get_registry_token_usage(
    org: str,
    registry: str,
    id: str,
    rest: RestDep,
    start: From = None,
    to: To = None,
    interval: Interval = "day",
) -> UsageSeriesOut:
    return UsageSeriesOut.of(await _usage(rest, org, registry, id, start, to, interval))


usage_router = APIRouter(
    prefix="/v2/packages/organizations/{org}/registries/{registry}",
    tags=["Registry tokens"],
    route_class=JsonRoute,
)


@usage_router.get(
    "/usage",
    operation_id="getRegistryUsage",
    summary="A registry's downloads over time, all its tokens'",
    description="Required scope: `read_registries`. As a token's usage, summed over "
    "every registry token of the registry (deleted ones too: their downloads happened), "
    "distinct clients counted across them, and each token's totals (those with downloads "
    "in the window, most first).",
    response_model=RegistryUsageOut,
    responses=READ_ERRORS,
)
async def get_registry_usage(
    org: str,
    registry: str,
    rest: RestDep,
    start: From = None,
    to: To = None,
    interval: Interval = "day",
) -> RegistryUsageOut:
    report = await _usage(rest, org, registry, None, start, to, interval)
    return RegistryUsageOut.of_registry(report, rest.urls)
