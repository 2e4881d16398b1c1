import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from registry_tokens.db import Base, IdMixin


class AuditEvent(IdMixin, Base):
    """One recorded event. Registry and token are plain ids, not foreign keys, so the
    record outlives them; it never holds a secret."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_organization_id_id", "organization_id", "id"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(64))
    registry_id: Mapped[uuid.UUID | None] = mapped_column()
    registry_slug: Mapped[str | None] = mapped_column(String(100))
    registry_token_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    subject_name: Mapped[str | None] = mapped_column(String(255))
    actor_type: Mapped[str] = mapped_column(String(32))  # user, registry_token, secret_scanner
    actor_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_name: Mapped[str | None] = mapped_column(String(255))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
