"""Every ``url`` and ``web_url`` we emit, built from the configured public bases."""

import functools
import uuid
from urllib.parse import quote as _quote


@functools.lru_cache(maxsize=4096)
def quote(segment: str) -> str:
    """A slug as a path segment. Memoized: a page of 30 tokens links to the same
    organization and registry some 150 times."""
    return _quote(segment)


class Urls:
    def __init__(self, api_base: str, web_base: str) -> None:
        self.api = api_base.rstrip("/")
        self.web = web_base.rstrip("/")

    def organizations(self) -> str:
        return f"{self.api}/v2/organizations"

    def organization(self, org: str) -> str:
        return f"{self.organizations()}/{quote(org)}"

    def organization_web(self, org: str) -> str:
        return f"{self.web}/organizations/{quote(org)}"

    def registries(self, org: str) -> str:
        return f"{self.api}/v2/packages/organizations/{quote(org)}/registries"

    def registry(self, org: str, registry: str) -> str:
        return f"{self.registries(org)}/{quote(registry)}"

    def registry_web(self, org: str, registry: str) -> str:
        return f"{self.web}/organizations/{quote(org)}/packages/registries/{quote(registry)}"

    def registry_tokens(self, org: str, registry: str) -> str:
        return f"{self.registry(org, registry)}/tokens"

    def registry_token(self, org: str, registry: str, token_id: uuid.UUID) -> str:
        return f"{self.registry_tokens(org, registry)}/{token_id}"

    def packages(self, org: str, registry: str) -> str:
        return f"{self.registry(org, registry)}/packages"

    def package(self, org: str, registry: str, package_id: uuid.UUID) -> str:
        return f"{self.packages(org, registry)}/{package_id}"

    def package_web(self, org: str, registry: str, package_id: uuid.UUID) -> str:
        return f"{self.registry_web(org, registry)}/packages/{package_id}"

    def audit_events(self, org: str) -> str:
        return f"{self.api}/v2/packages/organizations/{quote(org)}/audit-events"
