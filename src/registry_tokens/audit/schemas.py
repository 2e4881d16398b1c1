import uuid
from typing import Any

from pydantic import BaseModel

from registry_tokens.audit.models import AuditEvent
from registry_tokens.kit.cursor import CursorLinks
from registry_tokens.kit.schemas import ResponseModel, Timestamp


class ActorOut(BaseModel):
    type: str
    id: uuid.UUID | None
    name: str | None


class SubjectOut(BaseModel):
    type: str
    id: uuid.UUID | None
    name: str | None


class RegistryOfEvent(BaseModel):
    id: uuid.UUID | None
    slug: str | None


class ContextOut(BaseModel):
    client_ip: str | None
    user_agent: str | None


class AuditEventOut(ResponseModel):
    """Buildkite's audit event shape (id, type, occurred_at, actor, subject, data, context)."""

    id: uuid.UUID
    type: str
    occurred_at: Timestamp
    actor: ActorOut
    subject: SubjectOut
    registry: RegistryOfEvent
    data: dict[str, Any]
    context: ContextOut

    @classmethod
    def of(cls, event: AuditEvent) -> "AuditEventOut":
        return cls(
            id=event.id,
            type=event.event_type,
            occurred_at=event.created_at,
            actor=ActorOut(type=event.actor_type, id=event.actor_id, name=event.actor_name),
            subject=SubjectOut(
                type="OidcToken" if event.event_type.startswith("OIDC_") else "RegistryToken",
                id=event.registry_token_id,
                name=event.subject_name,
            ),
            registry=RegistryOfEvent(id=event.registry_id, slug=event.registry_slug),
            data=event.data,
            context=ContextOut(client_ip=event.client_ip, user_agent=event.user_agent),
        )


class AuditEventList(BaseModel):
    items: list[AuditEventOut]
    links: CursorLinks
