"""index live registry tokens

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 03:24:27.268669
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_tokens_registry_id_created_at_id"))
        batch_op.create_index(
            "ix_registry_tokens_live",
            ["registry_id", "revoked_at", "created_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_tokens_live")
        batch_op.create_index(
            batch_op.f("ix_registry_tokens_registry_id_created_at_id"),
            ["registry_id", "created_at", "id"],
            unique=False,
        )
