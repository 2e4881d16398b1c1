"""Test harness: the app on a real database, in process or as a real server process, and a
seeder for its data.

Service and API tests drive the app in process (``in_process_server``: the ASGI app from
``create_app`` behind Starlette's ``TestClient``); the end-to-end tests in ``tests/e2e`` talk
HTTP to a server started with ``registry-tokens serve`` (``running_server``). Both offer the
same ``Server`` interface. Data is seeded through the same services the admin CLI uses,
against the same database, and each test gets organizations of its own (unique slugs), so
tests never see each other's data.

This module and ``tests/conftest.py`` are the test suite's main doors into ``src``.
"""

import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from registry_tokens.app import create_app
from registry_tokens.db import migrate
from registry_tokens.kit.timestamps import utcnow
from registry_tokens.organizations.models import Role
from registry_tokens.services import Services
from registry_tokens.settings import Settings
from tests.object_store import STORAGE, bucket_env

READ_WRITE = ("read_registries", "write_registries")
BACKEND = os.environ.get("REGISTRY_TOKENS_TEST_BACKEND", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get(
    "REGISTRY_TOKENS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# The peer address of in-process requests: what a client on the loopback would have.
CLIENT_ADDRESS = ("127.0.0.1", 50000)
_counter = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


class Server(Protocol):
    """What tests need of a server, in process or not."""

    base_url: str
    env: dict[str, str]
    database_url: str

    def settings(self) -> Settings: ...

    def client(
        self, *, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> httpx.Client: ...


def _settings_from_env(env: dict[str, str]) -> Settings:
    prefix = "REGISTRY_TOKENS_"
    fields = Settings.model_fields
    values: dict[str, Any] = {
        key.removeprefix(prefix).lower(): value
        for key, value in env.items()
        if key.startswith(prefix) and key.removeprefix(prefix).lower() in fields
    }
    return Settings(**values)


@dataclass
class ServerProcess:
    base_url: str
    env: dict[str, str]
    log_path: Path
    database_url: str
    process: subprocess.Popen[bytes] | None = None

    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            secret_key=self.env["REGISTRY_TOKENS_SECRET_KEY"],
            api_url=self.base_url,
            web_url=self.env["REGISTRY_TOKENS_WEB_URL"],
            package_storage_dir=Path(self.env["REGISTRY_TOKENS_PACKAGE_STORAGE_DIR"]),
            package_storage_url=self.env.get("REGISTRY_TOKENS_PACKAGE_STORAGE_URL"),
            s3_endpoint_url=self.env.get("REGISTRY_TOKENS_S3_ENDPOINT_URL"),
        )

    def client(self, *, headers: dict[str, str] | None = None, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def start(self, *extra_args: str) -> None:
        port = self.base_url.rsplit(":", 1)[1]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "registry_tokens", "serve", "--port", port, *extra_args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_serving(self.base_url, self.process, self.log_path)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def wait_until_serving(
    base_url: str, process: "subprocess.Popen[bytes]", log_path: Path, timeout: float = 90
) -> None:
    """Return once a started ``serve`` answers; raise with its log if it exits or takes
    longer than ``timeout`` (a ceiling: a loaded machine starts workers slowly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            httpx.get(f"{base_url}/openapi.json", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


@contextmanager
def scratch_database(
    workdir: Path,
    *,
    backend: str = BACKEND,
    admin_url: str = POSTGRES_ADMIN_URL,
    prefix: str = "rt_test",
) -> Iterator[str]:
    """A fresh, empty database; a PostgreSQL one is dropped afterwards, whatever happens.

    ``REGISTRY_TOKENS_TEST_BACKEND`` picks the backend of the tests (``sqlite``, the
    default, or ``postgresql``); each PostgreSQL database has a unique name, so concurrent
    runs never see each other's data. The bench uses it too, with its own admin URL.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'registry-tokens.db'}"
        return
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextmanager
def running_server(
    workdir: Path,
    database_url: str | None = None,
    *,
    env: dict[str, str] | None = None,
    serve_args: tuple[str, ...] = (),
) -> Iterator[ServerProcess]:
    """A ``registry-tokens serve`` process on a free port (a fresh database unless given).

    Rate limits are off unless ``env`` sets them, so that tests making many requests
    measure what they mean to.
    """
    if database_url is None:
        with (
            scratch_database(workdir) as scratch_url,
            running_server(workdir, scratch_url, env=env, serve_args=serve_args) as server,
        ):
            yield server
        return
    workdir.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{free_port()}"
    full_env = {**os.environ, **server_env(workdir, database_url, base_url, env)}
    server = ServerProcess(base_url, full_env, workdir / "server.log", database_url)
    server.start(*serve_args)
    try:
        yield server
    finally:
        server.stop()


def server_env(
    workdir: Path, database_url: str, base_url: str, env: dict[str, str] | None = None
) -> dict[str, str]:
    """The configuration of a test server: a fresh key, rate limits off unless ``env``
    sets them, package files under ``workdir`` (and, with ``REGISTRY_TOKENS_TEST_STORAGE=s3``,
    in a bucket of their own unless ``env`` names one). ``{base_url}`` in a value of ``env``
    is the server's own address (e.g. a ``WEB_URL`` that is the server's, for the console)."""
    given = {name: value.replace("{base_url}", base_url) for name, value in (env or {}).items()}
    if STORAGE == "s3" and "REGISTRY_TOKENS_PACKAGE_STORAGE_URL" not in given:
        given = {**bucket_env(), **given}
    return {
        "REGISTRY_TOKENS_DATABASE_URL": database_url,
        "REGISTRY_TOKENS_SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "REGISTRY_TOKENS_API_URL": base_url,
        "REGISTRY_TOKENS_WEB_URL": "http://web.example.test",
        "REGISTRY_TOKENS_RATE_LIMIT_PER_ORGANIZATION": "0",
        "REGISTRY_TOKENS_RATE_LIMIT_PER_USER": "0",
        "REGISTRY_TOKENS_RATE_LIMIT_PER_CLIENT": "0",
        "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(workdir / "packages"),
        **given,
    }


class Clock:
    """A time for ``in_process_server(clock=...)``: every service of that server reads
    it, and the test moves it (``clock.now += timedelta(...)``)."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class InProcessServer:
    """The app of ``create_app`` in this process, on a real database; ``client()`` drives
    it through an ASGI transport, as a client on the loopback (``CLIENT_ADDRESS``)."""

    base_url: str
    env: dict[str, str]
    database_url: str
    app: FastAPI
    _settings: Settings

    def settings(self) -> Settings:
        return self._settings

    def client(self, *, headers: dict[str, str] | None = None, timeout: float = 30) -> TestClient:
        """A client of the app, to use as a context manager (which runs the lifespan).

        Like a real server, a failing handler answers 500 rather than raising here, and
        redirects are not followed (httpx's default); ``timeout`` has no use in process.
        """
        del timeout
        return TestClient(
            self.app,
            base_url=self.base_url,
            headers=headers,
            client=CLIENT_ADDRESS,
            follow_redirects=False,
            raise_server_exceptions=False,
        )


@contextmanager
def in_process_server(
    workdir: Path,
    database_url: str | None = None,
    *,
    env: dict[str, str] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Iterator[InProcessServer]:
    """``running_server``'s configuration, served in process: the app on a fresh database
    (unless given), migrated as ``serve`` migrates it; its services read ``clock``."""
    if database_url is None:
        with (
            scratch_database(workdir) as scratch_url,
            in_process_server(workdir, scratch_url, env=env, clock=clock) as server,
        ):
            yield server
        return
    workdir.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{free_port()}"
    full_env = server_env(workdir, database_url, base_url, env)
    settings = _settings_from_env(full_env)
    services = Services.build(settings, clock)
    try:
        migrate.upgrade(services.database)
        app = create_app(settings, services)
        yield InProcessServer(base_url, {**os.environ, **full_env}, database_url, app, settings)
    finally:
        services.database.dispose()


@dataclass
class Tenant:
    """One organization with a registry, a member and API tokens of several powers."""

    org: str
    registry: str
    email: str
    user_id: uuid.UUID
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def tokens_path(self) -> str:
        return f"/v2/packages/organizations/{self.org}/registries/{self.registry}/tokens"

    def auth(self, which: str = "rw") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[which]}"}


class Seeder:
    """Creates data directly through the services, as the admin CLI does."""

    def __init__(self, server: Server) -> None:
        self.services = Services.build(server.settings())
        migrate.upgrade(self.services.database)

    def tenant(self, *, scopes: tuple[str, ...] = READ_WRITE) -> Tenant:
        org = unique("org").replace("-", "_")
        email = f"{unique('user')}@example.test"
        self.services.organizations.create(org, f"Org {org}")
        registry = self.services.registries.create(org, "My Registry", slug=unique("reg"))
        user = self.services.users.create("Test User", email)
        self.services.organizations.add_member(org, email, Role.MEMBER)
        tenant = Tenant(org=org, registry=registry.slug, email=email, user_id=user.id)
        tenant.tokens["rw"] = self.api_token(email, scopes)
        return tenant

    def api_token(
        self, email: str, scopes: tuple[str, ...] = READ_WRITE, orgs: tuple[str, ...] = ()
    ) -> str:
        return self.services.auth.issue(email, scopes, organization_slugs=orgs).secret
