"""token lifecycle and audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 02:26:30.888315
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("registry_id", sa.Uuid(), nullable=True),
        sa.Column("registry_slug", sa.String(length=100), nullable=True),
        sa.Column("registry_token_id", sa.Uuid(), nullable=True),
        sa.Column("subject_name", sa.String(length=255), nullable=True),
        sa.Column("actor_type", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(length=255), nullable=True),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_audit_events_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_events_organization_id_id", ["organization_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_events_registry_token_id"), ["registry_token_id"], unique=False
        )

    op.create_table(
        "registry_token_retired_secrets",
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("registry_token_id", sa.Uuid(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_token_id"],
            ["registry_tokens.id"],
            name=op.f("fk_registry_token_retired_secrets_registry_token_id_registry_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_hash", name=op.f("pk_registry_token_retired_secrets")),
    )
    with op.batch_alter_table("registry_token_retired_secrets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_token_retired_secrets_registry_token_id"),
            ["registry_token_id"],
            unique=False,
        )

    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("allowed_cidrs", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_ip", sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_reason", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.drop_column("revoked_reason")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("last_used_ip")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("allowed_cidrs")
        batch_op.drop_column("expires_at")

    with op.batch_alter_table("registry_token_retired_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_token_retired_secrets_registry_token_id"))

    op.drop_table("registry_token_retired_secrets")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_registry_token_id"))
        batch_op.drop_index("ix_audit_events_organization_id_id")

    op.drop_table("audit_events")
