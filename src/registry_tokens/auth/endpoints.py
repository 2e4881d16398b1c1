from fastapi import APIRouter, Response

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import RestDep
from registry_tokens.auth.schemas import AccessTokenOut
from registry_tokens.auth.service import AuthService

router = APIRouter(prefix="/v2/access-token", tags=["Access token"])


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
