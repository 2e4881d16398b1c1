"""The services of one process, built once from settings and shared by every door (the
REST API, the package protocols, the console, the CLI): where the house is assembled."""

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from registry_tokens.audit.service import AuditService
from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.kit.timestamps import utcnow
from registry_tokens.kit.urls import Urls
from registry_tokens.oidc.keys import IssuerKeys
from registry_tokens.oidc.service import OidcGate, OidcService
from registry_tokens.organizations.service import OrganizationService
from registry_tokens.packages.object_storage import ObjectStore, s3_client
from registry_tokens.packages.service import PackageService
from registry_tokens.packages.storage import FileStore, PackageStore
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.registries.service import RegistryService
from registry_tokens.registry_tokens.access import InstallAccess
from registry_tokens.registry_tokens.counting import UsageBuffer
from registry_tokens.registry_tokens.refusals import RefusalLog
from registry_tokens.registry_tokens.service import RegistryTokenService
from registry_tokens.secret_scanning.service import SecretScanningService
from registry_tokens.sessions.service import SessionService
from registry_tokens.settings import Settings
from registry_tokens.users.service import UserService


@dataclass(frozen=True)
class Services:
    settings: Settings
    database: Database
    urls: Urls
    auth: AuthService
    users: UserService
    organizations: OrganizationService
    registries: RegistryService
    registry_tokens: RegistryTokenService
    packages: PackageService
    install: InstallAccess
    audit: AuditService
    secret_scanning: SecretScanningService
    rate_limits: RateLimitPolicy
    sessions: SessionService
    oidc: OidcService
    gate: OidcGate

    @classmethod
    def build(cls, settings: Settings, clock: Callable[[], datetime] = utcnow) -> "Services":
        """Every service of the process; ``clock`` is the time they all read."""
        database = Database(settings)
        key = settings.secret_key_bytes
        rate_limits = RateLimitPolicy.build(settings, database)
        auth = AuthService(database, key, rate_limits)
        registry_tokens = RegistryTokenService(database, key, clock)
        urls = Urls(settings.api_base, settings.web_base)
        users = UserService(database, clock)
        packages = PackageService(
            database,
            package_store(settings),
            settings.max_upload_bytes,
            key=key,
            urls=urls,
            clock=clock,
            upload_expiry=timedelta(seconds=settings.presigned_upload_expiry_seconds),
        )
        # Its thread counts on a loop of its own, so with a store of its own (a Redis
        # connection belongs to the loop that opened it).
        refusals = RefusalLog(
            database, RateLimitPolicy.build(settings, database), settings.refusal_queue_size
        )
        oidc = OidcService(
            database,
            urls,
            key,
            settings.oidc_issuer_urls,
            IssuerKeys(settings.oidc_jwks_refresh_seconds, settings.oidc_fetch_timeout_seconds),
            refusals.add_oidc,
            clock,
        )
        install = InstallAccess(
            database,
            auth,
            key,
            clock,
            timedelta(seconds=settings.usage_write_interval_seconds),
            rate_limits,
            refusals,
            oidc,
            UsageBuffer(database, settings.usage_flush_seconds),
        )
        return cls(
            settings=settings,
            database=database,
            urls=urls,
            auth=auth,
            users=users,
            organizations=OrganizationService(database),
            registries=RegistryService(
                database,
                deletion_steps=[
                    registry_tokens.revoke_for_registry_deletion,
                    packages.files_of_deleted_registry,
                ],
            ),
            registry_tokens=registry_tokens,
            packages=packages,
            install=install,
            audit=AuditService(database),
            secret_scanning=SecretScanningService(
                database,
                auth,
                registry_tokens,
                install,
                rate_limits,
                settings.secret_scanning_keys_file,
                settings.secret_scanning_max_tokens,
                clock,
            ),
            rate_limits=rate_limits,
            sessions=SessionService(
                database,
                users,
                rate_limits,
                key,
                clock,
                idle=timedelta(seconds=settings.console_session_idle_seconds),
                lifetime=timedelta(seconds=settings.console_session_max_seconds),
            ),
            oidc=oidc,
            gate=OidcGate(auth, oidc, database, rate_limits),
        )

    def by_type(self) -> dict[type, object]:
        """Each service under its own type: what ``api.routes.provided`` looks up."""
        return {type(value): value for value in (getattr(self, f.name) for f in fields(self))}


def package_store(settings: Settings) -> PackageStore:
    """The package files' store: a bucket when PACKAGE_STORAGE_URL names one (the local
    directory then only stages uploads), else the local directory."""
    if settings.package_storage_url:
        return ObjectStore(
            settings.package_storage_url,
            settings.package_storage_path,
            # Each worker thread, and the transfer threads of one upload, at once.
            client=s3_client(settings.s3_endpoint_url, connections=4 * settings.worker_threads),
            redirect_seconds=settings.package_download_redirect_seconds,
            direct_uploads=settings.presigned_uploads_to_bucket,
        )
    return FileStore(settings.package_storage_path)
