"""Who is calling and from where: the types every domain and every door share.

They live in ``kit`` so that any domain can take a :class:`Caller` or a
:class:`RequestContext` without importing the domain that made it.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import HTTPConnection

from registry_tokens.kit.errors import MissingScope, Unauthenticated
from registry_tokens.kit.network import Network, client_address


class Scope(StrEnum):
    """API access token scopes, spelled as Buildkite spells them."""

    READ_REGISTRIES = "read_registries"
    WRITE_REGISTRIES = "write_registries"
    DELETE_REGISTRIES = "delete_registries"
    READ_PACKAGES = "read_packages"
    WRITE_PACKAGES = "write_packages"
    DELETE_PACKAGES = "delete_packages"
    READ_USER = "read_user"


@dataclass(frozen=True)
class Caller:
    """Who is calling: an API access token and the user it acts for, or an OIDC token
    (``user_id`` ``None``), which acts for no user and in one registry only."""

    token_id: uuid.UUID
    user_id: uuid.UUID | None
    scopes: frozenset[str]
    # None: every organization the user belongs to; else only these.
    organization_ids: frozenset[uuid.UUID] | None
    # An OIDC token's registry: the only one it may see (None: any its user may).
    registry_id: uuid.UUID | None = None

    @property
    def user(self) -> uuid.UUID:
        """The user acting; an OIDC token has none, and so may do nothing a user must."""
        if self.user_id is None:
            raise Unauthenticated("An OIDC token can only be used for its registry's packages")
        return self.user_id

    def require(self, scope: Scope) -> None:
        if scope.value not in self.scopes:
            raise MissingScope(scope.value)

    def may_act_in(self, organization_id: uuid.UUID) -> bool:
        """Whether the token is not limited away from this organization.

        Membership is the other half of the check; services ask the database for it.
        """
        return self.organization_ids is None or organization_id in self.organization_ids


@dataclass(frozen=True)
class RequestContext:
    """Where a request came from, as the audit log records it."""

    client_ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, request: HTTPConnection, trusted_proxies: Sequence[Network]) -> "RequestContext":
        """The client's address (see :mod:`registry_tokens.kit.network`) and user agent."""
        return cls(
            client_ip=client_address(
                request.client.host if request.client else None,
                ",".join(request.headers.getlist("x-forwarded-for")) or None,
                trusted_proxies,
            ),
            user_agent=request.headers.get("user-agent"),
        )
