import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String, text
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

    # Limits (all optional; None: no such limit). Patterns of the package names it may see.
    allowed_packages: Mapped[list[str] | None] = mapped_column(JSON)
    not_before: Mapped[datetime | None] = mapped_column()
    max_downloads: Mapped[int | None] = mapped_column()
    max_clients: Mapped[int | None] = mapped_column()
    max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    quota_period: Mapped[str | None] = mapped_column(String(5))  # "day", "week", "month"
    disabled_at: Mapped[datetime | None] = mapped_column()
    # Counts start again from here (a usage reset); None: from the token's creation.
    usage_since: Mapped[datetime | None] = mapped_column()
    # The counts of the period that began at usage_period_start (None: nothing counted yet):
    # what quotas are checked against, in the same conditional UPDATE that adds a download.
    usage_period_start: Mapped[datetime | None] = mapped_column()
    usage_downloads: Mapped[int] = mapped_column(default=0, server_default="0")
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    usage_clients: Mapped[int] = mapped_column(default=0, server_default="0")

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


class RegistryTokenClient(Base):
    """A client address that downloaded with a token in one of its quota periods: what
    ``max_clients`` counts (a new address is one row more, or a refusal)."""

    __tablename__ = "registry_token_clients"

    registry_token_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registry_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(45), primary_key=True)


class RegistryTokenUsageHour(Base):
    """Downloads with a token in one UTC hour from one client address: the usage series
    (per hour or per day, distinct clients counted across rows). Kept through resets."""

    __tablename__ = "registry_token_usage_hours"

    registry_token_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registry_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(45), primary_key=True)
    day: Mapped[datetime] = mapped_column()  # the hour's UTC midnight: groups a day's rows
    downloads: Mapped[int] = mapped_column()
    bytes: Mapped[int] = mapped_column(BigInteger)
