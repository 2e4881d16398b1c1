"""registry tokens version, and a partial index of live tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 05:25:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("registries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tokens_version", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_tokens_live")
        batch_op.create_index(
            "ix_registry_tokens_live",
            ["registry_id", "created_at", "id"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_tokens_live")
        batch_op.create_index(
            "ix_registry_tokens_live",
            ["registry_id", "revoked_at", "created_at", "id"],
            unique=False,
        )
    with op.batch_alter_table("registries", schema=None) as batch_op:
        batch_op.drop_column("tokens_version")
