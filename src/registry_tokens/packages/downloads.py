"""Package files sent to clients: what every download answers (package protocols, console)."""

from collections.abc import Awaitable, Callable

import anyio.to_thread
from starlette.responses import RedirectResponse, Response, StreamingResponse

from registry_tokens.kit.errors import NotFound
from registry_tokens.kit.urls import EXTERNAL_REDIRECT
from registry_tokens.packages.repository import StoredFile
from registry_tokens.packages.storage import Opened, PackageStore


async def file_response(
    store: PackageStore, stored: StoredFile, filename: str, admit: Callable[[], Awaitable[None]]
) -> Response:
    """The stored file, named ``filename`` for the client, once ``admit`` (the download's
    count, which may refuse it) has passed.

    The file is fetched first (opened, or read whole when it is one chunk: most packages;
    from an object store, in a worker thread), so that a download is counted only once it
    is sure to be served, and a delete racing it leaves the client all of the file or a
    404. When the store redirects downloads, the answer is a short-lived URL of the file
    in the store, given only after ``admit``: authorization is always ours."""
    redirect = store.download_url(stored.sha256, stored.id, filename)
    if redirect is not None:
        await admit()
        return RedirectResponse(
            redirect, 302, headers={"Cache-Control": "private, no-store", EXTERNAL_REDIRECT: "1"}
        )
    try:
        if store.remote:
            opened = await anyio.to_thread.run_sync(store.fetch, stored.sha256, stored.id)
        else:
            opened = store.fetch(stored.sha256, stored.id)
    except FileNotFoundError:
        raise NotFound("file") from None
    try:
        await admit()
    except BaseException:
        _close(opened)
        raise
    headers = {
        "Content-Length": str(opened.size),
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "private, no-store",
    }
    if opened.content is not None:
        return Response(opened.content, media_type="application/octet-stream", headers=headers)
    return StreamingResponse(
        opened.chunks(), media_type="application/octet-stream", headers=headers
    )


def _close(opened: Opened) -> None:
    if opened.close is not None:  # a stream never started: its ``finally`` would not run
        opened.close()
