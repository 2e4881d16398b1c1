"""The install side, laid out like Buildkite's packages host: ``/{org}/{registry}/pypi/…``."""

import os
import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from packaging.utils import canonicalize_name

from registry_tokens.audit.service import RequestContext
from registry_tokens.kit.errors import AppError, NotFound
from registry_tokens.kit.hot_routes import HotRoute
from registry_tokens.kit.http import error_responses, request_context, services
from registry_tokens.kit.routes import ContextDep, ServicesDep
from registry_tokens.packages.install import (
    SIMPLE_JSON,
    InstallRegistry,
    choose_media_type,
    index_page,
    project_page,
)
from registry_tokens.packages.storage import CHUNK
from registry_tokens.services import Services

router = APIRouter(prefix="/{org}/{registry}/pypi", tags=["Install (pip)"])

_HTML_OR_JSON = {
    "content": {
        "text/html": {"schema": {"type": "string"}},
        "application/vnd.pypi.simple.v1+html": {"schema": {"type": "string"}},
        "application/vnd.pypi.simple.v1+json": {"schema": {"type": "object"}},
    },
    "description": "PEP 503 HTML or, when asked for, PEP 691 JSON",
}
_ERRORS = error_responses(401, 404, 406, 429, 503)


def authorized_registry(
    org: str,
    registry: str,
    app: ServicesDep,
    context: ContextDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> InstallRegistry:
    return app.install.authorize(org, registry, authorization, context)


RegistryDep = Annotated[InstallRegistry, Depends(authorized_registry)]


def _negotiated(request: Request) -> str:
    media_type = choose_media_type(request.headers.get("accept"))
    if media_type is None:
        raise AppError(
            "Not acceptable: ask for text/html or application/vnd.pypi.simple.v1+json", 406
        )
    return media_type


def _page(content: str, media_type: str) -> Response:
    response = Response(content, media_type=media_type)
    response.headers["Vary"] = "Accept, Authorization"
    response.headers["Cache-Control"] = "private, no-store"
    if media_type == SIMPLE_JSON:
        response.headers["Content-Type"] = SIMPLE_JSON
    return response


@router.get(
    "/simple/",
    operation_id="simpleIndex",
    summary="PEP 503 / 691 index of the registry's projects",
    responses={200: _HTML_OR_JSON, **_ERRORS},
    response_class=Response,
)
@router.get("/simple", include_in_schema=False)
def simple_index(request: Request, registry: RegistryDep, app: ServicesDep) -> Response:
    media_type = _negotiated(request)
    return _page(index_page(app.install.projects(registry), media_type), media_type)


@router.get(
    "/simple/{project}/",
    operation_id="simpleProject",
    summary="PEP 503 / 691 page of one project's files, with their sha256",
    responses={200: _HTML_OR_JSON, 301: {"description": "To the normalized name"}, **_ERRORS},
    response_class=Response,
)
@router.get("/simple/{project}", include_in_schema=False)
def simple_project(
    request: Request,
    project: str,
    registry: RegistryDep,
    app: ServicesDep,
) -> Response:
    return _project_page(request, app, registry, project)


def _project_page(
    request: Request, app: Services, registry: InstallRegistry, project: str
) -> Response:
    normalized = canonicalize_name(project)
    if normalized != project:  # PEP 503: redirect to the normalized name
        org, registry_slug = request.path_params["org"], request.path_params["registry"]
        return RedirectResponse(f"/{org}/{registry_slug}/pypi/simple/{normalized}/", 301)
    media_type = _negotiated(request)
    files = app.install.project_files(registry, normalized)
    return _page(project_page(normalized, files, media_type), media_type)


async def hot_simple_project(request: Request, path: re.Match[str]) -> Response:
    """``GET …/simple/{project}/``, the request behind every ``pip install``, served before
    FastAPI's routing (kit/hot_routes.py) by the same code as :func:`simple_project`.

    On SQLite the reads run on the event loop and only the writes, when a refusal or a
    last use is to be recorded, in a thread; otherwise all of it takes one trip to a thread.
    """
    org, registry_slug, project = path.group("org", "registry", "project")
    app = services(request)
    authorization = request.headers.get("authorization")
    context = request_context(request)
    if not app.database.is_sqlite:
        return await app.database.run_writes(
            _authorized_page, request, app, org, registry_slug, authorization, context, project
        )
    decision = app.install.check(org, registry_slug, authorization, context)
    if decision.writes:
        registry = await app.database.run_writes(app.install.settle, decision)
    else:
        registry = app.install.settle(decision)
    return _project_page(request, app, registry, project)


def _authorized_page(
    request: Request,
    app: Services,
    org: str,
    registry_slug: str,
    authorization: str | None,
    context: RequestContext,
    project: str,
) -> Response:
    registry = app.install.authorize(org, registry_slug, authorization, context)
    return _project_page(request, app, registry, project)


HOT_ROUTES = [
    HotRoute(
        "GET",
        re.compile(r"/(?P<org>[^/]+)/(?P<registry>[^/]+)/pypi/simple/(?P<project>[^/]+)/"),
        hot_simple_project,
    )
]


@router.get(
    "/files/{package_id}/{filename}",
    operation_id="downloadPackageFile",
    summary="Download a package file",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file"},
        **_ERRORS,
    },
    response_class=StreamingResponse,
)
def download(
    package_id: str,
    filename: str,
    registry: RegistryDep,
    app: ServicesDep,
) -> StreamingResponse:
    package, path = app.install.file(registry, package_id, filename)
    try:
        # Opened before answering: a delete racing this download unlinks the name, but the
        # open file stays readable to the end, so the client gets all of it or a 404.
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFound("file") from None
    size = os.fstat(handle.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{package.filename}"',
            "Cache-Control": "private, no-store",
        },
    )
