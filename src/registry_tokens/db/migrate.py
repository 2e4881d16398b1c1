"""Running Alembic from code: `registry-tokens db upgrade`, `serve` and the tests use it."""

import functools
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, column, select, table, text

from registry_tokens.db.engine import Database
from registry_tokens.db.queries import Query

FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s"
_LOCK_KEY = 0x5265_6754_6F6B  # "RegTok": the advisory lock that serializes migrations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "registry_tokens:migrations")
    config.set_main_option("file_template", FILE_TEMPLATE)
    return config


def upgrade(database: Database) -> None:
    """Bring the schema to the newest revision; safe to run on every start."""
    config = alembic_config()
    with database.engine.connect() as connection:
        if database.settings.is_sqlite:
            _upgrade_sqlite(config, connection)
        else:
            with connection.begin():
                # Instances starting together on one PostgreSQL migrate one at a time; the
                # lock is released when this transaction ends.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")


def _upgrade_sqlite(config: Config, connection: Connection) -> None:
    # SQLite's batch migrations copy and drop tables; with foreign keys on, dropping a
    # parent table would cascade-delete its children. The pragma only changes outside a
    # transaction, so it is set on the raw connection before SQLAlchemy begins one.
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            violations = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if violations:
                raise RuntimeError(f"migration left foreign key violations: {violations[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


class SchemaRevision(NamedTuple):
    version_num: str


# The revision the database is at (Alembic's own table): what readiness asks.
SCHEMA_REVISIONS = Query(
    select(column("version_num")).select_from(table("alembic_version")), SchemaRevision
)


@functools.cache
def head_revisions() -> frozenset[str]:
    """The revisions this code's migrations end at (read from the scripts once)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def schema_revisions(database: Database) -> frozenset[str]:
    """The revisions the database is at: one indexed read, which also shows it answers."""
    return frozenset(row.version_num for row in database.fetch(SCHEMA_REVISIONS))
