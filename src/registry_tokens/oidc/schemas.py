"""What verification and policies decide, as the rest of the house sees it."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from registry_tokens.kit.context import RequestContext
from registry_tokens.kit.ids import new_id


class OidcRefusal(StrEnum):
    """Why an OIDC token was refused (the audit event's ``data.reason``)."""

    MALFORMED = "malformed"
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    ISSUER_UNAVAILABLE = "issuer_unavailable"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_REGISTRY = "wrong_registry"
    UNKNOWN_REGISTRY = "unknown_registry"
    NO_POLICY = "no_policy"
    NO_MATCHING_STATEMENT = "no_matching_statement"
    SCOPE_NOT_GRANTED = "scope_not_granted"


# What the client is told: enough to fix a pipeline, never whether a registry it may not
# use exists (the last four reasons share one answer).
MESSAGES = {
    OidcRefusal.MALFORMED: "the token is not a valid JWT",
    OidcRefusal.ALGORITHM_NOT_ALLOWED: "the token's algorithm is not an asymmetric one its "
    "issuer's key can verify",
    OidcRefusal.UNTRUSTED_ISSUER: "the token's issuer (iss) is not a trusted issuer",
    OidcRefusal.ISSUER_UNAVAILABLE: "the issuer's keys cannot be fetched right now",
    OidcRefusal.UNKNOWN_KEY: "the token's key (kid) is not one of its issuer's keys",
    OidcRefusal.BAD_SIGNATURE: "the token's signature is not valid",
    OidcRefusal.MISSING_CLAIM: "the token lacks a required claim (iss, aud, exp, iat)",
    OidcRefusal.EXPIRED: "the token has expired",
    OidcRefusal.NOT_YET_VALID: "the token is not valid yet (nbf or iat in the future)",
    OidcRefusal.LIFETIME_TOO_LONG: "the token's lifetime (exp - iat) is over 5 minutes; "
    "request it with --lifetime 300 or less",
    OidcRefusal.WRONG_AUDIENCE: "the token's audience (aud) is not this registry",
    OidcRefusal.WRONG_REGISTRY: "the token's audience (aud) is another registry",
    OidcRefusal.UNKNOWN_REGISTRY: "no statement of this registry's OIDC policy allows it",
    OidcRefusal.NO_POLICY: "no statement of this registry's OIDC policy allows it",
    OidcRefusal.NO_MATCHING_STATEMENT: "no statement of this registry's OIDC policy allows it",
    OidcRefusal.SCOPE_NOT_GRANTED: "the matching statement of this registry's OIDC policy "
    "does not grant the scope this needs",
}


class OidcRefused(Exception):
    """A token refused, with what identifies the job that presented it (its claims as
    sent; ``verified`` says whether they were signed by a trusted issuer's key)."""

    def __init__(
        self, reason: OidcRefusal, identity: dict[str, Any] | None = None, verified: bool = False
    ) -> None:
        super().__init__(f"OIDC token refused: {MESSAGES[reason]}")
        self.reason = reason
        self.identity = identity or {}
        self.verified = verified

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature, issuer and times hold; what it may do is the policy's."""

    claims: dict[str, Any]
    token_hash: str  # keyed hash of the token: its identity in the database
    identity: dict[str, Any]
    expires_at: datetime


@dataclass(frozen=True)
class OidcRefusedUse:
    """A refusal waiting to be recorded (``registry_tokens.refusals``)."""

    reason: OidcRefusal
    organization_id: uuid.UUID | None  # None: no registry at the path; not recorded
    registry_id: uuid.UUID | None
    requested_registry: str
    action: str
    identity: dict[str, Any]
    verified: bool
    context: RequestContext
    event_id: uuid.UUID = field(default_factory=new_id)
