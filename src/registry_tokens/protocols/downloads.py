"""Package files streamed to package clients: what every protocol's download answers."""

import os
from collections.abc import Iterator
from pathlib import Path

from starlette.responses import StreamingResponse

from registry_tokens.kit.errors import NotFound
from registry_tokens.packages.storage import CHUNK


def file_response(path: Path, filename: str) -> StreamingResponse:
    """The stored file at ``path``, in chunks, named ``filename`` for the client."""
    try:
        # Opened before answering: a delete racing this download unlinks the name, but the
        # open file stays readable to the end, so the client gets all of it or a 404.
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFound("file") from None
    size = os.fstat(handle.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )
