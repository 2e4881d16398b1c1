from fastapi import APIRouter

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import RestDep
from registry_tokens.organizations.schemas import OrganizationOut
from registry_tokens.organizations.service import OrganizationService

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
async def get_organization(
    org: str,
    rest: RestDep,
) -> OrganizationOut:
    return OrganizationOut.of(
        await rest.database.read(rest.service(OrganizationService).get, rest.caller, org), rest.urls
    )
