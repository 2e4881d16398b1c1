"""What a client may hold of a real ``serve`` process before its request reaches the app:
a head of bounded size (431) and time (408), idle keep-alive, connections (503). Bare
sockets, since no HTTP client sends such requests; small settings keep the tests short."""

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ServerProcess, running_server

MAX_HEADER_BYTES = 8192
HEADER_TIMEOUT = 1
KEEP_ALIVE = 1


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "REGISTRY_TOKENS_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "REGISTRY_TOKENS_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "REGISTRY_TOKENS_KEEP_ALIVE_TIMEOUT_SECONDS": str(KEEP_ALIVE),
    }
    with running_server(tmp_path_factory.mktemp("bounded"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two connections at most; idle ones stay open long enough to be counted."""
    env = {
        "REGISTRY_TOKENS_MAX_CONNECTIONS": "2",
        "REGISTRY_TOKENS_KEEP_ALIVE_TIMEOUT_SECONDS": "60",
    }
    with running_server(tmp_path_factory.mktemp("crowded"), env=env) as server:
        yield server


def connect(server: ServerProcess, timeout: float = 10) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset included)."""
    reply = b""
    try:
        while chunk := connection.recv(65536):
            reply += chunk
    except ConnectionResetError:
        pass
    return reply


def response_head(connection: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = connection.recv(65536)
        assert chunk, head
        head += chunk
    return head


def json_error(reply: bytes, status: int) -> str:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), reply[:300]
    assert b"content-type: application/json" in head.lower()
    message: str = json.loads(body)["message"]
    return message


def request_of(head_bytes: int) -> bytes:
    """A complete GET whose head (request line to the blank line) is ``head_bytes`` long."""
    start, end = b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (head_bytes - len(start) - len(end)) + end


def peak_memory_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), from the kernel."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# --- the size of a head ------------------------------------------------------------------


def test_a_head_at_the_bound_is_served_and_one_byte_more_is_431(bounded: ServerProcess) -> None:
    with connect(bounded) as connection:
        connection.sendall(request_of(MAX_HEADER_BYTES))
        assert response_head(connection).startswith(b"HTTP/1.1 200 ")
    with connect(bounded) as connection:
        connection.sendall(request_of(MAX_HEADER_BYTES + 1))
        reply = until_closed(connection)  # returns: the server closed the connection
    assert f"the limit is {MAX_HEADER_BYTES} bytes" in json_error(reply, 431)
    assert b"connection: close" in reply.lower()


def test_an_endless_header_is_cut_at_the_bound_and_costs_no_memory(
    bounded: ServerProcess,
) -> None:
    """Four clients each claim a 16 MiB header line (the finding: 100 MB each grew the
    server by their size). The server reads up to the bound, answers 431, closes, and its
    peak memory does not grow by what was claimed."""
    assert bounded.process is not None
    claimed = 16 * 1024 * 1024
    before = peak_memory_kib(bounded.process.pid)
    accepted: list[int] = []
    replies: list[bytes] = []

    def flood() -> None:
        with connect(bounded, timeout=30) as connection:
            sent = 0
            try:
                connection.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Endless: ")
                chunk = b"a" * 65536
                while sent < claimed:
                    connection.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            accepted.append(sent)
            replies.append(until_closed(connection))

    floods = [threading.Thread(target=flood) for _ in range(4)]
    for thread in floods:
        thread.start()
    for thread in floods:
        thread.join()

    grown_kib = peak_memory_kib(bounded.process.pid) - before
    assert grown_kib < claimed // 1024, f"peak memory grew by {grown_kib} KiB"
    # The server stopped reading: no client got its whole header in (what it did send sits
    # in socket buffers), and each was answered 431.
    assert all(sent < claimed for sent in accepted), accepted
    for reply in replies:
        json_error(reply, 431)
    with httpx.Client(base_url=bounded.base_url, timeout=10) as client:
        assert client.get("/openapi.json").status_code == 200


# --- the time to send a head -------------------------------------------------------------


def test_a_head_that_stops_halfway_is_408_after_the_header_timeout(
    bounded: ServerProcess,
) -> None:
    with connect(bounded) as connection:
        connection.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n")
        reply = until_closed(connection)
    assert "did not arrive within 1 seconds" in json_error(reply, 408)


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    bounded: ServerProcess,
) -> None:
    with connect(bounded) as connection:
        json_error(until_closed(connection), 408)


def test_a_head_trickling_in_is_408_however_steady_the_trickle(bounded: ServerProcess) -> None:
    """One byte every 0.1 s keeps the connection busy, but the head's deadline is for all
    of it: the 408 comes long before the 60 bytes (6 s) are sent."""
    trickle = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 30
    with connect(bounded) as connection:
        sent = 0
        try:
            for byte in trickle:
                connection.sendall(bytes([byte]))
                sent += 1
                if select.select([connection], [], [], 0.1)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = until_closed(connection)
    json_error(reply, 408)
    assert sent < len(trickle)


def test_the_header_timeout_starts_again_for_each_request_of_a_connection(
    bounded: ServerProcess,
) -> None:
    """Requests on one kept-alive connection, each sent within the timeout, are served
    however long the connection lives."""
    with connect(bounded) as connection:
        for _ in range(3):
            connection.sendall(b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n")
            time.sleep(HEADER_TIMEOUT / 2)
            connection.sendall(b"\r\n")
            assert response_head(connection).startswith(b"HTTP/1.1 200 ")


# --- idle keep-alive ---------------------------------------------------------------------


def test_an_idle_kept_alive_connection_is_closed_after_its_timeout(
    bounded: ServerProcess,
) -> None:
    """Closed at the setting (1 s), well before uvicorn's default (5 s): a generous bound,
    since the finding is about time."""
    with connect(bounded, timeout=4.5) as connection:
        connection.sendall(b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response_head(connection).startswith(b"HTTP/1.1 200 ")
        assert connection.recv(65536) == b""  # closed without a word, not timed out


# --- connections -------------------------------------------------------------------------


def test_a_connection_beyond_the_bound_is_503_and_the_slot_comes_back(
    crowded: ServerProcess,
) -> None:
    first, second = connect(crowded), connect(crowded)
    try:
        for connection in (first, second):
            connection.sendall(b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            assert response_head(connection).startswith(b"HTTP/1.1 200 ")
        with connect(crowded) as third:
            third.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = until_closed(third)
        assert "too many connections" in json_error(reply, 503)
        assert b"retry-after: 1" in reply.lower()
        # The two kept connections are still served.
        second.sendall(b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response_head(second).startswith(b"HTTP/1.1 200 ")
    finally:
        first.close()
        second.close()
    # Once they are closed, a new connection is served (the server notices the closes
    # shortly after: ask until it has).
    for _ in range(100):
        with connect(crowded) as again:
            again.sendall(b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            if response_head(again).startswith(b"HTTP/1.1 200 "):
                return
        time.sleep(0.05)
    raise AssertionError("the freed connections were never counted as closed")
