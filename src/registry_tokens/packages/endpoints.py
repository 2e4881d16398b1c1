"""The Packages API (publish, list, get, delete) for Python and JavaScript registries."""

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.datastructures import UploadFile

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import DatabaseDep, Rest, packages_rest, provided
from registry_tokens.kit.context import Scope
from registry_tokens.kit.cursor import Cursor, cursor_links
from registry_tokens.kit.errors import AppError, FieldProblem, ValidationFailed
from registry_tokens.kit.multipart import (
    BadForm,
    Field,
    FileData,
    FileEnd,
    FileStart,
    FormEvents,
    boundary_of,
)
from registry_tokens.kit.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE
from registry_tokens.kit.urls import UPLOAD_TARGET_PATH
from registry_tokens.packages.schemas import (
    PackageList,
    PackageOut,
    PresignedUploadForm,
    PresignedUploadOut,
)
from registry_tokens.packages.service import PackageService, UploadGrant
from registry_tokens.packages.storage import StagedFile, Staging

# Each route's credential: an API access token, or an OIDC token its registry's policy
# grants the scope (api.routes.packages_rest).
PublishDep = Annotated[Rest, packages_rest(Scope.WRITE_PACKAGES, "publish")]
ReadDep = Annotated[Rest, packages_rest(Scope.READ_PACKAGES, "read")]
DeleteDep = Annotated[Rest, packages_rest(Scope.DELETE_PACKAGES, "delete")]


class PackageIdConvertor(StringConvertor):
    """A package's path segment, never ``upload`` (the presign's own path), so that
    ``…/packages/upload`` is served by the presign alone and its 405s allow only POST."""

    regex = "(?!upload$)[^/]+"


register_url_convertor("package_id", PackageIdConvertor())

router = APIRouter(
    prefix="/v2/packages/organizations/{org}/registries/{registry}/packages",
    tags=["Packages"],
)

# The presigned uploads' target: no Buildkite credentials, the signed policy in the form.
uploads_router = APIRouter(include_in_schema=False)
FILE_INPUT = "file"
# The policy's fields are a few hundred bytes; these bound what a body may make us hold.
MAX_UPLOAD_FIELDS = 16
MAX_FIELD_BYTES = 16 * 1024


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The wheel or sdist (python registries), or "
                            "the npm tarball (javascript registries)",
                        },
                        "package_url": {
                            "type": "string",
                            "description": "Instead of `file`: the URL of a presigned "
                            "upload's file (see `…/packages/upload`)",
                        },
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
    "(`.whl`) or an sdist (`.tar.gz`) for a python registry, an npm tarball (`.tgz`) for a "
    "javascript one; or, instead, `package_url`: the URL of a file uploaded through a "
    "presigned upload. Name and version come from the file's own metadata (a tarball's "
    "`package/package.json`).",
    response_model=PackageOut,
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503, 507),
    openapi_extra=_UPLOAD_BODY,
)
async def publish_package(
    org: str,
    registry: str,
    request: Request,
    rest: PublishDep,
) -> PackageOut:
    """The rest.caller is authorized before a byte of the body is read: the form is parsed
    (and spooled) here, after the rest.caller dependency, not by FastAPI before it."""
    await rest.database.read(rest.service(PackageService).may_publish, rest.caller, org, registry)
    async with request.form() as form:
        sent = form.getlist("file")
        package_urls = form.getlist("package_url")
        if package_urls and not sent:  # the presigned flow's finalize (go-buildkite)
            if len(package_urls) > 1 or not isinstance(package_urls[0], str):
                raise ValidationFailed(
                    [FieldProblem("package_url", "invalid", "must be sent once, as text")]
                )
            package, found = await rest.database.write(
                rest.service(PackageService).publish_uploaded,
                rest.caller,
                org,
                registry,
                package_urls[0],
            )
            return PackageOut.of(package, found, rest.urls)
        if package_urls:  # both: which one was meant to be published?
            raise ValidationFailed(
                [
                    FieldProblem(
                        "package_url",
                        "invalid",
                        "can't be sent with `file`: send the file, or the `package_url` of "
                        "a presigned upload, not both",
                    )
                ]
            )
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


@router.post(
    "/upload",
    operation_id="requestPresignedUpload",
    summary="Request a presigned upload",
    description="Required scope: `write_packages`. Where and how to post one file without "
    "credentials (`form`), under a signed policy bound to this registry, this token, the "
    "upload size limit and an expiry; then publish it with `package_url`.",
    response_model=PresignedUploadOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def request_presigned_upload(org: str, registry: str, rest: PublishDep) -> PresignedUploadOut:
    presigned = await rest.database.write(
        rest.service(PackageService).presign, rest.caller, org, registry
    )
    return PresignedUploadOut(
        uri=f"{presigned.url}/{presigned.key}",
        form=PresignedUploadForm(
            file_input=FILE_INPUT,
            method="POST",
            url=presigned.url,
            data=presigned.fields,
        ),
    )


@uploads_router.post(UPLOAD_TARGET_PATH, status_code=204, response_class=Response)
async def receive_upload(
    request: Request,
    database: DatabaseDep,
    packages: Annotated[PackageService, provided(PackageService)],
) -> Response:
    """The file of a presigned upload, as S3 takes a presigned POST: the policy's fields,
    then the file. The body is parsed as it streams in; the policy is checked when the
    file's part begins, and the file goes straight to staging, bounded by the policy."""
    boundary = boundary_of(request.headers.get("content-type", ""))
    if boundary is None:
        raise _no_file()
    form = FormEvents(boundary, max_fields=MAX_UPLOAD_FIELDS, max_field_bytes=MAX_FIELD_BYTES)
    fields: dict[str, str] = {}
    grant: UploadGrant | None = None
    staging: Staging | None = None
    staged: StagedFile | None = None
    try:
        async for chunk in request.stream():
            for event in form.feed(chunk):
                if isinstance(event, Field):
                    if grant is None and event.name in fields:
                        raise AppError(f"The form field {event.name} was sent more than once", 400)
                    fields.setdefault(event.name, event.value)
                elif isinstance(event, FileStart):
                    if event.name != FILE_INPUT or grant is not None:
                        raise AppError(f"Send one file, as the form field {FILE_INPUT}", 400)
                    grant = packages.authorize_upload(fields, event.filename)
                    staging = await anyio.to_thread.run_sync(
                        packages.files.staging, grant.max_bytes
                    )
                elif isinstance(event, FileData) and staging is not None:
                    try:
                        await anyio.to_thread.run_sync(staging.write, event.data)
                    except ValueError as exc:
                        raise AppError(f"The package file is too large: {exc}", 413) from exc
                elif isinstance(event, FileEnd) and staging is not None:
                    staged = await anyio.to_thread.run_sync(staging.finish)
        form.finish()
    except BadForm as exc:
        raise AppError(str(exc), 400) from exc
    finally:
        if staging is not None and staged is None:
            staging.abandon()
    if grant is None or staged is None:
        raise _no_file()
    await database.write(packages.keep_upload, grant, staged)
    return Response(status_code=204)


def _no_file() -> ValidationFailed:
    return ValidationFailed(
        [
            FieldProblem(
                FILE_INPUT,
                "missing",
                "can't be blank: send the policy's fields and then the file, as a multipart form",
            )
        ]
    )


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
    rest: ReadDep,
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
    "/{id:package_id}",
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
    rest: ReadDep,
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
    rest: PublishDep,
    to: Annotated[str, Query(min_length=1, max_length=255)],
) -> PackageOut:
    package, found = await rest.database.write(
        rest.service(PackageService).copy, rest.caller, org, registry, id, to
    )
    return PackageOut.of(package, found, rest.urls)


@router.delete(
    "/{id:package_id}",
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
    rest: DeleteDep,
) -> Response:
    await rest.database.write(rest.service(PackageService).delete, rest.caller, org, registry, id)
    return Response(status_code=200)
