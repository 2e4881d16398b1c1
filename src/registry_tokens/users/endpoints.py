from fastapi import APIRouter

from registry_tokens.kit.http import error_responses
from registry_tokens.kit.routes import CallerDep, ServicesDep
from registry_tokens.users.schemas import UserOut

router = APIRouter(prefix="/v2/user", tags=["User"])


@router.get(
    "",
    operation_id="getCurrentUser",
    summary="Get the current user",
    description="Required scope: `read_user`.",
    response_model=UserOut,
    responses=error_responses(401, 403, 503),
)
def get_current_user(
    caller: CallerDep,
    app: ServicesDep,
) -> UserOut:
    return UserOut.of(app.users.current(caller))
