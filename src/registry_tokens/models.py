"""Imports every model so the metadata (and Alembic's autogenerate) sees all tables."""

from registry_tokens.audit.models import AuditEvent
from registry_tokens.auth.models import ApiAccessToken, ApiAccessTokenOrganization
from registry_tokens.db.base import Base
from registry_tokens.oidc.models import OidcTokenUse
from registry_tokens.organizations.models import Organization, OrganizationMembership
from registry_tokens.packages.models import Package, PackageDistTag, StagedUpload
from registry_tokens.ratelimits.models import RateLimitCounter
from registry_tokens.registries.models import Registry
from registry_tokens.registry_tokens.models import RegistryToken, RetiredSecret
from registry_tokens.sessions.models import ConsoleSession
from registry_tokens.users.models import User

__all__ = [
    "ApiAccessToken",
    "ApiAccessTokenOrganization",
    "AuditEvent",
    "Base",
    "ConsoleSession",
    "OidcTokenUse",
    "Organization",
    "OrganizationMembership",
    "Package",
    "PackageDistTag",
    "RateLimitCounter",
    "Registry",
    "RegistryToken",
    "RetiredSecret",
    "StagedUpload",
    "User",
]
