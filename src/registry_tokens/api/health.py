"""``GET /healthz`` and ``GET /readyz``: what load balancers and Kubernetes probes ask.

``/healthz`` says the process answers, with no I/O at all (a liveness probe must not fail
because the database did: restarting the process would not bring it back). ``/readyz``
says whether this process can serve now: the database answers one indexed read, which
also shows its schema is at this code's migrations, and the package store is reachable.
Not ready is a 503 with ``Retry-After``, so a balancer sends the traffic elsewhere until
it passes again; nothing restarts.

Both are unauthenticated, outside the REST door (so never rate limited or counted against
a limit), outside OpenAPI, and never cached (``Cache-Control: no-store``).
"""

import logging
import os
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from registry_tokens.db import Database, migrate
from registry_tokens.kit.files import private_directory

logger = logging.getLogger("registry_tokens")
OK = "ok"
NO_STORE = {"Cache-Control": "no-store"}
RETRY_AFTER_SECONDS = 5


class Readiness:
    """The checks of ``/readyz``: the database, its migrations, the package store.

    ``store`` is the package store: its ``check()`` (or ``reachable()``) when it has one
    (a store that is not a directory), else its ``root`` directory must be there (it is
    made if missing, as the first upload would make it) and writable.
    """

    def __init__(self, database: Database, store: object) -> None:
        self.database = database
        self.store = store

    async def checks(self) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            revisions = await self.database.read(migrate.schema_revisions, self.database)
        except Exception as error:
            logger.warning("readiness: the database does not answer: %s", _cause(error))
            found["database"] = "unavailable"
            found["migrations"] = "unknown"
        else:
            found["database"] = OK
            heads = migrate.head_revisions()
            found["migrations"] = (
                OK
                if revisions == heads
                else f"database at {_named(revisions)}, this code at {_named(heads)}"
            )
        found["storage"] = await anyio.to_thread.run_sync(self.storage)
        return found

    def storage(self) -> str:
        for name in ("check", "reachable"):
            method = getattr(self.store, name, None)
            if callable(method):
                try:
                    answer = method()
                except Exception as error:
                    logger.warning("readiness: the package store fails: %s", error)
                    return "unavailable"
                return "unavailable" if answer is False else OK
        root = getattr(self.store, "root", None)
        if not isinstance(root, Path):
            return "unknown"
        try:
            private_directory(root)  # as the first upload would make it
        except OSError as error:
            logger.warning("readiness: the package directory cannot be made: %s", error)
            return "missing"
        if not root.is_dir():
            return "missing"
        if not os.access(root, os.W_OK | os.X_OK):
            return "not writable"
        return OK


def _cause(error: Exception) -> object:
    return getattr(error, "orig", None) or error


def _named(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "no revision"


def health_routes(readiness: Readiness) -> list[Route]:
    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": OK}, headers=NO_STORE)

    async def readyz(_request: Request) -> JSONResponse:
        checks = await readiness.checks()
        ready = all(value == OK for value in checks.values())
        body: dict[str, Any] = {"status": OK if ready else "unavailable", "checks": checks}
        if ready:
            return JSONResponse(body, headers=NO_STORE)
        headers = {**NO_STORE, "Retry-After": str(RETRY_AFTER_SECONDS)}
        return JSONResponse(body, status_code=503, headers=headers)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
