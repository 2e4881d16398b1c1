import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry_tokens.db import Base, IdMixin
from registry_tokens.registries.models import Registry
from registry_tokens.users.models import User


class RegistryToken(IdMixin, Base):
    """A read-only install credential for one registry.

    Deleting a token revokes it (``revoked_at``) rather than removing its row, so a later
    attempt to use it is recognised and recorded as "revoked", not as noise.
    """

    __tablename__ = "registry_tokens"
    __table_args__ = (
        # Serves the list endpoint (one registry's live tokens, newest first) and its count,
        # without visiting the rows themselves. Partial (live tokens only) rather than led
        # by revoked_at: PostgreSQL does not read "revoked_at IS NULL" as fixing that
        # column, so with it in the index it sorted every live token to find a page.
        Index(
            "ix_registry_tokens_live",
            "registry_id",
            "created_at",
            "id",
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
    )

    registry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("registries.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    # CIDRs clients may install from; None: from anywhere.
    allowed_cidrs: Mapped[list[str] | None] = mapped_column(JSON)
    last_used_at: Mapped[datetime | None] = mapped_column()
    last_used_ip: Mapped[str | None] = mapped_column(String(45))
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(20))  # "deleted" or "leaked"

    package_registry: Mapped[Registry] = relationship(lazy="joined", innerjoin=True)
    created_by: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class RetiredSecret(Base):
    """A secret a rotation replaced: valid until ``valid_until`` (the grace period), then
    kept so that its later use is recognised and recorded."""

    __tablename__ = "registry_token_retired_secrets"

    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    registry_token_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registry_tokens.id", ondelete="CASCADE"), index=True
    )
    retired_at: Mapped[datetime] = mapped_column()
    valid_until: Mapped[datetime] = mapped_column()
