"""Every ``url`` and ``web_url`` we emit, built from the configured public bases."""

import functools
import ipaddress
import re
import uuid
from dataclasses import dataclass
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

    def oidc_audience(self, org: str, registry: str) -> str:
        """The ``aud`` an OIDC token for this registry must carry (Buildkite's is
        ``https://packages.buildkite.com/{org}/{registry}``)."""
        return f"{self.api}/{org}/{registry}"

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

    # The console's other pages (``web_url`` names only the three above).

    def home_web(self) -> str:
        return f"{self.web}/"

    def sign_in_web(self) -> str:
        return f"{self.web}/sign-in"

    def sign_out_web(self) -> str:
        return f"{self.web}/sign-out"

    def organizations_web(self) -> str:
        return f"{self.web}/organizations"

    def registries_web(self, org: str) -> str:
        return f"{self.organization_web(org)}/registries"

    def audit_log_web(self, org: str) -> str:
        return f"{self.organization_web(org)}/audit-log"

    def registry_settings_web(self, org: str, registry: str) -> str:
        return f"{self.registry_web(org, registry)}/settings"

    def registry_delete_web(self, org: str, registry: str) -> str:
        return f"{self.registry_web(org, registry)}/delete"

    def package_download_web(self, org: str, registry: str, package_id: uuid.UUID) -> str:
        return f"{self.package_web(org, registry, package_id)}/download"

    def package_delete_web(self, org: str, registry: str, package_id: uuid.UUID) -> str:
        return f"{self.package_web(org, registry, package_id)}/delete"

    def registry_tokens_web(self, org: str, registry: str) -> str:
        return f"{self.registry_web(org, registry)}/tokens"

    def registry_token_web(self, org: str, registry: str, token_id: uuid.UUID) -> str:
        return f"{self.registry_tokens_web(org, registry)}/{token_id}"

    def access_tokens_web(self) -> str:
        return f"{self.web}/access-tokens"

    def static_web(self, name: str) -> str:
        return f"{self.web}/console-static/{name}"

    def pypi_index(self, org: str, registry: str) -> str:
        """Where pip finds a registry's packages (``--index-url``)."""
        return f"{self.api}/{quote(org)}/{quote(registry)}/pypi/simple/"

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


def same_origin(url: str, other: str) -> bool:
    """Whether two URLs share scheme, host and port (``https://X`` is ``https://x:443``);
    a URL that does not parse shares nothing."""
    try:
        return _origin(urlsplit(url)) == _origin(urlsplit(other))
    except ValueError:  # a port that is not a number
        return False


def _origin(url: SplitResult) -> tuple[str, str | None, int | None]:
    scheme = url.scheme.lower()
    return scheme, url.hostname, url.port or _DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True)
class ListenOrigin:
    """The base URL of a server listening on ``host:port``, as this machine reaches it."""

    url: str
    # The host was a wildcard (every interface) and the URL names the loopback instead:
    # right for this machine, wrong for every other.
    wildcard: bool


def listen_origin(host: str, port: int) -> ListenOrigin:
    """``http://{host}:{port}`` for ``serve --host H --port P``: an IPv6 address in
    brackets, a wildcard address (every interface: a URL naming it leads nowhere) as the
    loopback of its family (``0.0.0.0`` as ``127.0.0.1``, ``::`` as ``[::1]``), a host
    name as it is."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        return ListenOrigin(f"http://{host}:{port}", wildcard=False)  # e.g. localhost
    wildcard = address.is_unspecified
    if wildcard:
        address = ipaddress.ip_address("127.0.0.1" if address.version == 4 else "::1")
    shown = f"[{address.compressed}]" if address.version == 6 else address.compressed
    return ListenOrigin(f"http://{shown}:{port}", wildcard=wildcard)


def oidc_issuer_problem(url: str) -> str | None:
    """Why ``url`` cannot be a trusted OIDC issuer (or the keys URL an issuer names), or
    ``None``. Keys fetched over plain HTTP could be swapped by anyone on the path, so only
    https is accepted, but for a loopback issuer named explicitly (tests, a local
    issuer): ``http://127.0.0.1…`` or ``http://[::1]…``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an https:// URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry user info"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1"):
        return "must be an https:// URL (plain http only for http://127.0.0.1… or http://[::1]…)"
    return None


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as (bucket, prefix without its slashes); ``ValueError`` if not."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"{url!r} is not an object storage URL: write s3://bucket or s3://bucket/prefix"
        )
    return parts.netloc, parts.path.strip("/")


# A response header, never sent: it marks a redirect that leaves this server on purpose
# (``api.http.RelativeRedirects`` keeps its Location and removes the marker).
EXTERNAL_REDIRECT = "x-registry-tokens-external-redirect"
