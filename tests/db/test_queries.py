"""Typed queries (db/queries.py) on the real database of the backend under test: the
same values as the ORM, by field name, every commit seen at once, the same rows inside a
write transaction, and no connection left open by a thread that has ended."""

import gc
import threading
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

import pytest
from sqlalchemy import bindparam, select

from registry_tokens.db import Database
from registry_tokens.db.queries import Query
from registry_tokens.organizations.models import Organization


class OrganizationRow(NamedTuple):
    id: uuid.UUID
    slug: str
    created_at: datetime


class SlugRow(NamedTuple):
    slug: str


BY_SLUG = Query(
    select(
        Organization.id.label("id"),
        Organization.slug.label("slug"),
        Organization.created_at.label("created_at"),
    ).where(Organization.slug == bindparam("slug")),
    OrganizationRow,
)


def _add_organization(database: Database, slug: str) -> Organization:
    with database.writing() as session:
        organization = Organization(slug=slug, name=slug)
        session.add(organization)
    return organization


def test_rows_come_back_as_the_orm_gives_them(database: Database) -> None:
    query = BY_SLUG
    organization = _add_organization(database, "acme")
    [found] = database.fetch(query, slug="acme")
    found_id, slug, created_at = found.id, found.slug, found.created_at
    assert isinstance(found_id, uuid.UUID)
    assert found_id == organization.id
    assert slug == "acme"
    assert created_at == organization.created_at
    assert created_at.tzinfo is UTC
    assert database.fetch(query, slug="nobody") == []


def test_a_commit_through_another_connection_is_seen_by_the_next_read(database: Database) -> None:
    query = BY_SLUG
    assert database.fetch(query, slug="later") == []  # this thread's connection is now open
    _add_organization(database, "later")
    assert [row.slug for row in database.fetch(query, slug="later")] == ["later"]
    with database.writing() as session:
        found = session.scalar(select(Organization).where(Organization.slug == "later"))
        assert found is not None
        session.delete(found)
    assert database.fetch(query, slug="later") == []


def test_a_finished_threads_connection_is_closed(database: Database) -> None:
    query = BY_SLUG
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
    query = BY_SLUG
    database.fetch(query, slug="x")
    assert len(database._readers._open) == 1
    database.dispose()
    assert database._readers._open == {}
    assert database.fetch(query, slug="x") == []  # reopens


def test_now_is_bound_as_the_models_store_it(database: Database) -> None:
    organization = _add_organization(database, "clock")
    newer = Query(
        select(Organization.slug.label("slug")).where(
            Organization.created_at < bindparam("moment", type_=Organization.created_at.type)
        ),
        SlugRow,
    )
    assert database.fetch(newer, moment=organization.created_at) == []
    later = datetime(9999, 1, 1, tzinfo=UTC)
    assert [row.slug for row in database.fetch(newer, moment=later)] == ["clock"]


def test_a_query_names_its_fields_or_is_refused() -> None:
    with pytest.raises(TypeError, match="not its fields"):
        Query(select(Organization.slug.label("name")), SlugRow)


def test_inside_a_write_the_query_sees_the_transaction(database: Database) -> None:
    with database.writing() as session:
        session.add(Organization(slug="inside", name="inside"))
        session.flush()
        [row] = database.fetch_in(session, BY_SLUG, slug="inside")
        assert row.slug == "inside"
        assert database.fetch(BY_SLUG, slug="inside") == []  # not committed yet
    assert [row.slug for row in database.fetch(BY_SLUG, slug="inside")] == ["inside"]
