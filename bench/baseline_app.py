"""The baseline: a bare ASGI app that answers every request with one precomputed response.

The driver captures a path's real response (status, content type, body) and starts this app
with it, so the baseline sends exactly as many bytes as the service does, through the same
server software with the same settings as ``registry-tokens serve`` (uvicorn, uvloop,
httptools, no server header, no proxy headers). What the service costs beyond it is the
service's own work, which includes the bounds ``serve`` adds to uvicorn's protocol
(``registry_tokens/server.py``: head size and time, connections), left out here.

    BENCH_BASELINE_STATUS=200 BENCH_BASELINE_CONTENT_TYPE=application/json \\
    BENCH_BASELINE_BODY_FILE=body.bin python -m bench.baseline_app --port 9000 --workers 1
"""

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _load() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status = int(os.environ.get("BENCH_BASELINE_STATUS", "200"))
    content_type = os.environ.get("BENCH_BASELINE_CONTENT_TYPE", "application/json")
    body_file = os.environ.get("BENCH_BASELINE_BODY_FILE")
    body = Path(body_file).read_bytes() if body_file else b""
    headers = [(b"content-length", str(len(body)).encode("ascii"))]
    if content_type:
        headers.append((b"content-type", content_type.encode("latin-1")))
    return status, headers, body


STATUS, HEADERS, BODY = _load()


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    # Read the request body, as the service does, before answering.
    for _ in range(1_000_000):
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": STATUS, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    arguments = parser.parse_args()
    # uvicorn as `registry-tokens serve` runs it (cli.py), without the service's bounds.
    uvicorn.run(
        "bench.baseline_app:app",
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        log_level=arguments.log_level,
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
