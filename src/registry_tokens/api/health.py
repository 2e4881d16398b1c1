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
from typing import Any, Protocol

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from registry_tokens.db import Database, migrate

logger = logging.getLogger("registry_tokens")
OK = "ok"
NO_STORE = {"Cache-Control": "no-store"}
RETRY_AFTER_SECONDS = 5


class Checkable(Protocol):
    def check(self) -> None: ...


class Readiness:
    """The checks of ``/readyz``: the database, its migrations, the package store.

    ``store`` is the package store (``packages.storage.PackageStore``, above this layer):
    its ``check()`` raises unless it can be used (a local directory that can be made and
    written, as the first upload would make it; a bucket that answers).
    """

    def __init__(self, database: Database, store: "Checkable") -> None:
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
        try:
            self.store.check()
        except Exception as error:  # the store's own (or OSError): either way, not ready
            logger.warning("readiness: the package store fails: %s", error)
            return "unavailable"
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
