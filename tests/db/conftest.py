"""Fixtures of the database tests: the ``Database`` itself on a fresh, migrated database
of the backend under test."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_tokens.db import Database, migrate
from registry_tokens.settings import Settings
from tests.harness import scratch_database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with scratch_database(tmp_path) as url:
        database = Database(Settings(database_url=url, secret_key="k"))
        migrate.upgrade(database)
        yield database
        database.dispose()
