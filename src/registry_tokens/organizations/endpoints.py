"""Organizations and who belongs to them."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import PAGED_LIST_RESPONSES, PerPage, RestDep, set_page_links
from registry_tokens.kit.pagination import DEFAULT_PER_PAGE, MAX_PAGE, PageRequest
from registry_tokens.organizations.schemas import OrganizationOut
from registry_tokens.organizations.service import OrganizationService

router = APIRouter(prefix="/v2/organizations", tags=["Organizations"])

# pybuildkite's ``organizations().list_all()`` sends ``page=0`` unless told otherwise: here
# (only here) 0 is the first page, which that client expects (its pages start at 1).
FirstPageFromZero = Annotated[
    int, Query(ge=0, le=MAX_PAGE, description="From 1; 0 also means the first page.")
]


@router.get(
    "",
    operation_id="listOrganizations",
    summary="List organizations",
    description="The organizations the token's user belongs to, by name, less those the "
    "token is limited away from. Any API access token; paginated like registry tokens.",
    response_model=list[OrganizationOut],
    responses=PAGED_LIST_RESPONSES,
)
async def list_organizations(
    rest: RestDep,
    response: Response,
    page: FirstPageFromZero = 1,
    per_page: PerPage = DEFAULT_PER_PAGE,
) -> list[OrganizationOut]:
    found = await rest.database.read(
        rest.service(OrganizationService).list,
        rest.caller,
        PageRequest.of(max(page, 1), per_page),
    )
    set_page_links(response, found, rest.urls.organizations(), {})
    return [OrganizationOut.of(organization, rest.urls) for organization in found.items]


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
