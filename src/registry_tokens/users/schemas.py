import uuid
from datetime import datetime

from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.schemas import ResponseModel, Timestamp
from registry_tokens.users.models import User


class UserOut(ResponseModel):
    id: uuid.UUID
    graphql_id: str
    name: str
    email: str
    avatar_url: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, user: User) -> "UserOut":
        return cls.of_fields(user.id, user.name, user.email, user.avatar_url, user.created_at)

    @classmethod
    def of_fields(
        cls,
        user_id: uuid.UUID,
        name: str,
        email: str,
        avatar_url: str | None,
        created_at: datetime,
    ) -> "UserOut":
        return cls(
            id=user_id,
            graphql_id=graphql_id("User", user_id),
            name=name,
            email=email,
            avatar_url=avatar_url,
            created_at=created_at,
        )
