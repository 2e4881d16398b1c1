"""A registry's ``oidc_policy``: read, checked and normalized; never enforced here.

Buildkite's "OIDC in Buildkite Package Registries" writes a policy as a list of statements,
each an issuer (``iss``), optional ``scopes`` and ``claims``, where a claim is a value (it
must equal it) or a mapping of matchers: ``equals`` / ``not_equals`` (a value), ``in`` /
``not_in`` (a list of values) and ``matches`` (a list of patterns). go-buildkite sends that
list as JSON (``PackageRegistryOIDCPolicy``); the docs and the web UI use YAML or JSON text.
All three are accepted. What is stored is the normalized statements as compact JSON
(a bare value becomes ``{"equals": value}``); what is returned is that policy as YAML text,
since go-buildkite decodes ``PackageRegistry.OIDCPolicy`` as a Go ``string``.

The input is bounded before it is parsed: its size, its YAML nesting, no YAML aliases (so a
small text cannot stand for a huge document), and the number of statements, claims and
values.
"""

import json
import math
from typing import Any

import yaml

MAX_TEXT = 65_536
MAX_STATEMENTS = 20
MAX_CLAIMS = 50
MAX_VALUES = 100
MAX_STRING = 1024
MAX_NESTING = 8
SCOPES = ("read_packages", "write_packages", "delete_packages")
_VALUE_MATCHERS = ("equals", "not_equals")
_LIST_MATCHERS = ("in", "not_in", "matches")
MATCHERS = _VALUE_MATCHERS + _LIST_MATCHERS
_STATEMENT_KEYS = ("iss", "scopes", "claims")

Policy = list[dict[str, Any]]


class PolicyProblem(ValueError):
    """Why a policy is refused; ``str()`` names the place, e.g. ``[0].claims.x.in``."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        super().__init__(f"{path}: {text}" if path else text)


def normalize(value: object) -> Policy | None:
    """The policy ``value`` (statements, or their YAML or JSON text) normalized; ``None``
    when there is none (``null``, an empty list or blank text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _parse_text(value)
        if value is None:
            return None
    if not isinstance(value, list):
        raise PolicyProblem("", "must be a list of policy statements (or their YAML or JSON)")
    if not value:
        return None
    if len(value) > MAX_STATEMENTS:
        raise PolicyProblem("", f"has too many statements (maximum is {MAX_STATEMENTS})")
    policy = [_statement(item, f"[{n}]") for n, item in enumerate(value)]
    if len(stored(policy)) > MAX_TEXT:
        raise PolicyProblem("", f"is too long (maximum is {MAX_TEXT} characters as JSON)")
    return policy


def stored(policy: Policy) -> str:
    """The text a normalized policy is stored as: compact JSON, keys in statement order."""
    return json.dumps(policy, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def shown(text: str | None) -> str | None:
    """A stored policy as the API returns it: YAML text. Text stored before policies were
    checked is returned as it was, never lost."""
    if text is None:
        return None
    try:
        policy = normalize(json.loads(text))
    except (ValueError, RecursionError):
        return text
    if policy is None:
        return None
    return yaml.safe_dump(policy, sort_keys=False, allow_unicode=True, width=1_000_000)


def _parse_text(text: str) -> object:
    if len(text) > MAX_TEXT:
        raise PolicyProblem("", f"is too long (maximum is {MAX_TEXT} characters)")
    if "\x00" in text:
        raise PolicyProblem("", "must not contain NUL characters")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise PolicyProblem("", f"is nested too deeply (maximum is {MAX_NESTING})") from None
    except ValueError:
        pass  # not JSON: YAML, whose flow style is a superset of it
    if _LOADER is yaml.SafeLoader and _bracket_depth(text) > MAX_NESTING:
        raise PolicyProblem("", f"is nested too deeply (maximum is {MAX_NESTING})")
    try:
        depth = 0
        for token in yaml.scan(text, Loader=_LOADER):
            if isinstance(token, yaml.AliasToken | yaml.AnchorToken):
                raise PolicyProblem("", "must not use YAML anchors or aliases")
            if isinstance(token, _OPENERS):
                depth += 1
                if depth > MAX_NESTING:
                    raise PolicyProblem("", f"is nested too deeply (maximum is {MAX_NESTING})")
            elif isinstance(token, _CLOSERS):
                depth -= 1
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "is not valid"
        raise PolicyProblem("", f"is not valid YAML or JSON ({problem}{where})") from None


# libyaml's safe loader where PyYAML was built with it: the pure-Python scanner reads a run
# of unclosed "{" to its end, in time quadratic in its length (26 s for 65,000), before it
# yields the first token. Without libyaml, brackets are counted first (a "[" in a plain
# scalar counts too: such a policy may be refused for its depth, never parsed for minutes).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


_OPENERS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _statement(item: object, path: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise PolicyProblem(path, "must be a statement: a mapping with iss and claims")
    unknown = [str(key) for key in item if key not in _STATEMENT_KEYS]
    if unknown:
        raise PolicyProblem(
            path, f"has unknown keys {', '.join(sorted(unknown))} (known: iss, scopes, claims)"
        )
    statement: dict[str, Any] = {"iss": _issuer(item.get("iss"), f"{path}.iss")}
    scopes = _scopes(item["scopes"], f"{path}.scopes") if item.get("scopes") is not None else []
    if scopes:  # go-buildkite leaves an empty list out (omitzero)
        statement["scopes"] = scopes
    statement["claims"] = _claims(item.get("claims"), f"{path}.claims")
    return statement


def _issuer(value: object, path: str) -> str:
    if value is None:
        raise PolicyProblem(path, "can't be blank (the token issuer's URL)")
    text = _string(value, path)
    if not text.startswith(("https://", "http://")):
        raise PolicyProblem(path, "must be the issuer's URL, e.g. https://agent.buildkite.com")
    return text


def _scopes(value: object, path: str) -> list[str]:
    if not isinstance(value, list):
        raise PolicyProblem(path, "must be a list of scopes")
    scopes: list[str] = []
    for n, scope in enumerate(value[: len(SCOPES) + 1]):
        if scope not in SCOPES:
            raise PolicyProblem(f"{path}[{n}]", f"must be one of: {', '.join(SCOPES)}")
        if scope not in scopes:
            scopes.append(scope)
    if len(value) > len(SCOPES) + 1:
        raise PolicyProblem(path, f"has too many scopes (known: {', '.join(SCOPES)})")
    return scopes


def _claims(value: object, path: str) -> dict[str, Any]:
    if value is None:
        raise PolicyProblem(path, "can't be blank: name at least one claim to match")
    if not isinstance(value, dict):
        raise PolicyProblem(path, "must be a mapping of claim names to rules")
    if not value:
        raise PolicyProblem(path, "can't be blank: name at least one claim to match")
    if len(value) > MAX_CLAIMS:
        raise PolicyProblem(path, f"has too many claims (maximum is {MAX_CLAIMS})")
    claims: dict[str, Any] = {}
    for name, rule in value.items():
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_STRING:
            raise PolicyProblem(path, f"has an invalid claim name {str(name)[:64]!r}")
        claims[name] = _rule(rule, f"{path}.{name}")
    return claims


def _rule(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):  # the docs' shorthand for equals
        return {"equals": _value(value, path)}
    unknown = [str(key) for key in value if key not in MATCHERS]
    if unknown:
        raise PolicyProblem(
            path,
            f"has unknown matchers {', '.join(sorted(unknown))} (known: {', '.join(MATCHERS)})",
        )
    rule: dict[str, Any] = {}
    for matcher in MATCHERS:
        if value.get(matcher) is None:
            continue
        where = f"{path}.{matcher}"
        if matcher in _VALUE_MATCHERS:
            rule[matcher] = _value(value[matcher], where)
        else:
            rule[matcher] = _values(value[matcher], where, strings=matcher == "matches")
    if not rule:
        raise PolicyProblem(path, f"must have a matcher (one of: {', '.join(MATCHERS)})")
    return rule


def _values(value: object, path: str, *, strings: bool) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise PolicyProblem(path, "must be a list of at least one value")
    if len(value) > MAX_VALUES:
        raise PolicyProblem(path, f"has too many values (maximum is {MAX_VALUES})")
    if strings:
        return [_string(item, f"{path}[{n}]") for n, item in enumerate(value)]
    return [_value(item, f"{path}[{n}]") for n, item in enumerate(value)]


def _value(value: object, path: str) -> str | int | float | bool:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyProblem(path, "must be a finite number")
        return value
    if isinstance(value, str):
        return _string(value, path)
    raise PolicyProblem(path, "must be text, a number or true/false")


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise PolicyProblem(path, "must be text")
    if not value.strip():
        raise PolicyProblem(path, "can't be blank")
    if len(value) > MAX_STRING:
        raise PolicyProblem(path, f"is too long (maximum is {MAX_STRING} characters)")
    if "\x00" in value:
        raise PolicyProblem(path, "must not contain NUL characters")
    return value
