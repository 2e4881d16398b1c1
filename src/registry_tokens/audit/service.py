"""Recording audit events (inside the transaction of the change they describe) and
listing them."""

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry_tokens.audit.models import AuditEvent
from registry_tokens.db import Database
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.cursor import Cursor, Window, fetch_window
from registry_tokens.kit.errors import FieldProblem, NotFound, ValidationFailed
from registry_tokens.organizations.service import visible_organization
from registry_tokens.registries.repository import RegistryRepository
from registry_tokens.users.repository import UserRepository

# The most of a client's user agent the log keeps (the column holds more, from before).
MAX_USER_AGENT = 256


class EventType(StrEnum):
    """Buildkite's names where Buildkite has one, ours for what it does not do."""

    REGISTRY_TOKEN_CREATED = "REGISTRY_TOKEN_CREATED"
    REGISTRY_TOKEN_UPDATED = "REGISTRY_TOKEN_UPDATED"
    REGISTRY_TOKEN_DELETED = "REGISTRY_TOKEN_DELETED"
    REGISTRY_TOKEN_ROTATED = "REGISTRY_TOKEN_ROTATED"
    REGISTRY_TOKEN_USE_REFUSED = "REGISTRY_TOKEN_USE_REFUSED"
    REGISTRY_TOKEN_LEAK_REPORTED = "REGISTRY_TOKEN_LEAK_REPORTED"
    REGISTRY_TOKEN_DISABLED = "REGISTRY_TOKEN_DISABLED"
    REGISTRY_TOKEN_ENABLED = "REGISTRY_TOKEN_ENABLED"
    REGISTRY_TOKEN_USAGE_RESET = "REGISTRY_TOKEN_USAGE_RESET"
    OIDC_TOKEN_USED = "OIDC_TOKEN_USED"  # an OIDC token's first use
    OIDC_TOKEN_REFUSED = "OIDC_TOKEN_REFUSED"


class Refusal(StrEnum):
    """Why a registry token was refused at install time (``data.reason``)."""

    EXPIRED = "expired"
    IP_NOT_ALLOWED = "ip_not_allowed"
    REVOKED = "revoked"
    WRONG_REGISTRY = "wrong_registry"
    ROTATED_OUT = "rotated_out"
    DISABLED = "disabled"
    NOT_YET_VALID = "not_yet_valid"
    QUOTA_EXCEEDED = "quota_exceeded"
    PACKAGE_NOT_ALLOWED = "package_not_allowed"


@dataclass(frozen=True)
class Subject:
    """The registry token (or OIDC token: no id, its subject as name) an event is about,
    as the log keeps it (it outlives the token)."""

    organization_id: uuid.UUID
    registry_id: uuid.UUID | None
    registry_slug: str | None
    token_id: uuid.UUID | None
    name: str | None


@dataclass(frozen=True)
class Actor:
    type: str  # "user", "registry_token", "secret_scanner" or "oidc"
    id: uuid.UUID | None = None
    name: str | None = None


@dataclass(frozen=True)
class EventFilters:
    registry: str | None = None
    token: uuid.UUID | None = None
    event_type: str | None = None


def user_actor(session: Session, caller: Caller) -> Actor:
    user = UserRepository(session).get(caller.user)
    return Actor("user", caller.user, user.name if user else None)


def record(
    session: Session,
    event_type: EventType,
    subject: Subject,
    actor: Actor,
    context: RequestContext,
    data: dict[str, Any] | None = None,
    event_id: uuid.UUID | None = None,
) -> AuditEvent:
    """Adds an event about ``subject`` to the session's transaction: it commits with the
    change it describes, or not at all. ``event_id`` (its time is the event's) defaults
    to now. The user agent is kept as sent, as data, cut at ``MAX_USER_AGENT``."""
    event = AuditEvent(
        id=event_id,
        organization_id=subject.organization_id,
        event_type=event_type.value,
        registry_id=subject.registry_id,
        registry_slug=subject.registry_slug,
        registry_token_id=subject.token_id,
        subject_name=subject.name,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        client_ip=context.client_ip,
        user_agent=context.user_agent[:MAX_USER_AGENT] if context.user_agent else None,
        data=data or {},
    )
    session.add(event)
    return event


class AuditService:
    def __init__(self, database: Database) -> None:
        self.database = database

    def list(
        self, caller: Caller, org: str, filters: EventFilters, cursor: Cursor
    ) -> Window[AuditEvent]:
        caller.require(Scope.READ_REGISTRIES)
        organization = visible_organization(self.database, caller, org)
        with self.database.reading() as session:
            query = select(AuditEvent).where(AuditEvent.organization_id == organization.id)
            if filters.registry is not None:
                registry = RegistryRepository(session).get_by_slug(
                    organization.id, filters.registry
                )
                if registry is None:
                    raise NotFound("registry")
                query = query.where(AuditEvent.registry_id == registry.id)
            if filters.token is not None:
                query = query.where(AuditEvent.registry_token_id == filters.token)
            if filters.event_type is not None:
                if filters.event_type not in {e.value for e in EventType}:
                    known = ", ".join(e.value for e in EventType)
                    raise ValidationFailed(
                        [FieldProblem("event_type", "invalid", f"must be one of: {known}")]
                    )
                query = query.where(AuditEvent.event_type == filters.event_type)
            return fetch_window(session, query, AuditEvent.id, cursor)
