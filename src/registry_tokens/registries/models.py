import uuid

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry_tokens.db import Base, IdMixin
from registry_tokens.organizations.models import Organization


class Registry(IdMixin, Base):
    __tablename__ = "registries"
    __table_args__ = (UniqueConstraint("organization_id", "slug"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(255))
    ecosystem: Mapped[str] = mapped_column(String(50))
    description: Mapped[str | None] = mapped_column(Text)
    emoji: Mapped[str | None] = mapped_column(String(100))
    color: Mapped[str | None] = mapped_column(String(50))
    oidc_policy: Mapped[str | None] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped by every change to which tokens are live (create, delete, revoke): what the
    # list's cached counts and page positions are keyed by (RegistryTokenService.list).
    tokens_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    organization: Mapped[Organization] = relationship(lazy="joined", innerjoin=True)
