"""The services of one process, built once from settings and shared by HTTP and the CLI."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from registry_tokens.audit.service import AuditService
from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.kit.timestamps import utcnow
from registry_tokens.kit.urls import Urls
from registry_tokens.organizations.service import OrganizationService
from registry_tokens.packages.install import InstallService
from registry_tokens.packages.service import PackageService
from registry_tokens.packages.storage import FileStore
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.registries.service import RegistryService
from registry_tokens.registry_tokens.service import RegistryTokenService
from registry_tokens.secret_scanning.service import SecretScanningService
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
    install: InstallService
    audit: AuditService
    secret_scanning: SecretScanningService
    rate_limits: RateLimitPolicy

    @classmethod
    def build(cls, settings: Settings, clock: Callable[[], datetime] = utcnow) -> "Services":
        """Every service of the process; ``clock`` is the time they all read."""
        database = Database(settings)
        key = settings.secret_key_bytes
        files = FileStore(settings.package_storage_path)
        auth = AuthService(database, key)
        rate_limits = RateLimitPolicy.build(settings, database)
        return cls(
            settings=settings,
            database=database,
            urls=Urls(settings),
            auth=auth,
            users=UserService(database),
            organizations=OrganizationService(database),
            registries=RegistryService(database, files),
            registry_tokens=RegistryTokenService(database, key, clock),
            packages=PackageService(database, files, settings.max_upload_bytes),
            install=InstallService(
                database,
                auth,
                files,
                key,
                clock,
                timedelta(seconds=settings.usage_write_interval_seconds),
                rate_limits,
            ),
            audit=AuditService(database),
            secret_scanning=SecretScanningService(
                database, key, settings.secret_scanning_keys_file, clock
            ),
            rate_limits=rate_limits,
        )
