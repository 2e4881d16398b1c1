"""Requests httpx will not send, written on a bare socket to a real server process."""

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_auth_matrix import Matrix, Rejections, party
from tests.harness import Seeder, Server, running_server
from tests.package_helpers import admin_tenant, registry_path


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    """The auth matrix's server (tests/api/test_auth_matrix.py), as a real process, with a
    party whose token a wrongly accepted request could revoke."""
    workdir = tmp_path_factory.mktemp("auth-matrix-raw")
    storage = workdir / "package-files"
    env = {"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage)}
    with running_server(workdir, env=env) as server:
        seeder = Seeder(server)
        party(seeder)
        yield Matrix(server, seeder, storage)
        seeder.services.database.dispose()


@pytest.fixture(scope="module")
def http(matrix: Matrix) -> Iterator[httpx.Client]:
    with matrix.server.client(timeout=30) as client:
        yield client


@pytest.mark.parametrize("value", [b"Bearer ", b"Bearer \t ", b""])
def test_an_empty_bearer_sent_raw_is_401_and_revokes_nothing(
    matrix: Matrix, http: httpx.Client, value: bytes
) -> None:
    """Sent on a bare socket, as httpx will not send a header value ending in whitespace."""
    host, port = matrix.server.base_url.removeprefix("http://").split(":")
    request = (
        b"DELETE /v2/access-token HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Authorization: " + value + b"\r\nConnection: close\r\n\r\n"
    )
    rejections = Rejections(http, matrix)
    before = rejections.snapshot()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    assert rejections.snapshot() == before
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), head
    assert isinstance(json.loads(body)["message"], str)


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(
    server: Server, seeder: Seeder
) -> None:
    """Declares 50 MB but sends 1 KB: a server that read the body would wait for the rest;
    one that authorizes first answers 401 at once."""
    tenant = admin_tenant(seeder)
    host, port = server.base_url.removeprefix("http://").split(":")
    path = f"{registry_path(tenant.org, tenant.registry)}/packages"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode() + b"x" * 1024)
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
