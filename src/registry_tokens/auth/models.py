import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry_tokens.db import Base, IdMixin
from registry_tokens.users.models import User


class ApiAccessToken(IdMixin, Base):
    """A user's credential for the REST API: scopes, optionally limited to organizations."""

    __tablename__ = "api_access_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str | None] = mapped_column(String(255))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    # Loaded with the token in one query where it matters (ApiAccessTokenRepository).
    organization_limits: Mapped[list["ApiAccessTokenOrganization"]] = relationship(
        cascade="all, delete-orphan"
    )

    @property
    def limited_to_organization_ids(self) -> frozenset[uuid.UUID] | None:
        """``None`` when the token may act in every organization its user belongs to."""
        if not self.organization_limits:
            return None
        return frozenset(limit.organization_id for limit in self.organization_limits)


class ApiAccessTokenOrganization(Base):
    __tablename__ = "api_access_token_organizations"

    api_access_token_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_access_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
