"""The Registries API. Handlers only translate HTTP; the service decides."""

from fastapi import APIRouter, Response

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
from registry_tokens.registries.schemas import RegistryCreate, RegistryOut, RegistryUpdate
from registry_tokens.registries.service import RegistryService

router = APIRouter(
    prefix="/v2/packages/organizations/{org}/registries",
    tags=["Registries"],
    route_class=JsonRoute,
)


@router.post(
    "",
    operation_id="createRegistry",
    summary="Create a registry",
    description="Required scope: `write_registries`, by an organization admin. `name` and "
    "`ecosystem` are required; the slug is the kebab-case form of the name.",
    response_model=RegistryOut,
    responses=WRITE_ERRORS,
)
async def create_registry(
    org: str,
    body: RegistryCreate,
    rest: RestDep,
) -> RegistryOut:
    created = await rest.database.write(
        rest.service(RegistryService).create_for, rest.caller, org, body
    )
    return RegistryOut.of(created, rest.urls)


@router.get(
    "",
    operation_id="listRegistries",
    summary="List registries",
    description="Required scope: `read_registries`. Newest first, paginated like registry tokens.",
    response_model=list[RegistryOut],
    responses=PAGED_LIST_RESPONSES,
)
async def list_registries(
    org: str,
    rest: RestDep,
    response: Response,
    page: PageNumber = 1,
    per_page: PerPage = DEFAULT_PER_PAGE,
) -> list[RegistryOut]:
    found = await rest.database.read(
        rest.service(RegistryService).list, rest.caller, org, PageRequest.of(page, per_page)
    )
    set_page_links(response, found, rest.urls.registries(org), {})
    return [RegistryOut.of(registry, rest.urls) for registry in found.items]


@router.get(
    "/{registry}",
    operation_id="getRegistry",
    summary="Get a registry",
    description="Required scope: `read_registries`.",
    response_model=RegistryOut,
    responses=READ_ERRORS,
)
async def get_registry(
    org: str,
    registry: str,
    rest: RestDep,
) -> RegistryOut:
    return RegistryOut.of(
        await rest.database.read(rest.service(RegistryService).get, rest.caller, org, registry),
        rest.urls,
    )


async def update_registry(
    org: str,
    registry: str,
    body: RegistryUpdate,
    rest: RestDep,
) -> RegistryOut:
    updated = await rest.database.write(
        rest.service(RegistryService).update, rest.caller, org, registry, body
    )
    return RegistryOut.of(updated, rest.urls)


add_update_routes(
    router,
    "/{registry}",
    update_registry,
    noun="registry",
    description="Required scope: `write_registries`, by an organization admin. Fields "
    "left out stay as they are; the slug and the ecosystem never change.",
    response_model=RegistryOut,
)


@router.delete(
    "/{registry}",
    operation_id="deleteRegistry",
    summary="Delete a registry",
    description="Required scope: `delete_registries`, by an organization admin. Its tokens "
    "and packages go with it and stop working at once.",
    response_class=Response,
    responses={200: {"description": "Deleted; the body is empty"}, **READ_ERRORS},
)
async def delete_registry(
    org: str,
    registry: str,
    rest: RestDep,
) -> Response:
    await rest.database.write(
        rest.service(RegistryService).delete, rest.caller, org, registry, rest.context
    )
    return Response(status_code=200)
