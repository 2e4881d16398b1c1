import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.network import MAX_CIDRS
from registry_tokens.kit.patterns import MAX_PATTERN_LENGTH, MAX_PATTERNS
from registry_tokens.kit.schemas import ResponseModel, Secret, Timestamp
from registry_tokens.kit.urls import Urls
from registry_tokens.kit.validation import (
    cidr_list,
    field_error,
    rfc3339_timestamp,
    text_constraints,
    without_defaults,
)
from registry_tokens.organizations.schemas import OrganizationRef
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registries.schemas import RegistryRef
from registry_tokens.registry_tokens.repository import TokenRow
from registry_tokens.registry_tokens.service import (
    DESCRIPTION_MAX_LENGTH,
    MAX_GRACE_PERIOD_SECONDS,
    CreatedRegistryToken,
    RegistryTokenOf,
    TokenChanges,
    UsageReport,
)
from registry_tokens.registry_tokens.usage import EPOCH, current_usage
from registry_tokens.users.schemas import UserOut

# The request bodies: their types are the rules (and the OpenAPI document); their errors
# are put in Buildkite's words by ``kit.validation.field_problem``. Unknown fields are
# ignored for forward compatibility.

Description = Annotated[
    str,
    text_constraints(DESCRIPTION_MAX_LENGTH),
    Field(
        description="Description of the token: not blank, at most 255 characters.",
        examples=["Usher"],
    ),
]
Expiry = Annotated[
    AwareDatetime | None,
    BeforeValidator(rfc3339_timestamp),
    Field(
        description="When the token stops working (ISO 8601 with a time zone, in the "
        "future). `null` on update removes the expiry.",
        examples=["2030-01-01T00:00:00Z"],
    ),
]
Cidrs = Annotated[
    list[Annotated[str, Field(examples=["10.0.0.0/8"])]] | None,
    Field(
        max_length=MAX_CIDRS,
        description="IPv4/IPv6 networks installs may come from; `null` or `[]`: anywhere.",
    ),
    WrapValidator(cidr_list),
]


def _packages(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise field_error(
            "invalid",
            'must be a list of package name patterns, e.g. ["acme-*", "@acme/*"]; '
            "null for every package",
        )
    if len(value) > MAX_PATTERNS:
        raise field_error("invalid", f"may hold at most {MAX_PATTERNS} patterns")
    if any(len(item) > MAX_PATTERN_LENGTH for item in value):
        raise field_error("invalid", f"patterns are at most {MAX_PATTERN_LENGTH} characters")
    return handler(value)


AllowedPackages = Annotated[
    list[str] | None,
    Field(
        description="Package-name patterns the token may see and download (normalized "
        "names; `*` for any characters, e.g. `acme-*`, `@acme/*`). `null`: every package. "
        "Other packages answer as if they did not exist.",
        examples=[["acme-*"]],
    ),
    WrapValidator(_packages),
]
NotBefore = Annotated[
    AwareDatetime | None,
    BeforeValidator(rfc3339_timestamp),
    Field(
        description="When the token starts working (ISO 8601 with a time zone); before "
        "`expires_at`. `null`: at once.",
        examples=["2029-01-01T00:00:00Z"],
    ),
]


def _count(maximum: int) -> Callable[[object, ValidatorFunctionWrapHandler], object]:
    problem = f"must be a whole number from 1 to {maximum}, or null for no limit"

    def check(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        if value is None:
            return None
        if isinstance(value, bool):
            raise field_error("invalid", problem)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            return handler(value)
        except ValidationError:
            raise field_error("invalid", problem) from None

    return check


MAX_COUNT = 2**31 - 1
MAX_BYTES = 2**53 - 1  # the largest integer every JSON client reads exactly


def _limit_field(maximum: int, description: str) -> Any:
    return Field(strict=True, ge=1, le=maximum, description=description + " `null`: no limit.")


MaxDownloads = Annotated[
    int | None,
    _limit_field(MAX_COUNT, "Package files it may download (per `quota_period`, or ever)."),
    WrapValidator(_count(MAX_COUNT)),
]
MaxClients = Annotated[
    int | None,
    _limit_field(
        MAX_COUNT,
        "Distinct client addresses it may download from (per `quota_period`, or ever).",
    ),
    WrapValidator(_count(MAX_COUNT)),
]
MaxBytes = Annotated[
    int | None,
    _limit_field(
        MAX_BYTES,
        "Bytes of package files it may download (per `quota_period`, or ever); a file "
        "that would go over is refused whole.",
    ),
    WrapValidator(_count(MAX_BYTES)),
]


def _period(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    try:
        return handler(value)
    except ValidationError:
        raise field_error("invalid", "must be day, week, month or null") from None


Period = Annotated[
    Literal["day", "week", "month"] | None,
    Field(
        description="After which quota counts start again, aligned to UTC (days at "
        "midnight, weeks on Monday, months on the 1st). `null`: they never do.",
    ),
    WrapValidator(_period),
]


class RegistryTokenCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra=without_defaults)

    description: Description
    expires_at: Expiry = None
    allowed_cidrs: Cidrs = None
    allowed_packages: AllowedPackages = None
    not_before: NotBefore = None
    max_downloads: MaxDownloads = None
    max_clients: MaxClients = None
    max_bytes: MaxBytes = None
    quota_period: Period = None

    def changes(self) -> TokenChanges:
        return _changes(self)


class RegistryTokenUpdate(BaseModel):
    """Every field optional: those left out stay as they are."""

    model_config = ConfigDict(json_schema_extra=without_defaults)

    # Left out, it stays; it may not be cleared (every token has a description).
    description: Description = Field(default_factory=str)  # never read: only the fields sent are
    expires_at: Expiry = None
    allowed_cidrs: Cidrs = None
    allowed_packages: AllowedPackages = None
    not_before: NotBefore = None
    max_downloads: MaxDownloads = None
    max_clients: MaxClients = None
    max_bytes: MaxBytes = None
    quota_period: Period = None

    def changes(self) -> TokenChanges:
        return _changes(self)


_GRACE_PERIOD_PROBLEM = f"must be a whole number of seconds from 0 to {MAX_GRACE_PERIOD_SECONDS}"


def _grace_period(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    if isinstance(value, bool):
        raise field_error("invalid", _GRACE_PERIOD_PROBLEM)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 60.0 is 60: JSON (and JSON Schema's "integer") can't tell them apart
    try:
        return handler(value)
    except ValidationError:
        raise field_error("invalid", _GRACE_PERIOD_PROBLEM) from None


GracePeriod = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=MAX_GRACE_PERIOD_SECONDS,
        description="How long the old secret keeps working (absent or `null`: 0).",
    ),
    WrapValidator(_grace_period),
]


class RegistryTokenRotate(BaseModel):
    model_config = ConfigDict(json_schema_extra=without_defaults)

    grace_period_seconds: GracePeriod | None = None


def _changes(body: BaseModel) -> TokenChanges:
    """Only the fields the client sent: an explicit ``null`` differs from leaving one out."""
    return TokenChanges(**{name: getattr(body, name) for name in body.model_fields_set})


class UsageOut(ResponseModel):
    """What a token has downloaded in its current quota period (or since it was created
    or its usage last reset, without one): what its quotas are checked against."""

    downloads: int
    bytes: int
    clients: int = Field(description="Distinct client addresses.")
    since: Timestamp = Field(description="When these counts started.")
    until: Timestamp | None = Field(
        description="When they start again by themselves (the quota period's end); `null`: never."
    )

    @classmethod
    def of(cls, token: TokenRow, now: datetime) -> "UsageOut":
        usage = current_usage(
            token.quota_period,
            token.usage_since,
            token.usage_period_start,
            (token.usage_downloads, token.usage_bytes, token.usage_clients),
            now,
        )
        since = usage.since if usage.since != EPOCH else token.created_at
        return cls(
            downloads=usage.downloads,
            bytes=usage.bytes,
            clients=usage.clients,
            since=since,
            until=usage.until,
        )


class RegistryTokenOut(ResponseModel):
    """The seed's keys in the seed's order, then (after them) our additions."""

    id: uuid.UUID
    graphql_id: str
    description: str
    url: str
    created_at: Timestamp
    created_by: UserOut
    organization: OrganizationRef
    registry: RegistryRef
    expires_at: Timestamp | None
    allowed_cidrs: list[str] | None
    last_used_at: Timestamp | None
    last_used_ip: str | None
    allowed_packages: list[str] | None
    not_before: Timestamp | None
    max_downloads: int | None
    max_clients: int | None
    max_bytes: int | None
    quota_period: str | None
    disabled_at: Timestamp | None
    usage: UsageOut

    @classmethod
    def of(cls, found: RegistryTokenOf, urls: Urls, now: datetime) -> "RegistryTokenOut":
        return cls(**_fields(found.token, found.registry, urls, now))

    @classmethod
    def list_of(
        cls, tokens: Iterable[TokenRow], registry: RegistryRow, urls: Urls, now: datetime
    ) -> list["RegistryTokenOut"]:
        """A page of one registry's tokens: the organization, registry and creator each
        one shows are built once for the page, not once for every token."""
        shared: dict[tuple[str, uuid.UUID], ResponseModel] = {}
        return [cls(**_fields(token, registry, urls, now, shared)) for token in tokens]


class RegistryTokenCreated(RegistryTokenOut):
    """The create and rotate responses: the only times a secret is ever shown."""

    token: Secret = Field(description="The registry token's secret. Shown once; store it now.")

    @classmethod
    def of_new(
        cls, created: CreatedRegistryToken, urls: Urls, now: datetime
    ) -> "RegistryTokenCreated":
        return cls(**_fields(created.token, created.registry, urls, now), token=created.secret)


def _fields(
    token: TokenRow,
    registry: RegistryRow,
    urls: Urls,
    now: datetime,
    shared: dict[tuple[str, uuid.UUID], ResponseModel] | None = None,
) -> dict[str, object]:
    """The response's fields; ``shared`` keeps the nested objects built so far (by kind
    and id), for tokens that show the same ones."""
    org = registry.organization_slug
    known = shared if shared is not None else {}

    def nested(kind: str, key: uuid.UUID, build: Callable[[], ResponseModel]) -> ResponseModel:
        if (kind, key) not in known:
            known[(kind, key)] = build()
        return known[(kind, key)]

    return {
        "id": token.id,
        "graphql_id": graphql_id("RegistryToken", token.id),
        "description": token.description,
        "url": urls.registry_token(org, registry.slug, token.id),
        "created_at": token.created_at,
        "created_by": nested(
            "user",
            token.creator_id,
            lambda: UserOut.of_fields(
                token.creator_id,
                token.creator_name,
                token.creator_email,
                token.creator_avatar_url,
                token.creator_created_at,
            ),
        ),
        "organization": nested(
            "organization",
            registry.organization_id,
            lambda: OrganizationRef.of(registry.organization_id, org, urls),
        ),
        "registry": nested("registry", registry.id, lambda: RegistryRef.of(registry, urls)),
        "expires_at": token.expires_at,
        "allowed_cidrs": token.allowed_cidrs,
        "last_used_at": token.last_used_at,
        "last_used_ip": token.last_used_ip,
        "allowed_packages": token.allowed_packages,
        "not_before": token.not_before,
        "max_downloads": token.max_downloads,
        "max_clients": token.max_clients,
        "max_bytes": token.max_bytes,
        "quota_period": token.quota_period,
        "disabled_at": token.disabled_at,
        "usage": UsageOut.of(token, now),
    }


class UsageBucket(ResponseModel):
    at: Timestamp = Field(description="The hour's or day's start (UTC).")
    downloads: int
    bytes: int
    clients: int = Field(description="Distinct client addresses in the bucket.")


class TokenUsageTotal(ResponseModel):
    id: uuid.UUID
    description: str
    url: str
    deleted: bool = Field(description="Deleted since (its downloads stay in the history).")
    downloads: int
    bytes: int
    clients: int


class UsageSeriesOut(ResponseModel):
    """Downloads per hour or day of ``[from, to)``: every bucket, zeros included."""

    from_: Timestamp = Field(alias="from", serialization_alias="from")
    to: Timestamp
    interval: str
    downloads: int = Field(description="Over the whole window.")
    bytes: int
    clients: int = Field(description="Distinct client addresses over the whole window.")
    series: list[UsageBucket]

    @classmethod
    def fields_of(cls, report: UsageReport) -> dict[str, object]:
        return {
            "from": report.window.start,
            "to": report.window.end,
            "interval": report.window.interval,
            "downloads": report.totals.downloads,
            "bytes": report.totals.bytes,
            "clients": report.totals.clients,
            "series": [
                UsageBucket(
                    at=point.at,
                    downloads=point.downloads,
                    bytes=point.bytes,
                    clients=point.clients,
                )
                for point in report.points
            ],
        }

    @classmethod
    def of(cls, report: UsageReport) -> "UsageSeriesOut":
        return cls.model_validate(cls.fields_of(report))


class RegistryUsageOut(UsageSeriesOut):
    """A registry's downloads (all its tokens'), and each token's with any in the window."""

    tokens: list[TokenUsageTotal]

    @classmethod
    def of_registry(cls, report: UsageReport, urls: Urls) -> "RegistryUsageOut":
        registry = report.registry
        return cls.model_validate(
            {
                **cls.fields_of(report),
                "tokens": [
                    TokenUsageTotal(
                        id=total.token_id,
                        description=total.description,
                        url=urls.registry_token(
                            registry.organization_slug, registry.slug, total.token_id
                        ),
                        deleted=bool(total.deleted),
                        downloads=total.downloads,
                        bytes=total.bytes,
                        clients=total.clients,
                    )
                    for total in report.tokens
                ],
            }
        )
