"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 02:03:22.937224
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("slug", name=op.f("uq_organizations_slug")),
    )
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("avatar_url", sa.String(length=2048), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "api_access_tokens",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_access_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_access_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_access_tokens_secret_hash")),
    )
    with op.batch_alter_table("api_access_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_access_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "organization_memberships",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_memberships_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_organization_memberships_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_memberships")),
        sa.UniqueConstraint(
            "organization_id",
            "user_id",
            name=op.f("uq_organization_memberships_organization_id_user_id"),
        ),
    )
    with op.batch_alter_table("organization_memberships", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organization_memberships_organization_id"),
            ["organization_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_organization_memberships_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "registries",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("ecosystem", sa.String(length=50), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("emoji", sa.String(length=100), nullable=True),
        sa.Column("color", sa.String(length=50), nullable=True),
        sa.Column("oidc_policy", sa.Text(), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_registries_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registries")),
        sa.UniqueConstraint(
            "organization_id", "slug", name=op.f("uq_registries_organization_id_slug")
        ),
    )
    with op.batch_alter_table("registries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registries_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "api_access_token_organizations",
        sa.Column("api_access_token_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_access_token_id"],
            ["api_access_tokens.id"],
            name=op.f("fk_api_access_token_organizations_api_access_token_id_api_access_tokens"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_api_access_token_organizations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "api_access_token_id", "organization_id", name=op.f("pk_api_access_token_organizations")
        ),
    )
    with op.batch_alter_table("api_access_token_organizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_access_token_organizations_organization_id"),
            ["organization_id"],
            unique=False,
        )

    op.create_table(
        "registry_tokens",
        sa.Column("registry_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_registry_tokens_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_registry_tokens_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_registry_tokens_secret_hash")),
    )
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_tokens_created_by_id"), ["created_by_id"], unique=False
        )
        batch_op.create_index(
            "ix_registry_tokens_registry_id_created_at_id",
            ["registry_id", "created_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_tokens_registry_id_created_at_id")
        batch_op.drop_index(batch_op.f("ix_registry_tokens_created_by_id"))

    op.drop_table("registry_tokens")
    with op.batch_alter_table("api_access_token_organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_access_token_organizations_organization_id"))

    op.drop_table("api_access_token_organizations")
    with op.batch_alter_table("registries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registries_organization_id"))

    op.drop_table("registries")
    with op.batch_alter_table("organization_memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organization_memberships_user_id"))
        batch_op.drop_index(batch_op.f("ix_organization_memberships_organization_id"))

    op.drop_table("organization_memberships")
    with op.batch_alter_table("api_access_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_access_tokens_user_id"))

    op.drop_table("api_access_tokens")
    op.drop_table("users")
    op.drop_table("organizations")
