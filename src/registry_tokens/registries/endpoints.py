"""The Registries API. Handlers only translate HTTP; the service decides."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from registry_tokens.auth.caller import Caller
from registry_tokens.kit.http import JsonRoute, current_caller, error_responses, services
from registry_tokens.kit.pagination import DEFAULT_PER_PAGE, MAX_PAGE, PageRequest
from registry_tokens.registries.schemas import RegistryCreate, RegistryOut, RegistryUpdate
from registry_tokens.services import Services

router = APIRouter(
    prefix="/v2/packages/organizations/{org}/registries",
    tags=["Registries"],
    route_class=JsonRoute,
)

CallerDep = Annotated[Caller, Depends(current_caller)]
ServicesDep = Annotated[Services, Depends(services)]
_READ = error_responses(401, 403, 404, 422, 503)
_WRITE = error_responses(400, 401, 403, 404, 413, 415, 422, 503)
_LINK_HEADER = {
    "Link": {
        "description": 'RFC 8288 links: rel="first", "prev", "next", "last"',
        "schema": {"type": "string"},
    }
}


@router.post(
    "",
    operation_id="createRegistry",
    summary="Create a registry",
    description="Required scope: `write_registries`, by an organization admin. `name` and "
    "`ecosystem` are required; the slug is the kebab-case form of the name.",
    response_model=RegistryOut,
    responses=_WRITE,
)
def create_registry(
    org: str, body: RegistryCreate, caller: CallerDep, app: ServicesDep
) -> RegistryOut:
    return RegistryOut.of(app.registries.create_for(caller, org, body.changes()), app.urls)


@router.get(
    "",
    operation_id="listRegistries",
    summary="List registries",
    description="Required scope: `read_registries`. Newest first, paginated like registry tokens.",
    response_model=list[RegistryOut],
    responses={200: {"headers": _LINK_HEADER}, **_READ},
)
def list_registries(
    org: str,
    caller: CallerDep,
    app: ServicesDep,
    response: Response,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=2**31 - 1)] = DEFAULT_PER_PAGE,
) -> list[RegistryOut]:
    found = app.registries.list(caller, org, PageRequest.of(page, per_page))
    link = found.link_header(app.urls.registries(org))
    if link is not None:
        response.headers["Link"] = link
    response.headers["Access-Control-Expose-Headers"] = "Link"
    return [RegistryOut.of(registry, app.urls) for registry in found.items]


@router.get(
    "/{registry}",
    operation_id="getRegistry",
    summary="Get a registry",
    description="Required scope: `read_registries`.",
    response_model=RegistryOut,
    responses=_READ,
)
def get_registry(org: str, registry: str, caller: CallerDep, app: ServicesDep) -> RegistryOut:
    return RegistryOut.of(app.registries.get(caller, org, registry), app.urls)


def update_registry(
    org: str, registry: str, body: RegistryUpdate, caller: CallerDep, app: ServicesDep
) -> RegistryOut:
    updated = app.registries.update(caller, org, registry, body.changes())
    return RegistryOut.of(updated, app.urls)


# Buildkite documents POST; the Go client sends PATCH and the Terraform provider PUT.
for method, operation_id in (
    ("POST", "updateRegistry"),
    ("PATCH", "patchRegistry"),
    ("PUT", "putRegistry"),
):
    router.add_api_route(
        "/{registry}",
        update_registry,
        methods=[method],
        operation_id=operation_id,
        summary=f"Update a registry ({method})",
        description="Required scope: `write_registries`, by an organization admin. Fields "
        "left out stay as they are; the slug and the ecosystem never change.",
        response_model=RegistryOut,
        responses=_WRITE,
    )


@router.delete(
    "/{registry}",
    operation_id="deleteRegistry",
    summary="Delete a registry",
    description="Required scope: `delete_registries`, by an organization admin. Its tokens "
    "and packages go with it and stop working at once.",
    response_class=Response,
    responses={200: {"description": "Deleted; the body is empty"}, **_READ},
)
def delete_registry(org: str, registry: str, caller: CallerDep, app: ServicesDep) -> Response:
    app.registries.delete(caller, org, registry)
    return Response(status_code=200)
