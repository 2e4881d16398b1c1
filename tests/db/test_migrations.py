"""Alembic migrations: they build exactly the models' schema, and go down and up again."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from registry_tokens.db import Database, migrate
from registry_tokens.models import Base
from registry_tokens.settings import Settings
from tests.harness import BACKEND, scratch_database


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[Database]:
    with scratch_database(tmp_path) as url:
        database = Database(Settings(database_url=url, secret_key="k"))
        yield database
        database.dispose()


def test_migrations_build_the_schema_the_models_describe(fresh_database: Database) -> None:
    database = fresh_database
    migrate.upgrade(database)
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_is_idempotent_and_downgrade_reverses_it(fresh_database: Database) -> None:
    database = fresh_database
    migrate.upgrade(database)
    migrate.upgrade(database)
    tables = set(inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    config = migrate.alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(database.engine).get_table_names()) == {"alembic_version"}
    migrate.upgrade(database)
    assert set(Base.metadata.tables) <= set(inspect(database.engine).get_table_names())


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's own settings")
def test_sqlite_runs_in_wal_mode_with_foreign_keys(fresh_database: Database) -> None:
    database = fresh_database
    migrate.upgrade(database)
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
