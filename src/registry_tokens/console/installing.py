"""What the console tells people to paste to install from a registry."""

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from registry_tokens.kit.urls import Urls
from registry_tokens.packages.npm import client_setup
from registry_tokens.registries.repository import RegistryRow

PLACEHOLDER = "$REGISTRY_TOKEN"


@dataclass(frozen=True)
class InstallLines:
    """How a package client installs from one registry: ``snippets`` are (label, text)
    pairs, each shown in its own copyable block."""

    client: str
    index_url: str
    snippets: list[tuple[str, str]]


def install_lines(urls: Urls, registry: RegistryRow, *, secret: str | None) -> InstallLines | None:
    """The lines for this registry's client, with ``secret`` in them (shown once, on the
    page that shows it) or a ``$REGISTRY_TOKEN`` placeholder; ``None`` for ecosystems no
    client installs from here yet."""
    if registry.ecosystem == "javascript":
        return _npm_lines(urls, registry, secret=secret)
    if registry.ecosystem != "python":
        return None
    index = urls.pypi_index(registry.organization_slug, registry.slug)
    if registry.public and secret is None:
        with_credentials = index
    else:
        with_credentials = _with_password(index, secret or PLACEHOLDER)
    return InstallLines(
        client="pip",
        index_url=index,
        snippets=[
            ("Install with pip", f'pip install --index-url "{with_credentials}" <package>'),
            (
                "Or in pip.conf (pip config debug shows where)",
                f"[global]\nindex-url = {with_credentials}\n",
            ),
        ],
    )


def _with_password(url: str, password: str) -> str:
    """``url`` with user ``buildkite`` and the password in it (as pip reads them)."""
    parts = urlsplit(url)
    secret = password if password == PLACEHOLDER else quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"buildkite:{secret}@{parts.netloc}"))


def _npm_lines(urls: Urls, registry: RegistryRow, *, secret: str | None) -> InstallLines:
    """``.npmrc`` lines (npm sends the token as ``Authorization: Bearer``)."""
    registry_url = urls.npm_registry(registry.organization_slug, registry.slug)
    if registry.public and secret is None:
        setup = client_setup(registry_url)
        npmrc = setup.npmrc[0]  # installs need no token
    else:
        setup = client_setup(registry_url, secret or "${REGISTRY_TOKEN}")
        npmrc = "\n".join(setup.npmrc)
    return InstallLines(
        client="npm",
        index_url=setup.registry_url,
        snippets=[
            ("In the project's .npmrc", npmrc + "\n"),
            ("Install with npm", setup.install),
            # A registry token only installs: publishing is for the registry's page.
            *([("Publish with npm", setup.publish)] if secret is None else []),
        ],
    )
