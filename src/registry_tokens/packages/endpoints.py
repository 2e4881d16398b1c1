"""The Packages API (publish, list, get, delete) for Python registries."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import RestDep
from registry_tokens.kit.cursor import Cursor, cursor_links
from registry_tokens.kit.errors import FieldProblem, ValidationFailed
from registry_tokens.kit.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE
from registry_tokens.packages.schemas import PackageList, PackageOut
from registry_tokens.packages.service import PackageService

router = APIRouter(
    prefix="/v2/packages/organizations/{org}/registries/{registry}/packages",
    tags=["Packages"],
)

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The wheel or sdist",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    operation_id="publishPackage",
    summary="Publish a package",
    description="Required scope: `write_packages`. Multipart form field `file`: a wheel "
    "(`.whl`) or an sdist (`.tar.gz`). Name and version come from the file's own metadata.",
    response_model=PackageOut,
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503, 507),
    openapi_extra=_UPLOAD_BODY,
)
async def publish_package(
    org: str,
    registry: str,
    request: Request,
    rest: RestDep,
) -> PackageOut:
    """The rest.caller is authorized before a byte of the body is read: the form is parsed
    (and spooled) here, after the rest.caller dependency, not by FastAPI before it."""
    await rest.database.read(rest.service(PackageService).may_publish, rest.caller, org, registry)
    async with request.form() as form:
        sent = form.getlist("file")
        if len(sent) > 1:  # one would be published and the others silently dropped
            raise ValidationFailed(
                [
                    FieldProblem(
                        "file",
                        "invalid",
                        f"was sent {len(sent)} times: send one wheel or sdist per request "
                        "as the multipart form field `file`",
                    )
                ]
            )
        upload = sent[0] if sent else None
        if not isinstance(upload, UploadFile):
            raise ValidationFailed(
                [
                    FieldProblem(
                        "file",
                        "missing",
                        "can't be blank: send the wheel or sdist as the multipart "
                        "form field `file`",
                    )
                ]
            )
        package, found = await rest.database.write(
            rest.service(PackageService).publish,
            rest.caller,
            org,
            registry,
            upload.file,
            upload.filename or "",
        )
    return PackageOut.of(package, found, rest.urls)


@router.get(
    "",
    operation_id="listPackages",
    summary="List packages",
    description="Required scope: `read_packages`. Newest first; `name` filters by project "
    "(PEP 503 normalized); cursors `before` / `after` come from `links`.",
    response_model=PackageList,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def list_packages(
    org: str,
    registry: str,
    rest: RestDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    before: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = DEFAULT_PER_PAGE,
) -> PackageList:
    cursor = Cursor.parse(before, after, per_page)
    window, found = await rest.database.read(
        rest.service(PackageService).list, rest.caller, org, registry, name=name, cursor=cursor
    )
    return PackageList(
        items=[PackageOut.of(package, found, rest.urls) for package in window.items],
        links=cursor_links(rest.urls.packages(org, registry), window, {"name": name}),
    )


@router.get(
    "/{id}",
    operation_id="getPackage",
    summary="Get a package",
    description="Required scope: `read_packages`.",
    response_model=PackageOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_package(
    org: str,
    registry: str,
    id: str,
    rest: RestDep,
) -> PackageOut:
    package, found = await rest.database.read(
        rest.service(PackageService).get, rest.caller, org, registry, id
    )
    return PackageOut.of(package, found, rest.urls)


@router.post(
    "/{id}/copy",
    operation_id="copyPackage",
    summary="Copy a package",
    description="Required scopes: `read_packages`, `write_packages`. Copies the package into "
    "the registry `to` (a slug) of the same organization and ecosystem, as a new package with "
    "its own id; the caller must be able to publish there. No body.",
    response_model=PackageOut,
    responses=error_responses(401, 403, 404, 409, 422, 503, 507),
)
async def copy_package(
    org: str,
    registry: str,
    id: str,
    rest: RestDep,
    to: Annotated[str, Query(min_length=1, max_length=255)],
) -> PackageOut:
    package, found = await rest.database.write(
        rest.service(PackageService).copy, rest.caller, org, registry, id, to
    )
    return PackageOut.of(package, found, rest.urls)


@router.delete(
    "/{id}",
    operation_id="deletePackage",
    summary="Delete a package",
    description="Required scope: `delete_packages`. The file stops being installable at once.",
    response_class=Response,
    responses={
        200: {"description": "Deleted; the body is empty"},
        **error_responses(401, 403, 404, 422, 503, 507),
    },
)
async def delete_package(
    org: str,
    registry: str,
    id: str,
    rest: RestDep,
) -> Response:
    await rest.database.write(rest.service(PackageService).delete, rest.caller, org, registry, id)
    return Response(status_code=200)
