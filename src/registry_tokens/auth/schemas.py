import uuid

from pydantic import BaseModel

from registry_tokens.auth.models import ApiAccessToken
from registry_tokens.kit.schemas import ResponseModel, Timestamp


class AccessTokenUser(BaseModel):
    name: str
    email: str


class AccessTokenOut(ResponseModel):
    """``GET /v2/access-token``, the shape Buildkite's clients read."""

    uuid: uuid.UUID
    scopes: list[str]
    description: str | None
    created_at: Timestamp
    user: AccessTokenUser

    @classmethod
    def of(cls, token: ApiAccessToken) -> "AccessTokenOut":
        return cls(
            uuid=token.id,
            scopes=list(token.scopes),
            description=token.description,
            created_at=token.created_at,
            user=AccessTokenUser(name=token.user.name, email=token.user.email),
        )
