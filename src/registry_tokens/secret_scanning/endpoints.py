from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from registry_tokens.api.http import error_responses
from registry_tokens.api.routes import ContextDep, DatabaseDep, provided
from registry_tokens.secret_scanning.service import SecretScanningService

router = APIRouter(prefix="/secret-scanning", tags=["Secret scanning"])


class ReportAnswer(BaseModel):
    token_hash: str
    token_type: str
    label: str


_REPORT_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string"},
            "type": {"type": "string"},
            "url": {"type": "string"},
            "source": {"type": "string"},
        },
    },
}


@router.post(
    "/github",
    operation_id="reportLeakedTokens",
    summary="Report tokens found in public (GitHub secret scanning partner form)",
    description="Signed with ECDSA (P-256, SHA-256) by a key listed in "
    "`REGISTRY_TOKENS_SECRET_SCANNING_KEYS_FILE`. Each live token reported is revoked at "
    "once and recorded in the audit log; the answer says, per token, whether it was live "
    "(`true_positive`) or not (`false_positive`). Only what a report changes is recorded "
    "(a replayed report changes nothing). At most `REGISTRY_TOKENS_SECRET_SCANNING_MAX_TOKENS` "
    "tokens (100) in `REGISTRY_TOKENS_SECRET_SCANNING_MAX_BODY_BYTES` (256 KiB); counted "
    "against the sender's address (`REGISTRY_TOKENS_RATE_LIMIT_PER_CLIENT`).",
    response_model=list[ReportAnswer],
    responses=error_responses(400, 401, 404, 413, 422, 429, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REPORT_SCHEMA}},
        }
    },
)
async def report_leaked_tokens(
    request: Request,
    scanning: Annotated[SecretScanningService, provided(SecretScanningService)],
    database: DatabaseDep,
    context: ContextDep,
    github_public_key_identifier: Annotated[str | None, Header()] = None,
    github_public_key_signature: Annotated[str | None, Header()] = None,
) -> list[dict[str, str]]:
    headers = await scanning.admit(context)  # counted first: signed or not
    if headers:  # RateLimitHeaders adds them to the response, whatever it is
        request.state.rate_limit_headers = headers
    body = await request.body()
    # Verifying reads the keys file: off the event loop like any write.
    await database.write(
        scanning.verify, body, github_public_key_identifier, github_public_key_signature
    )
    return await database.write(scanning.report, body, context)
