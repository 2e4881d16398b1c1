from fastapi import APIRouter

from registry_tokens.kit.http import error_responses
from registry_tokens.kit.routes import CallerDep, ServicesDep
from registry_tokens.organizations.schemas import OrganizationOut

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
    caller: CallerDep,
    app: ServicesDep,
) -> OrganizationOut:
    return OrganizationOut.of(app.organizations.get(caller, org), app.urls)
