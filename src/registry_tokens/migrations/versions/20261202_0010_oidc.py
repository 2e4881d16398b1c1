"""OIDC: first uses of OIDC tokens; packages and staged uploads without a user

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oidc_token_uses",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_token_uses")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_oidc_token_uses_token_hash")),
    )
    with op.batch_alter_table("oidc_token_uses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oidc_token_uses_expires_at"), ["expires_at"], unique=False
        )
    # A package published (or a file staged) with an OIDC token has no user.
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.alter_column("uploaded_by_id", existing_type=sa.Uuid(), nullable=True)
    with op.batch_alter_table("staged_uploads", schema=None) as batch_op:
        batch_op.alter_column("uploaded_by_id", existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM staged_uploads WHERE uploaded_by_id IS NULL")
    op.execute("DELETE FROM packages WHERE uploaded_by_id IS NULL")
    with op.batch_alter_table("staged_uploads", schema=None) as batch_op:
        batch_op.alter_column("uploaded_by_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.alter_column("uploaded_by_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("oidc_token_uses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oidc_token_uses_expires_at"))
    op.drop_table("oidc_token_uses")
