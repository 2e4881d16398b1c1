from registry_tokens.kit.schemas import ResponseModel, Timestamp
from registry_tokens.ratelimits.service import RateLimitStatus


class RateLimitDetails(ResponseModel):
    """One scope's window, in the order of Buildkite's docs."""

    limit: int
    current: int
    reset: int
    reset_at: Timestamp
    enforced: bool


class RateLimitScopes(ResponseModel):
    # No ``graphql``: this server has no GraphQL API, so there are no points to count.
    rest: RateLimitDetails


class RateLimitOut(ResponseModel):
    """``GET /v2/organizations/{org}/rate_limit``, the shape go-buildkite's ``RateLimit``
    decodes."""

    scopes: RateLimitScopes

    @classmethod
    def of(cls, status: RateLimitStatus) -> "RateLimitOut":
        return cls(
            scopes=RateLimitScopes(
                rest=RateLimitDetails(
                    limit=status.limit,
                    current=status.current,
                    reset=status.reset,
                    reset_at=status.reset_at,
                    enforced=status.enforced,
                )
            )
        )
