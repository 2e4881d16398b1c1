"""The Registry tokens API, as Buildkite specifies it. Handlers only translate HTTP."""

import re
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import TypeAdapter, ValidationError

from registry_tokens.audit.service import RequestContext
from registry_tokens.auth.caller import Caller
from registry_tokens.kit.hot_routes import HotRoute
from registry_tokens.kit.http import (
    JsonRoute,
    current_caller,
    is_json,
    request_context,
    services,
    strict_json,
)
from registry_tokens.kit.pagination import DEFAULT_PER_PAGE, MAX_PAGE, PageRequest
from registry_tokens.kit.routes import (
    PAGED_LIST_RESPONSES,
    READ_ERRORS,
    WRITE_ERRORS,
    CallerDep,
    ContextDep,
    PageNumber,
    PerPage,
    ServicesDep,
    add_update_routes,
    set_page_links,
)
from registry_tokens.registry_tokens.schemas import (
    RegistryTokenCreate,
    RegistryTokenCreated,
    RegistryTokenOut,
    RegistryTokenRotate,
    RegistryTokenUpdate,
)
from registry_tokens.registry_tokens.service import TokenChanges
from registry_tokens.services import Services

TOKEN_LIST = TypeAdapter(list[RegistryTokenOut])

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
    caller: CallerDep,
    app: ServicesDep,
    context: ContextDep,
) -> Response:
    return await _create(app, caller, org, registry, body, context)


async def _create(
    app: Services,
    caller: Caller,
    org: str,
    registry: str,
    body: RegistryTokenCreate,
    context: RequestContext,
) -> Response:
    created = await app.database.run_writes(
        app.registry_tokens.create, caller, org, registry, body.changes(), context
    )
    document = RegistryTokenCreated.of_new(created.token, created.secret, app.urls)
    return Response(document.model_dump_json(), media_type="application/json")


async def hot_create_registry_token(request: Request, path: re.Match[str]) -> Response | None:
    """``POST …/tokens`` before FastAPI's routing (kit/hot_routes.py); a body that is not a
    valid JSON create body goes to FastAPI, which answers it in its words."""
    if not is_json(request.headers.get("content-type", "")):
        return None
    try:
        body = RegistryTokenCreate.model_validate(strict_json(await request.body()))
    except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
        return None
    caller = await current_caller(request, None)
    org, registry = path.group("org", "registry")
    return await _create(services(request), caller, org, registry, body, request_context(request))


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
    caller: CallerDep,
    app: ServicesDep,
    page: PageNumber = 1,
    per_page: PerPage = DEFAULT_PER_PAGE,
    state: Annotated[
        Literal["active", "expired"] | None,
        Query(description="Only tokens that have not expired yet, or only expired ones."),
    ] = None,
) -> Response:
    return await _token_page(app, caller, org, registry, PageRequest.of(page, per_page), state)


async def _token_page(
    app: Services,
    caller: Caller,
    org: str,
    registry: str,
    request: PageRequest,
    state: str | None,
) -> Response:
    found = await app.database.run_reads(
        app.registry_tokens.list, caller, org, registry, request, state
    )
    body = TOKEN_LIST.dump_json(RegistryTokenOut.list_of(found.items, app.urls))
    response = Response(body, media_type="application/json")
    set_page_links(response, found, app.urls.registry_tokens(org, registry), {"state": state})
    return response


async def hot_list_registry_tokens(request: Request, path: re.Match[str]) -> Response | None:
    """``GET …/tokens`` before FastAPI's routing (kit/hot_routes.py); a query string with
    anything but one plain ``page``, ``per_page`` and ``state`` each goes to FastAPI,
    which validates it."""
    query = parse_qs(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
    if any(len(values) > 1 for values in query.values()):
        return None
    page = _plain_int(query.get("page", ["1"])[0], MAX_PAGE)
    per_page = _plain_int(query.get("per_page", [str(DEFAULT_PER_PAGE)])[0], 2**31 - 1)
    state = query.get("state", [None])[0]
    if page is None or per_page is None or state not in (None, "active", "expired"):
        return None
    caller = await current_caller(request, None)
    org, registry = path.group("org", "registry")
    page_request = PageRequest.of(page, per_page)
    return await _token_page(services(request), caller, org, registry, page_request, state)


def _plain_int(text: str, maximum: int) -> int | None:
    """A decimal from 1 to ``maximum`` in its plain spelling ("7", not "+7" or "07")."""
    if not text.isascii() or not text.isdigit() or text.startswith("0") or len(text) > 10:
        return None
    value = int(text)
    return value if value <= maximum else None


@router.get(
    "/{id}",
    operation_id="getRegistryToken",
    summary="Get a registry token",
    description="Required scope: `read_registries`. The secret is never included.",
    response_model=RegistryTokenOut,
    responses=READ_ERRORS,
)
async def get_registry_token(
    org: str, registry: str, id: str, caller: CallerDep, app: ServicesDep
) -> Response:
    return await _token(app, caller, org, registry, id)


async def _token(app: Services, caller: Caller, org: str, registry: str, id: str) -> Response:
    token = await app.database.run_reads(app.registry_tokens.get, caller, org, registry, id)
    return Response(
        RegistryTokenOut.of(token, app.urls).model_dump_json(), media_type="application/json"
    )


async def hot_get_registry_token(request: Request, path: re.Match[str]) -> Response:
    """``GET …/tokens/{id}`` before FastAPI's routing (kit/hot_routes.py)."""
    caller = await current_caller(request, None)
    org, registry, token_id = path.group("org", "registry", "id")
    return await _token(services(request), caller, org, registry, token_id)


async def update_registry_token(
    org: str,
    registry: str,
    id: str,
    caller: CallerDep,
    app: ServicesDep,
    context: ContextDep,
    body: Annotated[RegistryTokenUpdate | None, Body()] = None,
) -> RegistryTokenOut:
    changes = body.changes() if body is not None else TokenChanges()
    token = await app.database.run_writes(
        app.registry_tokens.update, caller, org, registry, id, changes, context
    )
    return RegistryTokenOut.of(token, app.urls)


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
    org: str, registry: str, id: str, caller: CallerDep, app: ServicesDep, context: ContextDep
) -> Response:
    await app.database.run_writes(app.registry_tokens.delete, caller, org, registry, id, context)
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
def rotate_registry_token(
    org: str,
    registry: str,
    id: str,
    caller: CallerDep,
    app: ServicesDep,
    context: ContextDep,
    body: Annotated[RegistryTokenRotate | None, Body()] = None,
) -> RegistryTokenCreated:
    grace = (
        body.grace_period_seconds
        if body is not None and "grace_period_seconds" in body.model_fields_set
        else None
    )
    rotated = app.registry_tokens.rotate(caller, org, registry, id, grace, context)
    return RegistryTokenCreated.of_new(rotated.token, rotated.secret, app.urls)


_TOKENS = r"/v2/packages/organizations/(?P<org>[^/]+)/registries/(?P<registry>[^/]+)/tokens"
HOT_ROUTES = [
    HotRoute("GET", re.compile(_TOKENS), hot_list_registry_tokens),
    HotRoute("POST", re.compile(_TOKENS), hot_create_registry_token),
    HotRoute("GET", re.compile(_TOKENS + r"/(?P<id>[^/]+)"), hot_get_registry_token),
]
