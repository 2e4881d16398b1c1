"""The Registries API's request bodies, and the rules the admin CLI's creation shares.

Their types are the rules (and the OpenAPI document); their errors are put in Buildkite's
words by ``kit.validation.field_problem``. Unknown fields are ignored.
"""

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)

from registry_tokens.kit.validation import field_error, text_constraints, without_defaults
from registry_tokens.registries import oidc_policy


class Ecosystem(StrEnum):
    """The package ecosystems Buildkite Package Registries knows."""

    PYTHON = "python"
    JAVASCRIPT = "javascript"
    RUBY = "ruby"
    JAVA = "java"
    CONTAINER = "container"
    HELM = "helm"
    DEBIAN = "debian"
    REDHAT = "redhat"
    ALPINE = "alpine"
    TERRAFORM = "terraform"
    SWIFT = "swift"
    NUGET = "nuget"
    FILES = "files"


NAME_MAX = 255
DESCRIPTION_MAX = 4096
EMOJI_MAX = 100
COLOR_MAX = 50
OIDC_POLICY_MAX = oidc_policy.MAX_TEXT
# Buildkite's forms, as go-buildkite's comments give them: an emoji "in buildkite format"
# such as ":rocket:", and a color "in hex format" such as "#FF0000".
_EMOJI = re.compile(r"^:[A-Za-z0-9_+-]{1,98}:$")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


def _one_of(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    try:
        return handler(value)
    except ValidationError:
        known = ", ".join(e.value for e in Ecosystem)
        raise field_error("invalid", f"must be one of: {known}") from None


Name = Annotated[str, text_constraints(NAME_MAX), Field(examples=["My registry"])]
EcosystemField = Annotated[Ecosystem, WrapValidator(_one_of)]
# Optional text: null clears it; a string must not be blank (the same rule as names).
Description = Annotated[str, text_constraints(DESCRIPTION_MAX)] | None


def _emoji(value: str) -> str:
    if _EMOJI.match(value):
        return value
    raise field_error(
        "invalid",
        'must be an emoji in Buildkite\'s format such as ":package:" (letters, digits, '
        "_, + and - between colons)",
    )


def _color(value: str) -> str:
    if _COLOR.match(value):
        return value
    raise field_error("invalid", 'must be a hex color such as "#FF0000"')


def _oidc_policy(value: object, _handler: ValidatorFunctionWrapHandler) -> str | None:
    """The stored form (normalized JSON) of statements or their YAML or JSON text."""
    try:
        policy = oidc_policy.normalize(value)
    except oidc_policy.PolicyProblem as problem:
        where = f"at {problem.path} " if problem.path else ""
        raise field_error("invalid", where + problem.text) from None
    return None if policy is None else oidc_policy.stored(policy)


Emoji = (
    Annotated[
        str,
        text_constraints(EMOJI_MAX),
        AfterValidator(_emoji),
        WithJsonSchema({"type": "string", "pattern": _EMOJI.pattern, "examples": [":package:"]}),
    ]
    | None
)
Color = (
    Annotated[
        str,
        text_constraints(COLOR_MAX),
        AfterValidator(_color),
        WithJsonSchema({"type": "string", "pattern": _COLOR.pattern, "examples": ["#FF0000"]}),
    ]
    | None
)
OidcPolicy = Annotated[
    list[dict[str, Any]] | str | None,
    WrapValidator(_oidc_policy),
    Field(
        description="A list of statements (`iss`, `scopes`, `claims` with `equals`, "
        "`not_equals`, `in`, `not_in` or `matches`), or their YAML or JSON text; "
        "returned as YAML text",
        examples=[[{"iss": "https://agent.buildkite.com", "claims": {"pipeline_slug": "deploy"}}]],
    ),
]


class _RegistryBody(BaseModel):
    model_config = ConfigDict(json_schema_extra=without_defaults)

    def fields(self) -> dict[str, object]:
        """Only the fields the client sent: an explicit ``null`` differs from leaving one out."""
        return self.model_dump(mode="json", exclude_unset=True)


class RegistryCreate(_RegistryBody):
    """``name`` and ``ecosystem`` are required; the slug is the kebab-case name."""

    name: Name
    ecosystem: EcosystemField
    description: Description = None
    emoji: Emoji = None
    color: Color = None
    oidc_policy: OidcPolicy = None
    public: StrictBool = False


class RegistryUpdate(_RegistryBody):
    """Fields left out stay as they are; the ecosystem and the slug never change."""

    # Left out, it stays; it may not be cleared (every registry has a name).
    name: Name = Field(default_factory=str)  # never read: only the fields sent are
    description: Description = None
    emoji: Emoji = None
    color: Color = None
    oidc_policy: OidcPolicy = None
    public: StrictBool = False
