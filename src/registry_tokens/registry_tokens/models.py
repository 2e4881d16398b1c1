import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry_tokens.db import Base, IdMixin
from registry_tokens.registries.models import Registry
from registry_tokens.users.models import User


class RegistryToken(IdMixin, Base):
    __tablename__ = "registry_tokens"
    __table_args__ = (
        # Serves the list endpoint: one registry's tokens, newest first.
        Index("ix_registry_tokens_registry_id_created_at_id", "registry_id", "created_at", "id"),
    )

    registry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("registries.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column()

    package_registry: Mapped[Registry] = relationship(lazy="joined", innerjoin=True)
    created_by: Mapped[User] = relationship(lazy="joined", innerjoin=True)
