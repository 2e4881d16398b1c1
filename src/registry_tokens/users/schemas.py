import uuid
from datetime import datetime
from typing import Protocol

from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.schemas import ResponseModel, Timestamp


class UserFields(Protocol):
    """What :class:`UserOut` shows: a ``User`` row, or a query's view of one."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def avatar_url(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


class UserOut(ResponseModel):
    id: uuid.UUID
    graphql_id: str
    name: str
    email: str
    avatar_url: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, user: UserFields) -> "UserOut":
        return cls(
            id=user.id,
            graphql_id=graphql_id("User", user.id),
            name=user.name,
            email=user.email,
            avatar_url=user.avatar_url,
            created_at=user.created_at,
        )
