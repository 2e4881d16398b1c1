from fastapi import APIRouter

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import RestDep
from registry_tokens.users.schemas import UserOut
from registry_tokens.users.service import UserService

router = APIRouter(prefix="/v2/user", tags=["User"])


@router.get(
    "",
    operation_id="getCurrentUser",
    summary="Get the current user",
    description="Required scope: `read_user`.",
    response_model=UserOut,
    responses=error_responses(401, 403, 503),
)
async def get_current_user(
    rest: RestDep,
) -> UserOut:
    return UserOut.of(await rest.database.read(rest.service(UserService).current, rest.caller))
