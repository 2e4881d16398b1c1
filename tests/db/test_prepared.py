"""Prepared reads (db/prepared.py) on the real database of the backend under test: the
same rows and values as the ORM, every commit seen at once, and no connection left open
by a thread that has ended."""

import gc
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select

from registry_tokens.db import Database, migrate
from registry_tokens.organizations.models import Organization
from registry_tokens.settings import Settings
from tests.harness import scratch_database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with scratch_database(tmp_path) as url:
        database = Database(Settings(database_url=url, secret_key="k"))
        migrate.upgrade(database)
        yield database
        database.dispose()


BY_SLUG = select(Organization.id, Organization.slug, Organization.created_at).where(
    Organization.slug == bindparam("slug")
)


def _add_organization(database: Database, slug: str) -> Organization:
    with database.write() as session:
        organization = Organization(slug=slug, name=slug)
        session.add(organization)
    return organization


def test_rows_come_back_as_the_orm_gives_them(database: Database) -> None:
    query = database.prepare(BY_SLUG)
    organization = _add_organization(database, "acme")
    [(found_id, slug, created_at)] = database.fetch(query, slug="acme")
    assert isinstance(found_id, uuid.UUID)
    assert found_id == organization.id
    assert slug == "acme"
    assert created_at == organization.created_at
    assert created_at.tzinfo is UTC
    assert database.fetch(query, slug="nobody") == []


def test_a_commit_through_another_connection_is_seen_by_the_next_read(database: Database) -> None:
    query = database.prepare(BY_SLUG)
    assert database.fetch(query, slug="later") == []  # this thread's connection is now open
    _add_organization(database, "later")
    assert [row[1] for row in database.fetch(query, slug="later")] == ["later"]
    with database.write() as session:
        found = session.scalar(select(Organization).where(Organization.slug == "later"))
        assert found is not None
        session.delete(found)
    assert database.fetch(query, slug="later") == []


def test_a_finished_threads_connection_is_closed(database: Database) -> None:
    query = database.prepare(BY_SLUG)
    _add_organization(database, "threads")
    opened: list[object] = []

    def read_once() -> None:
        assert len(database.fetch(query, slug="threads")) == 1
        opened.append(database._readers._local.connection)

    workers = [threading.Thread(target=read_once) for _ in range(5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(opened) == 5
    del workers, worker  # the threads are gone once nothing refers to them
    gc.collect()
    assert database._readers._open == {}  # every worker's connection, closed and forgotten
    for connection in opened:
        with pytest.raises(Exception, match="closed"):
            connection.cursor().execute("SELECT 1")  # type: ignore[attr-defined]
    # The main thread's reads still work, on a connection of its own.
    assert len(database.fetch(query, slug="threads")) == 1


def test_dispose_closes_every_connection(database: Database) -> None:
    query = database.prepare(BY_SLUG)
    database.fetch(query, slug="x")
    assert len(database._readers._open) == 1
    database.dispose()
    assert database._readers._open == {}
    assert database.fetch(query, slug="x") == []  # reopens


def test_now_is_bound_as_the_models_store_it(database: Database) -> None:
    organization = _add_organization(database, "clock")
    newer = database.prepare(
        select(Organization.slug).where(
            Organization.created_at < bindparam("moment", type_=Organization.created_at.type)
        )
    )
    assert database.fetch(newer, moment=organization.created_at) == []
    later = datetime(9999, 1, 1, tzinfo=UTC)
    assert [row[0] for row in database.fetch(newer, moment=later)] == ["clock"]
