from typing import Annotated

from fastapi import APIRouter, Depends

from registry_tokens.auth.caller import Caller
from registry_tokens.kit.http import current_caller, error_responses, services
from registry_tokens.organizations.schemas import OrganizationOut
from registry_tokens.services import Services

router = APIRouter(prefix="/v2/organizations", tags=["Organizations"])


@router.get(
    "/{org}",
    operation_id="getOrganization",
    summary="Get an organization",
    description="Any API access token of a member may read the organization, unless the "
    "token is limited to other organizations.",
    response_model=OrganizationOut,
    responses=error_responses(401, 404, 422, 503),
)
def get_organization(
    org: str,
    caller: Annotated[Caller, Depends(current_caller)],
    app: Annotated[Services, Depends(services)],
) -> OrganizationOut:
    return OrganizationOut.of(app.organizations.get(caller, org), app.urls)
