"""The Packages API (publish, list, get, delete) for Python registries."""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from registry_tokens.auth.scopes import Scope
from registry_tokens.kit.cursor import Cursor, cursor_links
from registry_tokens.kit.errors import FieldProblem, ValidationFailed
from registry_tokens.kit.http import error_responses, services
from registry_tokens.kit.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE
from registry_tokens.kit.routes import CallerDep, ServicesDep
from registry_tokens.packages.schemas import PackageList, PackageOut


class UploadRoute(APIRoute):
    """Multipart uploads: the caller is authorized before a byte of the body is read, and
    a missing or non-file ``file`` field is a 422 naming the field.

    FastAPI parses (and spools) a form before any dependency runs, so without the early
    check anyone could make the server take in bodies of up to the upload limit. And the
    generic handler would call a bad body of a non-JSON request "not JSON" (415), which
    misleads a client that sent a form without the file.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def upload_handler(request: Request) -> Response:
            if request.method == "POST":
                await run_in_threadpool(_may_publish, request)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                if any(
                    tuple(error.get("loc", ()))[:2] == ("body", "file") for error in exc.errors()
                ):
                    raise ValidationFailed(
                        [
                            FieldProblem(
                                "file",
                                "missing",
                                "can't be blank: send the wheel or sdist as the multipart "
                                "form field `file`",
                            )
                        ]
                    ) from exc
                raise

        return upload_handler


def _may_publish(request: Request) -> None:
    caller = services(request).auth.authenticate(request.headers.get("authorization"))
    caller.require(Scope.WRITE_PACKAGES)


router = APIRouter(
    prefix="/v2/packages/organizations/{org}/registries/{registry}/packages",
    tags=["Packages"],
    route_class=UploadRoute,
)


@router.post(
    "",
    operation_id="publishPackage",
    summary="Publish a package",
    description="Required scope: `write_packages`. Multipart form field `file`: a wheel "
    "(`.whl`) or an sdist (`.tar.gz`). Name and version come from the file's own metadata.",
    response_model=PackageOut,
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
)
def publish_package(
    org: str,
    registry: str,
    file: Annotated[UploadFile, File(description="The wheel or sdist")],
    caller: CallerDep,
    app: ServicesDep,
) -> PackageOut:
    package = app.packages.publish(caller, org, registry, file.file, file.filename or "")
    return PackageOut.of(package, app.urls)


@router.get(
    "",
    operation_id="listPackages",
    summary="List packages",
    description="Required scope: `read_packages`. Newest first; `name` filters by project "
    "(PEP 503 normalized); cursors `before` / `after` come from `links`.",
    response_model=PackageList,
    responses=error_responses(401, 403, 404, 422, 503),
)
def list_packages(
    org: str,
    registry: str,
    caller: CallerDep,
    app: ServicesDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    before: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = DEFAULT_PER_PAGE,
) -> PackageList:
    window = app.packages.list(
        caller, org, registry, name=name, cursor=Cursor.parse(before, after, per_page)
    )
    return PackageList(
        items=[PackageOut.of(package, app.urls) for package in window.items],
        links=cursor_links(app.urls.packages(org, registry), window, {"name": name}),
    )


@router.get(
    "/{id}",
    operation_id="getPackage",
    summary="Get a package",
    description="Required scope: `read_packages`.",
    response_model=PackageOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def get_package(
    org: str, registry: str, id: str, caller: CallerDep, app: ServicesDep
) -> PackageOut:
    return PackageOut.of(app.packages.get(caller, org, registry, id), app.urls)


@router.delete(
    "/{id}",
    operation_id="deletePackage",
    summary="Delete a package",
    description="Required scope: `delete_packages`. The file stops being installable at once.",
    response_class=Response,
    responses={
        200: {"description": "Deleted; the body is empty"},
        **error_responses(401, 403, 404, 422, 503),
    },
)
def delete_package(
    org: str, registry: str, id: str, caller: CallerDep, app: ServicesDep
) -> Response:
    app.packages.delete(caller, org, registry, id)
    return Response(status_code=200)
