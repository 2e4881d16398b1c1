"""npm: dist-tags, and each npm tarball's sha1 and package.json

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sha1", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("manifest", sa.Text(), nullable=True))
    op.create_table(
        "package_dist_tags",
        sa.Column("registry_id", sa.Uuid(), nullable=False),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["packages.id"],
            name=op.f("fk_package_dist_tags_package_id_packages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_package_dist_tags_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_package_dist_tags")),
        sa.UniqueConstraint(
            "registry_id",
            "project",
            "tag",
            name=op.f("uq_package_dist_tags_registry_id_project_tag"),
        ),
    )
    with op.batch_alter_table("package_dist_tags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_package_dist_tags_package_id"), ["package_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_package_dist_tags_registry_id"), ["registry_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("package_dist_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_package_dist_tags_registry_id"))
        batch_op.drop_index(batch_op.f("ix_package_dist_tags_package_id"))
    op.drop_table("package_dist_tags")
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_column("manifest")
        batch_op.drop_column("sha1")
