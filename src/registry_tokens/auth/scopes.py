from enum import StrEnum


class Scope(StrEnum):
    """API access token scopes, spelled as Buildkite spells them."""

    READ_REGISTRIES = "read_registries"
    WRITE_REGISTRIES = "write_registries"
    DELETE_REGISTRIES = "delete_registries"
    READ_PACKAGES = "read_packages"
    WRITE_PACKAGES = "write_packages"
    DELETE_PACKAGES = "delete_packages"
    READ_USER = "read_user"
