"""The Python package index (PEP 503 HTML, PEP 691 JSON) at ``/{org}/{registry}/pypi/…``,
laid out like Buildkite's packages host, for pip and every client that speaks it.

Plain Starlette routes, outside OpenAPI. Every request is authorized by the one install
decision (``registry_tokens.access``) before anything about the registry is shown.
"""

import html
import json
from urllib.parse import quote

from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from registry_tokens.api.observability import note_caller
from registry_tokens.kit.context import RequestContext
from registry_tokens.kit.errors import AppError, NotFound
from registry_tokens.kit.metrics import INSTALLS
from registry_tokens.packages.downloads import file_response
from registry_tokens.packages.repository import ProjectFile
from registry_tokens.registries.service import Ecosystem
from registry_tokens.registry_tokens.access import InstallGrant
from registry_tokens.services import Services

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def _authorized(request: Request, services: Services) -> InstallGrant:
    grant = await services.install.authorize(
        request.path_params["org"],
        request.path_params["registry"],
        request.headers.get("authorization"),
        RequestContext.of(request, services.settings.trusted_proxy_networks),
    )
    if grant.registry.ecosystem != Ecosystem.PYTHON.value:  # not pip's to see
        raise NotFound("project")
    if grant.caller is not None:
        note_caller(request, *grant.caller)
    return grant


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


async def simple_index(request: Request) -> Response:
    """``…/simple/``: the registry's projects."""
    services = _services(request)
    grant = await _authorized(request, services)
    media_type = _negotiated(request)
    projects = await services.database.read(
        services.packages.projects, grant.registry, grant.packages
    )
    return _page(index_page(projects, media_type), media_type)


async def simple_project(request: Request) -> Response:
    """``…/simple/{project}/``, the request behind every ``pip install``."""
    services = _services(request)
    grant = await _authorized(request, services)
    project = request.path_params["project"]
    normalized = canonicalize_name(project)
    if normalized != project:  # PEP 503: redirect to the normalized name
        org, registry_slug = request.path_params["org"], request.path_params["registry"]
        return RedirectResponse(f"/{org}/{registry_slug}/pypi/simple/{normalized}/", 301)
    media_type = _negotiated(request)
    files = await services.database.read(
        services.packages.project_files, grant.registry, normalized, grant.packages
    )
    INSTALLS.labels(Ecosystem.PYTHON.value).inc()
    return _page(project_page(normalized, files, media_type), media_type)


async def download(request: Request) -> Response:
    """A package file: the one request counted as a download (quotas, usage)."""
    services = _services(request)
    grant = await _authorized(request, services)
    package = await services.database.read(
        services.packages.file,
        grant.registry,
        request.path_params["package_id"],
        request.path_params["filename"],
    )
    return await file_response(
        services.packages.files,
        package,
        package.filename,
        lambda: services.install.admit_download(grant, package.project, package.size),
    )


def routes() -> list[BaseRoute]:
    """The index, mounted by the app beside the REST API."""
    return [
        Mount(
            "/{org}/{registry}/pypi",
            routes=[
                Route("/simple/", simple_index, methods=["GET"]),
                Route("/simple", simple_index, methods=["GET"]),
                Route("/simple/{project}/", simple_project, methods=["GET"]),
                Route("/simple/{project}", simple_project, methods=["GET"]),
                Route("/files/{package_id}/{filename}", download, methods=["GET"]),
            ],
        )
    ]


def choose_media_type(accept: str | None) -> str | None:
    """PEP 691 content negotiation: the best of what we serve, or ``None`` (406)."""
    offered = {
        SIMPLE_JSON: SIMPLE_JSON,
        "application/vnd.pypi.simple.latest+json": SIMPLE_JSON,
        SIMPLE_HTML: SIMPLE_HTML,
        "application/vnd.pypi.simple.latest+html": SIMPLE_HTML,
        "text/html": "text/html",
        "text/*": "text/html",
        "*/*": "text/html",
    }
    if not accept or not accept.strip():
        return "text/html"
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept.split(",")):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        served = offered.get(media_type.lower())
        if served is None or quality <= 0:
            continue
        candidate = (quality, -position, served)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else None


def index_page(projects: list[str], media_type: str) -> str:
    if media_type == SIMPLE_JSON:
        return json.dumps(
            {"meta": {"api-version": "1.0"}, "projects": [{"name": name} for name in projects]}
        )
    links = "\n".join(
        f'    <a href="{html.escape(name)}/">{html.escape(name)}</a><br/>' for name in projects
    )
    return _html("Simple index", links)


def project_page(project: str, files: list[ProjectFile], media_type: str) -> str:
    def url(file: ProjectFile) -> str:
        return f"../../files/{file.id}/{quote(file.filename)}"

    if media_type == SIMPLE_JSON:
        entries = []
        for file in files:
            entry: dict[str, object] = {
                "filename": file.filename,
                "url": url(file),
                "hashes": {"sha256": file.sha256},
            }
            if file.requires_python:
                entry["requires-python"] = file.requires_python
            entries.append(entry)
        return json.dumps({"meta": {"api-version": "1.0"}, "name": project, "files": entries})
    links = []
    for file in files:
        requires = (
            f' data-requires-python="{html.escape(file.requires_python)}"'
            if file.requires_python
            else ""
        )
        links.append(
            f'    <a href="{html.escape(url(file))}#sha256={file.sha256}"{requires}>'
            f"{html.escape(file.filename)}</a><br/>"
        )
    return _html(f"Links for {html.escape(project)}", "\n".join(links))


def _html(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" '
        f'content="1.0">\n    <title>{title}</title>\n  </head>\n  <body>\n'
        f"    <h1>{title}</h1>\n{body}\n  </body>\n</html>\n"
    )
