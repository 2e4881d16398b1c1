"""Classic REST pagination: ``page`` / ``per_page`` and an RFC 8288 ``Link`` header."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
# Bounds the SQL OFFSET so no request can overflow a 64-bit integer in the database.
MAX_PAGE = 1_000_000

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def of(cls, page: int, per_page: int) -> "PageRequest":
        """Buildkite's reading: ``per_page`` above the maximum means the maximum."""
        return cls(page=page, per_page=min(per_page, MAX_PER_PAGE))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    request: PageRequest
    total: int

    @property
    def last_page(self) -> int:
        return max(1, -(-self.total // self.request.per_page))

    def link_header(self, base_url: str, filters: dict[str, str] | None = None) -> str | None:
        """``next``/``last`` while pages follow, ``first``/``prev`` once past the first."""
        page, per_page = self.request.page, self.request.per_page

        def link(number: int, rel: str) -> str:
            query = urlencode({**(filters or {}), "page": number, "per_page": per_page})
            return f'<{base_url}?{query}>; rel="{rel}"'

        links = []
        if page > 1:
            links.append(link(1, "first"))
            links.append(link(min(page - 1, self.last_page), "prev"))
        if page < self.last_page:
            links.append(link(page + 1, "next"))
            links.append(link(self.last_page, "last"))
        return ", ".join(links) or None
