from typing import Annotated

from fastapi import APIRouter, Depends

from registry_tokens.auth.caller import Caller
from registry_tokens.kit.http import current_caller, error_responses, services
from registry_tokens.services import Services
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
    caller: Annotated[Caller, Depends(current_caller)],
    app: Annotated[Services, Depends(services)],
) -> UserOut:
    return UserOut.of(app.users.current(caller))
