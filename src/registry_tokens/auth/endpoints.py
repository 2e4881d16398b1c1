from fastapi import APIRouter, Response

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import RestDep
from registry_tokens.auth.schemas import AccessTokenOut
from registry_tokens.auth.service import AuthService
from registry_tokens.ratelimits.schemas import RateLimitOut

router = APIRouter(prefix="/v2/access-token", tags=["Access token"])
rate_limit_router = APIRouter(prefix="/v2/organizations", tags=["Organizations"])


@router.get(
    "",
    operation_id="getAccessToken",
    summary="Get the current API access token",
    description="Any valid token may read itself: its uuid, scopes and user.",
    response_model=AccessTokenOut,
    responses=error_responses(401, 503),
)
async def get_access_token(
    rest: RestDep,
) -> AccessTokenOut:
    return AccessTokenOut.of(
        await rest.database.read(rest.service(AuthService).current_token, rest.caller)
    )


@router.delete(
    "",
    operation_id="revokeAccessToken",
    summary="Revoke the current API access token",
    description="The token stops working at once. Answers 204 with no body, as Buildkite does.",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 503),
)
async def revoke_access_token(
    rest: RestDep,
) -> Response:
    await rest.database.write(rest.service(AuthService).revoke_current, rest.caller)
    return Response(status_code=204)


@rate_limit_router.get(
    "/{org}/rate_limit",
    operation_id="getOrganizationRateLimit",
    summary="Get an organization's rate limit",
    description="The organization's REST API window: `limit`, `current` (requests counted, "
    "this one included), `reset` (seconds), `reset_at`, `enforced`. Any API access token "
    "of a member, unless the token is limited to other organizations. Without Redis and "
    "with several processes, `current` is an upper bound (see README, Rate limits).",
    response_model=RateLimitOut,
    responses=error_responses(401, 404, 429, 503),
)
async def get_organization_rate_limit(
    org: str,
    rest: RestDep,
) -> RateLimitOut:
    return RateLimitOut.of(
        await rest.service(AuthService).organization_rate_limit(rest.caller, org)
    )
