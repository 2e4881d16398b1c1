"""Cursor pagination (Buildkite's newer endpoints): ``before`` / ``after`` / ``per_page``.

Rows are ordered newest first by their UUIDv7 id, which is their creation order, so a
cursor is simply an id: ``after`` pages towards older rows, ``before`` towards newer ones.
Keyset queries cost the same on the first page and the thousandth.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from registry_tokens.kit.errors import FieldProblem, ValidationFailed

T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    before: uuid.UUID | None
    after: uuid.UUID | None
    per_page: int

    @classmethod
    def parse(cls, before: str | None, after: str | None, per_page: int) -> "Cursor":
        return cls(_cursor_id("before", before), _cursor_id("after", after), per_page)


@dataclass(frozen=True)
class Window(Generic[T]):
    """A page, the cursor that asked for it, and the ids bounding it (its first and last
    item, or the cursor itself when the page is empty); ``None`` where nothing lies beyond.
    """

    items: Sequence[T]
    cursor: Cursor
    newer_than: uuid.UUID | None  # rows newer than this exist: the "prev" cursor
    older_than: uuid.UUID | None  # rows older than this exist: the "next" cursor


def fetch_window(
    session: Session,
    query: Select[T],
    id_column: InstrumentedAttribute[uuid.UUID],
    cursor: Cursor,
) -> Window[T]:
    """One page of ``query`` (already filtered) and whether more lies either side of it."""
    if cursor.before is not None:
        newer_first = session.scalars(
            query.where(id_column > cursor.before).order_by(id_column.asc()).limit(cursor.per_page)
        )
        items: list[T] = list(newer_first)[::-1]
    else:
        bounded = query if cursor.after is None else query.where(id_column < cursor.after)
        items = list(session.scalars(bounded.order_by(id_column.desc()).limit(cursor.per_page)))

    def exists(condition: Any) -> bool:
        return session.scalars(query.where(condition).limit(1)).first() is not None

    newest = _id_of(items[0]) if items else cursor.after
    oldest = _id_of(items[-1]) if items else cursor.before
    return Window(
        items=items,
        cursor=cursor,
        newer_than=newest if newest is not None and exists(id_column > newest) else None,
        older_than=oldest if oldest is not None and exists(id_column < oldest) else None,
    )


def _id_of(item: object) -> uuid.UUID:
    identifier = getattr(item, "id")  # noqa: B009 - every paged row has an id
    assert isinstance(identifier, uuid.UUID)
    return identifier


class CursorLinks(BaseModel):
    self: str
    first: str
    prev: str | None
    next: str | None


def cursor_links(base_url: str, window: Window[Any], filters: dict[str, str | None]) -> CursorLinks:
    """The ``links`` object: ``prev`` / ``next`` are null at either end."""
    kept = {key: value for key, value in filters.items() if value is not None}

    def link(**cursor: str) -> str:
        return f"{base_url}?{urlencode({**kept, 'per_page': window.cursor.per_page, **cursor})}"

    current = window.cursor
    if current.before is not None:
        here = {"before": str(current.before)}
    elif current.after is not None:
        here = {"after": str(current.after)}
    else:
        here = {}
    return CursorLinks(
        self=link(**here),
        first=link(),
        prev=link(before=str(window.newer_than)) if window.newer_than else None,
        next=link(after=str(window.older_than)) if window.older_than else None,
    )


def _cursor_id(name: str, value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed([FieldProblem(name, "invalid", "is not a valid cursor")]) from None
