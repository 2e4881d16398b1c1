"""The services of one process, built once from settings and shared by HTTP and the CLI."""

from dataclasses import dataclass

from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.kit.urls import Urls
from registry_tokens.organizations.service import OrganizationService
from registry_tokens.packages.install import InstallService
from registry_tokens.packages.service import PackageService
from registry_tokens.packages.storage import FileStore
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.registries.service import RegistryService
from registry_tokens.registry_tokens.service import RegistryTokenService
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
    rate_limits: RateLimitPolicy

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        database = Database(settings)
        key = settings.secret_key_bytes
        files = FileStore(settings.package_storage_path)
        auth = AuthService(database, key)
        return cls(
            settings=settings,
            database=database,
            urls=Urls(settings),
            auth=auth,
            users=UserService(database),
            organizations=OrganizationService(database),
            registries=RegistryService(database, files),
            registry_tokens=RegistryTokenService(database, key),
            packages=PackageService(database, files, settings.max_upload_bytes),
            install=InstallService(database, auth, files, key),
            rate_limits=RateLimitPolicy.build(settings, database),
        )
