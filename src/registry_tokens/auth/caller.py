"""The authenticated subject of a request and the checks every service makes of it."""

import uuid
from dataclasses import dataclass

from registry_tokens.auth.scopes import Scope
from registry_tokens.kit.errors import MissingScope


@dataclass(frozen=True)
class Caller:
    """Who is calling: an API access token and the user it acts for."""

    token_id: uuid.UUID
    user_id: uuid.UUID
    scopes: frozenset[str]
    # None: every organization the user belongs to; else only these.
    organization_ids: frozenset[uuid.UUID] | None

    def require(self, scope: Scope) -> None:
        if scope.value not in self.scopes:
            raise MissingScope(scope.value)

    def may_act_in(self, organization_id: uuid.UUID) -> bool:
        """Whether the token is not limited away from this organization.

        Membership is the other half of the check; services ask the database for it.
        """
        return self.organization_ids is None or organization_id in self.organization_ids
