"""The policy matchers at their edges (issue 14): glob metacharacters, lists, absent and
non-string claims, statements in order. Pure functions: no server needed."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry_tokens.oidc.policy import first_match, rule_holds
from registry_tokens.registries.oidc_policy import normalize

ISS = "https://agent.buildkite.com"
ABSENT = object()

# (rule as a policy states it, claim value or ABSENT, holds?)
TABLE: list[tuple[Any, Any, bool]] = [
    # equals, and the shorthand of a bare value
    ("main", "main", True),
    ("main", "Main", False),
    ("main", "main ", False),
    ({"equals": "main"}, ["dev", "main"], True),  # a list claim: one item suffices
    ({"equals": "main"}, ["dev"], False),
    ({"equals": "main"}, ABSENT, False),
    ({"equals": "main"}, None, False),
    ({"equals": "main"}, {"name": "main"}, False),
    ({"equals": "main"}, [], False),
    # numbers and booleans compare by their JSON text
    (42, 42, True),
    (42, "42", True),
    ("42", 42, True),
    (42, 42.0, True),
    (42, 43, False),
    (True, True, True),
    (True, "true", True),
    (True, 1, False),  # not Python's True == 1
    (1, True, False),
    # not_equals: fails closed on what cannot be compared
    ({"not_equals": "main"}, "dev", True),
    ({"not_equals": "main"}, "main", False),
    ({"not_equals": "main"}, ["dev", "main"], False),  # no item may be it
    ({"not_equals": "main"}, ABSENT, False),
    ({"not_equals": "main"}, None, False),
    ({"not_equals": "main"}, [], False),
    ({"not_equals": "main"}, ["dev", {"x": 1}], False),
    # in / not_in
    ({"in": ["main", "release"]}, "release", True),
    ({"in": ["main", "release"]}, "dev", False),
    ({"in": ["main", "release"]}, ["dev", "release"], True),
    ({"in": [1, 2]}, "2", True),
    ({"in": ["main"]}, ABSENT, False),
    ({"not_in": ["main", "release"]}, "dev", True),
    ({"not_in": ["main", "release"]}, "main", False),
    ({"not_in": ["main"]}, ["dev", "main"], False),
    ({"not_in": ["main"]}, ["dev", "feature"], True),
    ({"not_in": ["main"]}, ABSENT, False),
    ({"not_in": ["main"]}, 3.5, True),
    # matches: * is any run (slashes too), everything else literal
    ({"matches": ["release-*"]}, "release-1.2", True),
    ({"matches": ["release-*"]}, "release-", True),
    ({"matches": ["release-*"]}, "pre-release-1", False),  # anchored at both ends
    ({"matches": ["feature/*"]}, "feature/a/b", True),
    ({"matches": ["*"]}, "", True),
    ({"matches": ["*"]}, ABSENT, False),
    ({"matches": ["v?.0"]}, "v1.0", False),  # ? is not a wildcard
    ({"matches": ["v?.0"]}, "v?.0", True),
    ({"matches": ["[ab]"]}, "a", False),  # nor are brackets
    ({"matches": ["[ab]"]}, "[ab]", True),
    ({"matches": ["a.c"]}, "abc", False),  # regex metacharacters are literal
    ({"matches": ["a+"]}, "aa", False),
    ({"matches": ["(x|y)"]}, "x", False),
    ({"matches": ["line*"]}, "line\nbreak", True),  # * crosses newlines too
    ({"matches": ["line"]}, "line\n", False),
    ({"matches": ["a*b*c"]}, "a-b-c", True),
    ({"matches": ["a*b*c"]}, "a-c", False),
    ({"matches": ["4*"]}, 42, True),  # numbers match by their text
    ({"matches": ["main", "release-*"]}, ["dev", "release-2"], True),
    ({"matches": ["main"]}, ["dev", None], False),
    # several matchers in one rule: all must hold
    ({"matches": ["release-*"], "not_in": ["release-bad"]}, "release-good", True),
    ({"matches": ["release-*"], "not_in": ["release-bad"]}, "release-bad", False),
]


def _rule(rule: Any) -> dict[str, Any]:
    policy = normalize([{"iss": ISS, "claims": {"claim": rule}}])
    assert policy is not None
    normalized: dict[str, Any] = policy[0]["claims"]["claim"]
    return normalized


@pytest.mark.parametrize(("rule", "value", "holds"), TABLE)
def test_matcher_table(rule: Any, value: Any, holds: bool) -> None:
    present = value is not ABSENT
    assert rule_holds(_rule(rule), value if present else None, present) is holds


def test_statements_are_tried_in_order_and_the_first_that_holds_grants_its_scopes() -> None:
    policy = normalize(
        [
            {"iss": ISS, "scopes": ["read_packages"], "claims": {"pipeline_slug": "a"}},
            {
                "iss": ISS,
                "scopes": ["read_packages", "write_packages"],
                "claims": {"pipeline_slug": {"in": ["a", "b"]}},
            },
            {"iss": "https://token.actions.githubusercontent.com", "claims": {"repository": "x"}},
        ]
    )
    assert policy is not None
    assert first_match(policy, {"iss": ISS, "pipeline_slug": "a"}) == (0, ("read_packages",))
    assert first_match(policy, {"iss": ISS, "pipeline_slug": "b"}) == (
        1,
        ("read_packages", "write_packages"),
    )
    assert first_match(policy, {"iss": ISS, "pipeline_slug": "c"}) is None
    # A statement's claims never match a token of another issuer.
    assert first_match(policy, {"iss": "https://elsewhere.example", "pipeline_slug": "a"}) is None
    # No scopes named: read_packages alone.
    github = {"iss": "https://token.actions.githubusercontent.com", "repository": "x"}
    assert first_match(policy, github) == (2, ("read_packages",))


def test_every_claim_of_a_statement_must_hold() -> None:
    policy = normalize(
        [{"iss": ISS, "claims": {"pipeline_slug": "deploy", "build_branch": "main"}}]
    )
    assert policy is not None
    claims = {"iss": ISS, "pipeline_slug": "deploy", "build_branch": "main"}
    assert first_match(policy, claims) is not None
    assert first_match(policy, {**claims, "build_branch": "dev"}) is None
    del claims["build_branch"]
    assert first_match(policy, claims) is None


# What a policy may hold (normalize refuses NUL and blank text).
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="*\x00"), max_size=12)


@given(literal=TEXT, other=TEXT)
def test_a_pattern_without_a_star_matches_only_itself(literal: str, other: str) -> None:
    if not literal.strip():
        return  # normalize refuses blank patterns
    rule = _rule({"matches": [literal]})
    assert rule_holds(rule, literal)
    assert rule_holds(rule, other) is (other == literal)


@given(prefix=TEXT, suffix=TEXT, middle=st.text(max_size=12))
def test_a_star_stands_for_any_run_of_characters(prefix: str, suffix: str, middle: str) -> None:
    if len(prefix) + len(suffix) > 1000:
        return
    rule = _rule({"matches": [f"{prefix}*{suffix}"]})
    assert rule_holds(rule, f"{prefix}{middle}{suffix}")


@given(values=st.lists(TEXT.filter(str.strip), min_size=1, max_size=5), claim=TEXT)
def test_not_in_is_the_negation_of_in_for_a_present_string(values: list[str], claim: str) -> None:
    assert rule_holds(_rule({"in": values}), claim) is not rule_holds(
        _rule({"not_in": values}), claim
    )
