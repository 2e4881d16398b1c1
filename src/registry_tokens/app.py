"""Builds the ASGI application: routers, error handlers, middleware."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from swagger_ui_bundle import swagger_ui_path

from registry_tokens import __version__
from registry_tokens.api.health import Readiness, health_routes
from registry_tokens.api.http import (
    BodySizeLimit,
    HeadAsGet,
    RateLimitHeaders,
    RelativeRedirects,
    install_error_handlers,
)
from registry_tokens.api.observability import RequestObserver, metrics_route
from registry_tokens.api.routes import Gate
from registry_tokens.audit.endpoints import router as audit_router
from registry_tokens.auth.endpoints import rate_limit_router
from registry_tokens.auth.endpoints import router as access_token_router
from registry_tokens.console import routes as console
from registry_tokens.db import migrate
from registry_tokens.kit.urls import UPLOAD_TARGET_PATH
from registry_tokens.organizations.endpoints import router as organizations_router
from registry_tokens.packages.endpoints import router as packages_router
from registry_tokens.packages.endpoints import uploads_router
from registry_tokens.protocols import npm, pypi
from registry_tokens.registries.endpoints import router as registries_router
from registry_tokens.registry_tokens.endpoints import router as registry_tokens_router
from registry_tokens.registry_tokens.endpoints import usage_router as registry_usage_router
from registry_tokens.secret_scanning.endpoints import router as secret_scanning_router
from registry_tokens.services import Services
from registry_tokens.settings import Settings
from registry_tokens.users.endpoints import router as users_router

PACKAGE_UPLOAD_PATH = re.compile(r"/v2/packages/organizations/[^/]+/registries/[^/]+/packages")
LEAK_REPORT_PATH = re.compile(r"/secret-scanning/github")
# npm publish's document: the tarball in base64 (4 characters for every 3 bytes), and JSON.
NPM_PUBLISH_PATH = re.compile(r"/[^/]+/[^/]+/npm/(?!-/).+")
UPLOAD_TARGET = re.compile(re.escape(UPLOAD_TARGET_PATH))

DESCRIPTION = """\
A self-hosted implementation of Buildkite Package Registries' **Registry tokens API**.

Authenticate with `Authorization: Bearer <API access token>`. Errors are JSON
`{"message": "..."}`. A registry token's secret is returned once, by create, and is never
shown again: only a keyed hash of it is stored.
"""


def npm_publish_limit(settings: Settings) -> int:
    """The largest npm publish document: the largest tarball in base64, and the JSON."""
    return -(-settings.max_upload_bytes // 3) * 4 + settings.max_body_bytes


class ObservedApp(FastAPI):
    """The app with :class:`RequestObserver` outermost, outside even Starlette's error
    middleware, so that every response (a 500 too) carries the request id and is counted."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        return RequestObserver(super().build_middleware_stack(), self.router.routes, settings)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[None]:
        # Handlers run in AnyIO's worker threads (40 by default). Past a few, more threads
        # add no throughput for this CPU-bound work, only GIL contention between them.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = settings.worker_threads
        built: Services = served.state.services
        # Before the first sign-in, so that its refusal takes as long as any other.
        await anyio.to_thread.run_sync(built.users.prepare_password_checks)
        # Read once, so that the first /readyz is as quick as any other.
        await anyio.to_thread.run_sync(migrate.head_revisions)
        yield
        # Refused installs still queued, and usage gathered, are written before the end.
        await anyio.to_thread.run_sync(built.install.refusals.close)
        await anyio.to_thread.run_sync(built.install.usage.close)

    app = ObservedApp(
        title="registry-tokens",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    services = services or Services.build(settings)
    app.state.services = services
    app.state.settings = services.settings
    # What the REST door's dependencies look up (api.routes.provided).
    app.state.provided = {**services.by_type(), Gate: services.gate}
    install_error_handlers(app)
    for router in (
        registry_tokens_router,
        registry_usage_router,
        packages_router,
        uploads_router,
        registries_router,
        organizations_router,
        rate_limit_router,
        users_router,
        access_token_router,
        audit_router,
        secret_scanning_router,
    ):
        app.include_router(router)
    # The package protocols and the console: plain Starlette routes beside the API,
    # outside OpenAPI, and matched first (their paths, ``/{org}/{registry}/pypi/…``,
    # ``/{org}/{registry}/npm/…`` and the console's under WEB_URL, are never the API's).
    # Health and metrics first: for probes and scrapers, outside the REST door (no
    # credentials, no rate limits) and outside OpenAPI.
    readiness = Readiness(services.database, services.packages.files)
    app.router.routes[0:0] = [
        *health_routes(readiness),
        metrics_route(services.settings),
        *pypi.routes(),
        *npm.routes(),
        *console.routes(settings.web_base),
    ]
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger=[
            ("POST", PACKAGE_UPLOAD_PATH, settings.max_upload_bytes),
            # The file and the policy's fields: the file's own limit is the policy's.
            ("POST", UPLOAD_TARGET, settings.max_upload_bytes + settings.max_body_bytes),
            ("POST", LEAK_REPORT_PATH, settings.secret_scanning_max_body_bytes),
            ("PUT", NPM_PUBLISH_PATH, npm_publish_limit(settings)),
        ],
    )
    # Outermost, for both doors: redirects stay on this server; HEAD is GET without a body.
    app.add_middleware(RelativeRedirects)
    app.add_middleware(HeadAsGet)

    # Swagger UI served from the installed package, so the docs work without internet access.
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="registry-tokens API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )

    return app
