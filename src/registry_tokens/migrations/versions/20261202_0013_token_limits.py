"""registry token limits (packages, not before, quotas, disable) and usage

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_packages", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("not_before", WHEN, nullable=True))
        batch_op.add_column(sa.Column("max_downloads", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_clients", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("quota_period", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("disabled_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("usage_since", WHEN, nullable=True))
        batch_op.add_column(sa.Column("usage_period_start", WHEN, nullable=True))
        batch_op.add_column(
            sa.Column("usage_downloads", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("usage_bytes", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("usage_clients", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "registry_token_clients",
        sa.Column("registry_token_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", WHEN, nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_token_id"],
            ["registry_tokens.id"],
            name=op.f("fk_registry_token_clients_registry_token_id_registry_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "registry_token_id",
            "period_start",
            "address",
            name=op.f("pk_registry_token_clients"),
        ),
    )
    op.create_table(
        "registry_token_usage_hours",
        sa.Column("registry_token_id", sa.Uuid(), nullable=False),
        sa.Column("hour", WHEN, nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("day", WHEN, nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_token_id"],
            ["registry_tokens.id"],
            name=op.f("fk_registry_token_usage_hours_registry_token_id_registry_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "registry_token_id", "hour", "address", name=op.f("pk_registry_token_usage_hours")
        ),
    )


def downgrade() -> None:
    op.drop_table("registry_token_usage_hours")
    op.drop_table("registry_token_clients")
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        for column in (
            "usage_clients",
            "usage_bytes",
            "usage_downloads",
            "usage_period_start",
            "usage_since",
            "disabled_at",
            "quota_period",
            "max_bytes",
            "max_clients",
            "max_downloads",
            "not_before",
            "allowed_packages",
        ):
            batch_op.drop_column(column)
