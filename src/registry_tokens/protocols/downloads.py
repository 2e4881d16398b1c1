"""Package files streamed to package clients: what every protocol's download answers."""

import os
from collections.abc import Iterator
from pathlib import Path

from starlette.responses import Response, StreamingResponse

from registry_tokens.kit.errors import NotFound
from registry_tokens.packages.storage import CHUNK


def file_response(path: Path, filename: str) -> Response:
    """The stored file at ``path``, named ``filename`` for the client: in one read when it
    fits in one chunk (most packages), else in chunks.

    A streamed body is read in the server's worker threads, two trips for even the
    smallest file, each waiting its turn behind the database work of other requests; under
    load those waits were most of a download's time (bench/RESULTS.md). One read of a
    chunk (1 MiB at most) from the page cache takes a fraction of a millisecond."""
    try:
        # Opened before answering: a delete racing this download unlinks the name, but the
        # open file stays readable to the end, so the client gets all of it or a 404.
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFound("file") from None
    size = os.fstat(handle.fileno()).st_size
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "private, no-store",
    }
    if size <= CHUNK:  # stored files never change: what fstat said is what is read
        with handle:
            content = handle.read()
        return Response(content, media_type="application/octet-stream", headers=headers)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)
