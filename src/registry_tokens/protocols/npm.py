"""The npm registry protocol at ``/{org}/{registry}/npm/…``, laid out like Buildkite's
packages host, for the npm CLI (and every client that speaks npm's registry API).

Plain Starlette routes, outside OpenAPI. Reads (packuments, tarballs, ``dist-tags``,
``whoami``, ``ping``) are authorized by the one install decision
(``registry_tokens.access``), exactly as pip's are; writes (``npm publish``, ``npm dist-tag
add/rm``) by the REST API's gate, with an API access token that may publish. npm sends
``Authorization: Bearer <token>`` from ``.npmrc``'s ``_authToken``.

Errors are JSON with ``error`` (what npm prints after the status line) beside the house's
``message``. A 401 carries no ``WWW-Authenticate``: with one, npm prints only the header
("Unable to authenticate, need: Basic …") and drops the body's explanation.
"""

import json
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from registry_tokens.api.http import strict_json
from registry_tokens.api.observability import note_caller
from registry_tokens.api.routes import PackageAccess
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.errors import AppError, NotFound
from registry_tokens.kit.metrics import INSTALLS
from registry_tokens.kit.secrets import SecretKind, secret_kind
from registry_tokens.packages.downloads import file_response
from registry_tokens.packages.npm import (
    describe_manifest,
    integrity,
    name_problem,
    stored_filename,
    tarball_file,
)
from registry_tokens.packages.repository import NpmVersion
from registry_tokens.registry_tokens.access import (
    InstallGrant,
    InstallUnauthorized,
    presented_secret,
)
from registry_tokens.services import Services

INSTALL_V1 = "application/vnd.npm.install-v1+json"
# The fields of a version that npm install needs: the abbreviated ("corgi") document.
ABBREVIATED_FIELDS = (
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "engines",
    "cpu",
    "os",
    "libc",
    "funding",
    "license",
    "_hasShrinkwrap",
)
_INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")
UNAUTHORIZED = (
    "Authentication required: set a registry token (or an API access token with "
    "read_packages) as this registry's _authToken in .npmrc"
)
Handler = Callable[[Request], Awaitable[Response]]


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def npm_error(error: AppError) -> JSONResponse:
    """An error as npm reads it: ``error`` is printed, ``message`` is the house's."""
    if isinstance(error, InstallUnauthorized):
        error = AppError(UNAUTHORIZED, 401)
    headers = {k: v for k, v in error.headers.items() if k.lower() != "www-authenticate"}
    return JSONResponse(
        {"error": error.message, **error.body()},
        status_code=error.status,
        headers=headers or None,
    )


def _npm(handler: Handler) -> Handler:
    @wraps(handler)
    async def answered(request: Request) -> Response:
        try:
            return await handler(request)
        except AppError as error:
            return npm_error(error)

    return answered


def _context(request: Request, services: Services) -> RequestContext:
    return RequestContext.of(request, services.settings.trusted_proxy_networks)


async def _readable(request: Request, services: Services) -> InstallGrant:
    """The registry, if the credentials may install from it (else 401), and the token's
    limits."""
    grant = await services.install.authorize(
        request.path_params["org"],
        request.path_params["registry"],
        request.headers.get("authorization"),
        _context(request, services),
    )
    if grant.caller is not None:
        note_caller(request, *grant.caller)
    return grant


async def _publisher(request: Request, services: Services, action: str) -> Caller:
    """The caller of an API access token, or of an OIDC token whose registry's policy
    grants ``write_packages``, through the REST API's gate (its rate limits count, an
    OIDC refusal is audited); a registry token is refused: it only installs."""
    caller, headers = await services.gate.admit(
        request.headers.get("authorization"),
        request.path_params["org"],
        _context(request, services),
        PackageAccess(request.path_params["registry"], Scope.WRITE_PACKAGES, action),
    )
    if headers:
        request.state.rate_limit_headers = headers
    note_caller(request, "api_token" if caller.user_id else "oidc_token", caller.token_id)
    return caller


def _package_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if name_problem(name) is not None:  # no such package can exist
        raise NotFound("package")
    return name


def _json(content: Any, status: int = 200, media_type: str = "application/json") -> Response:
    response = Response(
        json.dumps(content, separators=(",", ":")),  # ASCII: escapes even lone surrogates
        status_code=status,
        media_type=media_type,
    )
    response.headers["Vary"] = "Accept, Authorization"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@_npm
async def ping(request: Request) -> Response:
    """``npm ping``: the credentials work here."""
    await _readable(request, _services(request))
    return _json({})


@_npm
async def whoami(request: Request) -> Response:
    """``npm whoami``: ``buildkite`` for a registry token (the user name Buildkite's basic
    auth uses), the user's email for an API access token."""
    services = _services(request)
    await _readable(request, services)
    secret = presented_secret(request.headers.get("authorization"))
    kind = secret_kind(secret) if secret is not None else None
    username: str | None = None
    if kind is SecretKind.REGISTRY_TOKEN:
        username = "buildkite"
    elif kind is SecretKind.API_ACCESS_TOKEN:
        caller = await services.database.read(services.auth.identify, secret)
        if caller is not None:
            username = await services.database.read(services.users.email_of, caller.user)
    if username is None:  # a public registry needs no credentials, but then there is no one
        raise AppError(UNAUTHORIZED, 401)
    return _json({"username": username})


@_npm
async def packument(request: Request) -> Response:
    """``…/npm/{name}``: every version of a package, the abbreviated document when npm
    install asks for it (``Accept: application/vnd.npm.install-v1+json``)."""
    services = _services(request)
    grant = await _readable(request, services)
    registry = grant.registry
    name = _package_name(request)
    versions = await services.database.read(
        services.packages.npm_versions, registry, name, grant.packages
    )
    tags = await services.database.read(services.packages.npm_dist_tags, registry, name, versions)
    base = services.urls.npm_registry(registry.organization_slug, registry.slug)
    INSTALLS.labels(registry.ecosystem).inc()
    if INSTALL_V1 in (request.headers.get("accept") or ""):
        return _json(abbreviated(name, versions, tags, base), media_type=INSTALL_V1)
    return _json(full(name, versions, tags, base))


@_npm
async def tarball(request: Request) -> Response:
    """A package tarball: the one request counted as a download (quotas, usage)."""
    services = _services(request)
    grant = await _readable(request, services)
    name = _package_name(request)
    filename = stored_filename(name, request.path_params["filename"])
    package = await services.database.read(
        services.packages.npm_file, grant.registry, name, filename
    )
    return await file_response(
        services.packages.files,
        package,
        request.path_params["filename"],
        lambda: services.install.admit_download(grant, package.project, package.size),
    )


@_npm
async def publish(request: Request) -> Response:
    """``npm publish``: the caller may publish here before a byte of the body is read."""
    services = _services(request)
    caller = await _publisher(request, services, "publish")
    org, registry = request.path_params["org"], request.path_params["registry"]
    name = request.path_params["name"]  # checked with the document: a bad one is a 422
    await services.database.read(services.packages.may_publish, caller, org, registry)
    document = _document(await request.body())
    package, _found = await services.database.write(
        services.packages.publish_npm, caller, org, registry, name, document
    )
    return _json({"ok": True, "id": package.name, "version": package.version}, status=201)


@_npm
async def dist_tags(request: Request) -> Response:
    """``npm dist-tag ls``."""
    services = _services(request)
    grant = await _readable(request, services)
    name = _package_name(request)
    tags = await services.database.read(
        services.packages.npm_dist_tags, grant.registry, name, None, grant.packages
    )
    return _json(tags)


@_npm
async def change_dist_tag(request: Request) -> Response:
    """``npm dist-tag add`` (PUT, the version as a JSON string) and ``rm`` (DELETE)."""
    services = _services(request)
    caller = await _publisher(request, services, "dist_tag")
    org, registry = request.path_params["org"], request.path_params["registry"]
    name = _package_name(request)
    tag = request.path_params["tag"]
    if request.method == "DELETE":
        await services.database.write(services.packages.untag_npm, caller, org, registry, name, tag)
    else:
        version = _document(await request.body())
        await services.database.write(
            services.packages.tag_npm_version, caller, org, registry, name, tag, version
        )
    return _json({"ok": True}, status=201 if request.method == "PUT" else 200)


def _document(body: bytes) -> Any:
    try:
        return strict_json(body)
    except json.JSONDecodeError:
        raise AppError("Problems parsing JSON: the request body is not valid JSON", 400) from None


def routes() -> list[BaseRoute]:
    """npm's registry API, mounted by the app beside the REST API. The ``-/`` routes come
    first: no package name starts with ``-``… but ``{name:path}`` would match them."""
    return [
        Mount(
            "/{org}/{registry}/npm",
            routes=[
                Route("/-/ping", ping, methods=["GET"]),
                Route("/-/whoami", whoami, methods=["GET"]),
                Route("/-/package/{name:path}/dist-tags", dist_tags, methods=["GET"]),
                Route(
                    "/-/package/{name:path}/dist-tags/{tag}",
                    change_dist_tag,
                    methods=["PUT", "DELETE"],
                ),
                Route("/{name:path}/-/{filename}", tarball, methods=["GET"]),
                Route("/{name:path}", packument, methods=["GET"]),
                Route("/{name:path}", publish, methods=["PUT"]),
            ],
        )
    ]


# --------------------------------------------------------------------------- documents


def _dist(name: str, row: NpmVersion, base: str) -> dict[str, Any]:
    dist: dict[str, Any] = {
        "tarball": f"{base}{name}/-/{tarball_file(name, row.version)}",
        "integrity": integrity(row.sha512),
    }
    if row.sha1:
        dist["shasum"] = row.sha1
    return dist


def _version(name: str, row: NpmVersion, base: str) -> dict[str, Any]:
    """A version as the full packument has it: its package.json, and where to get it."""
    return {
        **describe_manifest(row.manifest),
        "name": name,
        "version": row.version,
        "_id": f"{name}@{row.version}",
        "dist": _dist(name, row, base),
    }


def _time(row: NpmVersion) -> str:
    return row.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def full(
    name: str, versions: list[NpmVersion], tags: Mapping[str, str], base: str
) -> dict[str, Any]:
    """The full packument (``npm view``, ``npm info``)."""
    entries = {row.version: _version(name, row, base) for row in versions}
    latest = entries.get(tags.get("latest", ""), {})
    document: dict[str, Any] = {"_id": name, "name": name}
    if isinstance(latest.get("description"), str):
        document["description"] = latest["description"]
    document["dist-tags"] = dict(tags)
    document["versions"] = entries
    document["time"] = {
        "created": _time(versions[0]),
        "modified": _time(versions[-1]),
        **{row.version: _time(row) for row in versions},
    }
    return document


def abbreviated(
    name: str, versions: list[NpmVersion], tags: Mapping[str, str], base: str
) -> dict[str, Any]:
    """The abbreviated packument npm install asks for: what resolving a version needs."""
    entries = {}
    for row in versions:
        manifest = describe_manifest(row.manifest)
        entry = {key: manifest[key] for key in ABBREVIATED_FIELDS if key in manifest}
        entry.update(name=name, version=row.version, dist=_dist(name, row, base))
        scripts = manifest.get("scripts")
        if isinstance(scripts, dict) and any(script in scripts for script in _INSTALL_SCRIPTS):
            entry["hasInstallScript"] = True
        entries[row.version] = entry
    return {
        "name": name,
        "modified": _time(versions[-1]),
        "dist-tags": dict(tags),
        "versions": entries,
    }
