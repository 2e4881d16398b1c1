"""Refused installs, recorded in the audit log off the request path.

A refusal is answered at once; its record waits in a bounded in-process queue that one
background thread writes in batches (one transaction each). So a refused install costs
the same whether or not the token was ever real: the request path does the same reads
for both and no write, and the time does not tell anyone which strings were tokens.

What may be lost: records still queued when the process dies uncleanly (SIGKILL, a
crash); a graceful shutdown (the app's lifespan, :meth:`RefusalLog.close`) writes them
all. A full queue drops new records (counted in ``dropped`` and logged), as does a
batch the database refuses. At most ``REFUSALS_RECORDED_PER_TOKEN`` refusals of one token
are recorded per rate-limit window, across processes (counted in the shared rate-limit
store, also off the request path); later ones in the window are refused unrecorded.

Refused OIDC tokens (``oidc``) wait in the same queue and are written by the same thread;
their count is kept per sender and organization, since a made-up token is new every time.
"""

import asyncio
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass, replace

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from registry_tokens.audit.service import (
    MAX_USER_AGENT,
    Actor,
    EventType,
    Refusal,
    Subject,
    record,
)
from registry_tokens.db import Database
from registry_tokens.kit.context import RequestContext
from registry_tokens.kit.ids import new_id
from registry_tokens.oidc.schemas import OidcRefusedUse
from registry_tokens.oidc.service import record_refusal
from registry_tokens.ratelimits.service import RateLimited, RateLimitPolicy
from registry_tokens.registries.repository import RegistryRepository
from registry_tokens.registry_tokens.repository import (
    PresentedCredential,
    RegistryTokenRepository,
)

logger = logging.getLogger("registry_tokens.audit")

BATCH = 200  # records written per transaction
# The writer writes what was queued every this many seconds: its work then runs at times
# no one request is answered at, so it slows refused requests of either kind alike.
GATHER_SECONDS = 0.1


@dataclass(frozen=True)
class RefusedUse:
    """One refused install, as it will be recorded (``event_id`` carries its time)."""

    token: PresentedCredential
    refusal: Refusal
    requested_registry: str
    context: RequestContext
    event_id: uuid.UUID


class RefusalLog:
    """The queue of refusals to record and the thread that writes them."""

    def __init__(
        self,
        database: Database,
        rate_limits: RateLimitPolicy,
        capacity: int,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self.database = database
        self.rate_limits = rate_limits
        self.capacity = capacity
        self.gather_seconds = gather_seconds
        self.dropped = 0  # records lost to a full queue or a failed write
        self.unrecorded = 0  # refusals over their token's limit, on purpose
        self._pending: deque[RefusedUse | OidcRefusedUse] = deque()
        self._changed = threading.Condition()  # guards _pending, _thread, _closing
        self._writing = threading.Lock()  # held while a batch is taken and written
        self._thread: threading.Thread | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the writer's, for the counts

    def add(
        self,
        token: PresentedCredential,
        refusal: Refusal,
        requested_registry: str,
        context: RequestContext,
    ) -> None:
        """Queues a refusal to be recorded: no I/O, never blocks on the writer. What is
        queued is bounded (the user agent is cut as the log cuts it)."""
        if context.user_agent is not None and len(context.user_agent) > MAX_USER_AGENT:
            context = replace(context, user_agent=context.user_agent[:MAX_USER_AGENT])
        self._queue(RefusedUse(token, refusal, requested_registry, context, new_id()))

    def add_oidc(self, use: OidcRefusedUse) -> None:
        """Queues a refused OIDC token, as :meth:`add` does a registry token; one refused
        at a path with no registry has no organization to be recorded in, and is not."""
        if use.organization_id is None:
            return
        context = use.context
        if context.user_agent is not None and len(context.user_agent) > MAX_USER_AGENT:
            use = replace(
                use, context=replace(context, user_agent=context.user_agent[:MAX_USER_AGENT])
            )
        self._queue(use)

    def _queue(self, use: "RefusedUse | OidcRefusedUse") -> None:
        with self._changed:
            if len(self._pending) >= self.capacity:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    logger.warning(
                        "Refused installs are coming faster than they can be recorded; "
                        "%d dropped from the audit log so far",
                        self.dropped,
                    )
                return
            self._pending.append(use)
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name="refusal-log", daemon=True)
                self._thread.start()
            # The writer is not woken: that would cost this request a thread switch that
            # a refusal of a never-issued token does not pay. It looks every gather_seconds.

    @property
    def pending(self) -> int:
        with self._changed:
            return len(self._pending)

    def flush(self) -> None:
        """Writes every refusal queued so far, including a batch being written by the
        thread (this waits for it)."""
        with self._writing:
            while batch := self._take():
                self._write(batch)

    def close(self) -> None:
        """Stops the thread after it has written everything queued (graceful shutdown)."""
        with self._changed:
            self._closing = True
            thread = self._thread
            self._changed.notify_all()
        if thread is not None:
            thread.join()
        self.flush()  # anything queued after the thread stopped
        with self._changed:
            self._thread = None
            self._closing = False
        with self._writing:
            if self._loop is not None:
                self._loop.close()
                self._loop = None

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._closing:
                    self._changed.wait(self.gather_seconds)  # close() wakes it early
                closing = self._closing
            try:
                self.flush()
            except Exception:  # the thread must outlive any one batch
                logger.exception("Refused installs could not be recorded")
            if closing:
                return

    def _take(self) -> list[RefusedUse | OidcRefusedUse]:
        with self._changed:
            return [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]

    def _write(self, batch: list[RefusedUse | OidcRefusedUse]) -> None:
        recorded = [use for use in batch if self._within_limit(use)]
        self.unrecorded += len(batch) - len(recorded)
        if not recorded:
            return
        tokens = [use for use in recorded if isinstance(use, RefusedUse)]
        oidc = [use for use in recorded if isinstance(use, OidcRefusedUse)]
        try:
            with self.database.writing() as session:
                existing = RegistryTokenRepository(session).existing(use.token.id for use in tokens)
                for use in tokens:
                    if use.token.id in existing:  # else its registry was deleted, and it too
                        _record(session, use)
                registries = RegistryRepository(session)
                for refused in oidc:
                    registry = registries.get(refused.registry_id) if refused.registry_id else None
                    if registry is not None:  # else deleted since, with its log's subject
                        record_refusal(session, refused, registry.slug)
        except (SQLAlchemyError, OSError) as error:
            with self._changed:
                self.dropped += len(recorded)
            logger.warning(
                "Refused installs cannot be recorded (%s); %d dropped from the audit log",
                type(error).__name__,
                len(recorded),
            )

    def _within_limit(self, use: "RefusedUse | OidcRefusedUse") -> bool:
        """Whether the token's refusals in this window (an OIDC token's: its sender's, in
        that organization) leave room to record this one."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        if isinstance(use, RefusedUse):
            counted = self.rate_limits.for_refused_token(use.token.id)
        else:
            assert use.organization_id is not None  # add_oidc queues no other
            counted = self.rate_limits.for_refused_oidc(
                use.organization_id, use.context.client_ip or "unknown"
            )
        try:
            self._loop.run_until_complete(counted)
        except RateLimited:
            return False
        return True


def _record(session: Session, use: RefusedUse) -> None:
    token = use.token
    record(
        session,
        EventType.REGISTRY_TOKEN_USE_REFUSED,
        Subject(
            token.organization_id,
            token.registry_id,
            token.registry_slug,
            token.id,
            token.description,
        ),
        Actor("registry_token", token.id, token.description),
        use.context,
        {"reason": use.refusal.value, "requested_registry": use.requested_registry},
        event_id=use.event_id,
    )
