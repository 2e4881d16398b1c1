"""Every ``url`` and ``web_url`` we emit, built from the configured public bases."""

import functools
import re
import uuid
from urllib.parse import SplitResult, urlsplit
from urllib.parse import quote as _quote

# The path of the presigned uploads' target; a staged upload's URL is
# ``<API_URL>/uploads/packages/<upload id>/<filename>``.
UPLOAD_TARGET_PATH = "/uploads/packages"
# A distribution's file name as an upload may carry it: no separators, nothing that a URL
# would escape, no leading dot (so never ``.`` or ``..``).
UPLOAD_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}")
_STAGED_UPLOAD = re.compile(
    r"/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/("
    + UPLOAD_FILENAME.pattern
    + ")"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


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

    def upload_target(self) -> str:
        """Where a presigned upload's file is posted (outside ``/v2``: no credentials)."""
        return f"{self.api}{UPLOAD_TARGET_PATH}"

    def staged_upload(self, package_url: str) -> tuple[uuid.UUID, str] | None:
        """The upload id and file name a ``package_url`` names, if it is one of ours:
        this API's scheme, host and port, no user info, query or fragment, and exactly
        ``<API path>/uploads/packages/<id>/<filename>``, compared as sent (no
        percent-decoding, no ``..``). Parsed only: nothing is ever fetched."""
        if not package_url.isascii() or not package_url.isprintable() or " " in package_url:
            return None  # urlsplit would drop tabs and newlines silently
        try:
            sent, ours = urlsplit(package_url), urlsplit(self.api)
            if _origin(sent) != _origin(ours) or sent.query or sent.fragment:
                return None
        except ValueError:  # a port that is not a number
            return None
        if "@" in sent.netloc or "%" in sent.path:
            return None
        prefix = ours.path + UPLOAD_TARGET_PATH
        if not sent.path.startswith(prefix):
            return None
        matched = _STAGED_UPLOAD.fullmatch(sent.path[len(prefix) :])
        if matched is None:
            return None
        return uuid.UUID(matched[1]), matched[2]

    def npm_registry(self, org: str, registry: str) -> str:
        """The npm registry URL of a registry (``.npmrc``'s ``registry=``), with its slash."""
        return f"{self.api}/{quote(org)}/{quote(registry)}/npm/"

    def audit_events(self, org: str) -> str:
        return f"{self.api}/v2/packages/organizations/{quote(org)}/audit-events"


def _origin(url: SplitResult) -> tuple[str, str | None, int | None]:
    scheme = url.scheme.lower()
    return scheme, url.hostname, url.port or _DEFAULT_PORTS.get(scheme)
