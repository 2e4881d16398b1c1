"""Alembic environment: our metadata, batch mode for SQLite's limited ALTER TABLE."""

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from registry_tokens.db.base import UTCDateTime
from registry_tokens.models import Base

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy ones: migrations must not import models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    from registry_tokens.db.engine import create_database_engine
    from registry_tokens.settings import Settings

    engine = create_database_engine(Settings())
    with engine.connect() as fresh_connection:
        run_migrations(fresh_connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "offline (--sql) migrations are not supported; run `registry-tokens db upgrade`"
    )
run_migrations_online()
