"""Package files sent to package clients: what every protocol's download answers."""

import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from starlette.responses import Response, StreamingResponse

from registry_tokens.kit.errors import NotFound
from registry_tokens.packages.storage import CHUNK


async def file_response(
    path: Path, filename: str, admit: Callable[[], Awaitable[None]]
) -> Response:
    """The stored file at ``path``, named ``filename`` for the client, once ``admit``
    (the download's count, which may refuse it) has passed.

    The file is opened first: a delete racing this download unlinks the name, but the open
    file stays readable to the end, so the client gets all of it or a 404, and a download
    is counted only once it is sure to be served.

    A file of one chunk (most packages) is sent in one read. A streamed body is read in
    the server's worker threads, two trips for even the smallest file, each waiting its
    turn behind other requests' database work; one read of a chunk (1 MiB at most) from
    the page cache takes a fraction of a millisecond."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFound("file") from None
    try:
        await admit()
        size = os.fstat(handle.fileno()).st_size
        headers = {
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        }
        if size <= CHUNK:  # stored files never change: what fstat said is what is read
            content = handle.read()
            handle.close()
            return Response(content, media_type="application/octet-stream", headers=headers)
    except BaseException:
        handle.close()
        raise

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)
