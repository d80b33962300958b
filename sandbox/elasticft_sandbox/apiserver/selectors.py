"""Label and field selectors in the string syntax of list and watch query parameters."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

_SET_REQUIREMENT = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQUALITY_REQUIREMENT = re.compile(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*([^=!\s]*)\s*$")
_EXISTENCE_REQUIREMENT = re.compile(r"^\s*(!?)\s*([^!=\s()]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    """`key op values`: op is one of =, !=, in, notin, exists, !exists."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # != and notin also match objects that lack the key, as in Kubernetes.
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse `app=web,tier!=db,env in (a,b),!canary,gpu` into requirements (all must hold)."""
    requirements = []
    for part in _split_top_level(text):
        if match := _SET_REQUIREMENT.match(part):
            values = frozenset(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append(Requirement(match.group(1), match.group(2), values))
        elif match := _EQUALITY_REQUIREMENT.match(part):
            op = "!=" if match.group(2) == "!=" else "="
            requirements.append(Requirement(match.group(1), op, frozenset([match.group(3)])))
        elif match := _EXISTENCE_REQUIREMENT.match(part):
            requirements.append(Requirement(match.group(2), "!exists" if match.group(1) else "exists"))
        else:
            raise ApiError(400, f"unable to parse requirement: {part!r}")
    return requirements


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value at a dotted path (`spec.nodeName`, `involvedObject.uid`); "" when absent."""
    value: Any = obj
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return ""
        value = value[key]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    """Parse `metadata.name=x,status.phase!=Failed` into (path, must_equal, value) triples."""
    terms = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise ApiError(400, f"invalid field selector: {part!r}")
        terms.append((match.group(1), match.group(2) != "!=", match.group(3)))
    return terms


ObjectFilter = Callable[[Mapping[str, Any]], bool]


def object_filter(label_selector: str, field_selector: str) -> ObjectFilter | None:
    """One predicate over whole objects for both selectors; None when neither selects anything."""
    labels = parse_label_selector(label_selector) if label_selector else []
    fields = parse_field_selector(field_selector) if field_selector else []
    if not labels and not fields:
        return None

    def matches(obj: Mapping[str, Any]) -> bool:
        object_labels = obj.get("metadata", {}).get("labels") or {}
        if not all(requirement.matches(object_labels) for requirement in labels):
            return False
        return all((field_value(obj, path) == value) == equal for path, equal, value in fields)

    return matches
