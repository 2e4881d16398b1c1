import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import RestDep
from registry_tokens.audit.schemas import AuditEventList, AuditEventOut
from registry_tokens.audit.service import AuditService, EventFilters, EventType
from registry_tokens.kit.cursor import Cursor, cursor_links
from registry_tokens.kit.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE

router = APIRouter(prefix="/v2/packages/organizations/{org}/audit-events", tags=["Audit log"])


@router.get(
    "",
    operation_id="listAuditEvents",
    summary="List audit events of the organization's registry tokens",
    description="Required scope: `read_registries`. Newest first; filter by `registry` "
    "(slug), `token` (id) and `event_type`; page with the `before` / `after` cursors in "
    "`links`. Events: " + ", ".join(f"`{e.value}`" for e in EventType) + ".",
    response_model=AuditEventList,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def list_audit_events(
    org: str,
    rest: RestDep,
    registry: Annotated[str | None, Query(max_length=100)] = None,
    token: Annotated[uuid.UUID | None, Query(description="A registry token's id")] = None,
    event_type: Annotated[EventType | None, Query()] = None,
    before: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = DEFAULT_PER_PAGE,
) -> AuditEventList:
    filters = EventFilters(
        registry=registry, token=token, event_type=event_type.value if event_type else None
    )
    token_filter = str(token) if token else None
    cursor = Cursor.parse(before, after, per_page)
    window = await rest.database.read(
        rest.service(AuditService).list, rest.caller, org, filters, cursor
    )
    return AuditEventList(
        items=[AuditEventOut.of(event) for event in window.items],
        links=cursor_links(
            rest.urls.audit_events(org),
            window,
            {"registry": registry, "token": token_filter, "event_type": filters.event_type},
        ),
    )
