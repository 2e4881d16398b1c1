import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry_tokens.db import Base, IdMixin
from registry_tokens.registries.models import Registry
from registry_tokens.users.models import User


class Package(IdMixin, Base):
    """One published file (a wheel, an sdist or an npm tarball) of one project version."""

    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("registry_id", "filename"),)

    registry_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registries.id", ondelete="CASCADE"), index=True
    )
    # The PEP 503 normalized project name, what the simple index is keyed by (for npm, the
    # package's name as its package.json spells it: npm names are already lowercase).
    project: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))  # as the metadata spells it
    version: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))  # "wheel", "sdist" or "npm"
    requires_python: Mapped[str | None] = mapped_column(String(255))
    summary: Mapped[str | None] = mapped_column(String(512))  # the metadata's Summary
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    sha512: Mapped[str] = mapped_column(String(128))
    # npm's ``dist.shasum`` (older npm clients check it); set for npm tarballs only.
    sha1: Mapped[str | None] = mapped_column(String(40))
    # An npm tarball's own package/package.json (JSON text): what its packument's version
    # entry says about dependencies, bins, engines … Never the publish document's copy.
    manifest: Mapped[str | None] = mapped_column(Text)
    # None: published with an OIDC token, which acts for no user (the audit log's
    # OIDC_TOKEN_USED event names the job).
    uploaded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)

    package_registry: Mapped[Registry] = relationship(lazy="joined", innerjoin=True)
    uploaded_by: Mapped[User | None] = relationship(lazy="raise")


class StagedUpload(IdMixin, Base):
    """A file received through a presigned upload (``…/packages/upload``), on disk in the
    store's ``tmp/`` and not yet published: finalizing consumes it, expiry discards it."""

    __tablename__ = "staged_uploads"

    registry_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registries.id", ondelete="CASCADE"), index=True
    )
    # The caller the policy was signed for: only the same token may finalize it (no user:
    # an OIDC token's, whose token_id is derived from the token).
    uploaded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_id: Mapped[uuid.UUID] = mapped_column()
    filename: Mapped[str] = mapped_column(String(255))
    staged_name: Mapped[str] = mapped_column(String(64))  # its file's name in tmp/
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    sha512: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PackageDistTag(IdMixin, Base):
    """An npm dist-tag (``latest``, ``next`` …): a name for one version of a package. It
    goes with the version it names when that version is deleted."""

    __tablename__ = "package_dist_tags"
    __table_args__ = (UniqueConstraint("registry_id", "project", "tag"),)

    registry_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registries.id", ondelete="CASCADE"), index=True
    )
    project: Mapped[str] = mapped_column(String(255))
    tag: Mapped[str] = mapped_column(String(255))
    package_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), index=True
    )
