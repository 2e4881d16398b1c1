from typing import Annotated

from fastapi import APIRouter, Depends

from registry_tokens.auth.caller import Caller
from registry_tokens.kit.http import current_caller, error_responses, services
from registry_tokens.registries.schemas import RegistryOut
from registry_tokens.services import Services

router = APIRouter(prefix="/v2/packages/organizations/{org}/registries", tags=["Registries"])


@router.get(
    "/{registry}",
    operation_id="getRegistry",
    summary="Get a registry",
    description="Required scope: `read_registries`.",
    response_model=RegistryOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def get_registry(
    org: str,
    registry: str,
    caller: Annotated[Caller, Depends(current_caller)],
    app: Annotated[Services, Depends(services)],
) -> RegistryOut:
    return RegistryOut.of(app.registries.get(caller, org, registry), app.urls)
