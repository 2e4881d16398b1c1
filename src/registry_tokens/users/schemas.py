import uuid

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
        return cls(
            id=user.id,
            graphql_id=graphql_id("User", user.id),
            name=user.name,
            email=user.email,
            avatar_url=user.avatar_url,
            created_at=user.created_at,
        )
