"""PostgreSQL going away and coming back: no request answers 500.

A real server on a real PostgreSQL. Its connections are cut the way a restart cuts them
(``pg_terminate_backend``), or the server is made unreachable through a TCP forwarder
started and stopped here (the shared PostgreSQL cluster itself is never stopped).
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.harness import (
    BACKEND,
    POSTGRES_ADMIN_URL,
    Seeder,
    ServerProcess,
    Tenant,
    free_port,
    running_server,
    scratch_database,
)
from tests.package_helpers import admin_tenant, basic, create_registry_token, simple_path

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql", reason="PostgreSQL's connections and reachability"
)

Check = Callable[[httpx.Client], httpx.Response]


def _requests(tenant: Tenant, registry_token: str) -> list[tuple[str, Check]]:
    """One of each kind: typed reads (REST and install), an ORM read, a write."""
    auth, install = tenant.auth(), basic(registry_token)
    registry = f"/v2/packages/organizations/{tenant.org}/registries/{tenant.registry}"
    index = simple_path(tenant.org, tenant.registry)
    body = {"description": "d"}
    return [
        ("list tokens", lambda c: c.get(tenant.tokens_path, headers=auth)),
        ("get registry", lambda c: c.get(registry, headers=auth)),
        ("list packages", lambda c: c.get(f"{registry}/packages", headers=auth)),
        ("install index", lambda c: c.get(index, headers=install)),
        ("create token", lambda c: c.post(tenant.tokens_path, headers=auth, json=body)),
    ]


def _answers(server: ServerProcess, checks: list[tuple[str, Check]], times: int) -> list[str]:
    """Each request ``times`` times over (spread over the server's threads): what came back."""
    answers = []
    with server.client(timeout=60) as client:
        for _ in range(times):
            for name, check in checks:
                response = check(client)
                answers.append(f"{name}: {response.status_code}")
    return answers


def _terminate_backends(database_url: str) -> int:
    name = make_url(database_url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            terminated: int = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).scalar_one()
            return terminated
    finally:
        admin.dispose()


def test_every_request_after_postgresql_drops_the_connections_succeeds(tmp_path: Path) -> None:
    with (
        scratch_database(tmp_path) as url,
        running_server(tmp_path, url, serve_args=("--workers", "2")) as server,
    ):
        seeder = Seeder(server)
        tenant = admin_tenant(seeder)
        seeder.services.database.dispose()
        with server.client() as client:
            secret = create_registry_token(client, tenant.org, tenant.registry, tenant.tokens["rw"])
        checks = _requests(tenant, secret["token"])
        assert set(_answers(server, checks, 10)) == {f"{name}: 200" for name, _ in checks}
        for _ in range(3):  # as a restart does: every kept and pooled connection is cut
            assert _terminate_backends(url) > 0
            answers = _answers(server, checks, 10)
            assert set(answers) == {f"{name}: 200" for name, _ in checks}, answers


class TcpForwarder:
    """A TCP forwarder on 127.0.0.1 to PostgreSQL that a test can cut and restore.

    ``cut()`` resets every forwarded connection and stops listening (connections are
    refused); ``blackhole()`` resets them and accepts new ones without ever answering (an
    unreachable host); ``restore()`` forwards again, on the same port.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._forwarding = True

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            self._track(client)
            if not self._forwarding:
                continue  # held open, never answered
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                self._close(client)
                continue
            self._track(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source)
            self._close(sink)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _reset_all(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._close(sock)

    def cut(self) -> None:
        if self._listener is not None:
            self._close(self._listener)
            self._listener = None
        self._reset_all()

    def blackhole(self) -> None:
        self._forwarding = False
        self._reset_all()
        if self._listener is None:
            self.start()

    def restore(self) -> None:
        self._forwarding = True
        self._reset_all()  # whatever the black hole held
        if self._listener is None:
            self.start()


@contextlib.contextmanager
def server_behind_forwarder(
    workdir: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[ServerProcess, TcpForwarder, Tenant, str]]:
    """A server whose database is reached only through a forwarder, with a tenant."""
    with scratch_database(workdir) as url:
        real = make_url(url)
        forwarder = TcpForwarder((real.host or "127.0.0.1", real.port or 5432))
        forwarder.start()
        try:
            through = real.set(host="127.0.0.1", port=forwarder.port)
            with running_server(
                workdir, through.render_as_string(hide_password=False), env=env
            ) as server:
                seeder = Seeder(server)
                tenant = admin_tenant(seeder)
                seeder.services.database.dispose()
                with server.client() as client:
                    token = create_registry_token(
                        client, tenant.org, tenant.registry, tenant.tokens["rw"]
                    )
                yield server, forwarder, tenant, token["token"]
        finally:
            forwarder.cut()


def test_an_unreachable_database_answers_503_and_recovers_by_itself(tmp_path: Path) -> None:
    with server_behind_forwarder(tmp_path) as (server, forwarder, tenant, secret):
        checks = _requests(tenant, secret)
        assert set(_answers(server, checks, 5)) == {f"{name}: 200" for name, _ in checks}
        forwarder.cut()
        with server.client() as client:
            for name, check in checks:
                response = check(client)
                assert response.status_code == 503, (name, response.text)
                assert response.headers["Retry-After"].isdigit()
                assert "unavailable" in response.json()["message"]
        forwarder.restore()
        answers = _answers(server, checks, 5)
        assert set(answers) == {f"{name}: 200" for name, _ in checks}, answers
        log = server.log_path.read_text()
        assert "500 Internal Server Error" not in log
        assert "Exception in ASGI" not in log


def test_a_database_host_that_never_answers_gets_503_within_the_connect_timeout(
    tmp_path: Path,
) -> None:
    env = {"REGISTRY_TOKENS_DB_CONNECT_TIMEOUT_SECONDS": "1"}
    with server_behind_forwarder(tmp_path, env) as (server, forwarder, tenant, secret):
        forwarder.blackhole()
        with server.client(timeout=60) as client:
            for name, check in _requests(tenant, secret):
                started = time.monotonic()
                response = check(client)
                # Generous: the point is seconds (the setting), not the system's minutes.
                assert time.monotonic() - started < 20, name
                assert response.status_code == 503, (name, response.text)
        forwarder.restore()
        checks = _requests(tenant, secret)
        assert set(_answers(server, checks, 3)) == {f"{name}: 200" for name, _ in checks}
