"""Schema compatibility: which schema changes keep which data valid.

The core is a *sound* subschema test, `covers(wide, narrow)`: when it finds no problem,
every instance valid under ``narrow`` is valid under ``wide``. It understands the keywords
the DSL compiles to (types, properties, required, additionalProperties, items, enum, bounds,
lengths, ``$ref`` into ``$defs``, ``allOf``); any other keyword must be unchanged, or the
change is reported as one it cannot prove safe. It never reports "compatible" wrongly, which
a property-based test checks (tests/schema/test_compat_hypothesis.py).

Modes map onto it:

* BACKWARD: ``covers(new, old)`` (data written under old stays valid);
* FORWARD: ``covers(old, new)``;
* FULL: both; ``*_TRANSITIVE`` against every earlier version instead of the latest.

Separately, the TYPE rule (MRK-7) reports every property whose type changed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jsonschema_rs

from reeldb import _json
from reeldb.errors import Incompatibility
from reeldb.schema.builtins import X_ORDERED, X_TYPE
from reeldb.schema.model import CompatibilityMode

__all__ = ["covers", "mode_incompatibilities", "type_changes"]

_ANNOTATIONS: Final = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$defs",
        "$schema",
        "$id",
        "$anchor",
        "$dynamicAnchor",
        "format",
    }
)
# `format` is an annotation in 2020-12; the DSL's timestamp enforces its pattern instead.
_HANDLED: Final = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "uniqueItems",
        "allOf",
        "$ref",
        "pattern",
    }
)
_MAX_DEPTH: Final = 48
_JSON_TYPES: Final = ("null", "boolean", "object", "array", "number", "integer", "string")


@dataclass(frozen=True, slots=True)
class _Side:
    schema: Any
    root: dict[str, Any]
    label: str


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    """Inline a local ``$ref`` (``#/$defs/...``); siblings of ``$ref`` become ``allOf``."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/") or seen > 32:
            return schema  # non-local or too deep: left opaque
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                return schema
            target = target[part]
        siblings = {
            k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS and k != X_TYPE
        }
        schema = {"allOf": [target, siblings]} if siblings else target
        seen += 1
    return schema


def _refs_agree(value: Any, a: dict[str, Any], b: dict[str, Any], seen: set[str]) -> bool:
    """Whether every ``$ref`` reachable from ``value`` means the same in roots ``a`` and ``b``."""
    if isinstance(value, list):
        return all(_refs_agree(v, a, b, seen) for v in value)
    if not isinstance(value, dict):
        return True
    ref = value.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        seen.add(ref)
        left, right = _resolve({"$ref": ref}, a), _resolve({"$ref": ref}, b)
        if "$ref" in (left if isinstance(left, dict) else {}) or not _json.same(left, right):
            return False  # unresolvable (non-local) or defined differently
        if not _refs_agree(left, a, b, seen):
            return False
    return all(_refs_agree(v, a, b, seen) for k, v in value.items() if k != "$ref")


def _types(schema: dict[str, Any]) -> set[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    names = {declared} if isinstance(declared, str) else set(declared)
    if "number" in names:
        names.add("integer")
    return names


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _values_valid(values: Sequence[Any], wide: _Side) -> list[Any]:
    """The values that ``wide`` rejects (used when the narrow side is an enum or const)."""
    schema = wide.schema
    if isinstance(schema, dict):
        schema = {**schema, "$defs": wide.root.get("$defs", {})}
    try:
        validator = jsonschema_rs.validator_for(schema, offline=True)
    except (jsonschema_rs.ValidationError, ValueError, jsonschema_rs.ReferencingError):
        return list(values)
    return [value for value in values if not validator.is_valid(value)]


def covers(wide: _Side, narrow: _Side, path: str) -> list[tuple[str, str]]:
    """Problems preventing "every instance valid under ``narrow`` is valid under ``wide``".

    Args:
        wide: The schema that must accept.
        narrow: The schema whose instances must be accepted.
        path: The JSON path reached so far (``$.tracks[*].label``).

    Returns:
        ``(path, message)`` pairs; empty means proven compatible.
    """
    if path.count(".") + path.count("[") > _MAX_DEPTH:
        return [(path, "schema nests too deeply (or recursively) to prove compatible")]
    w = _resolve(wide.schema, wide.root)
    n = _resolve(narrow.schema, narrow.root)
    if w is True or n is False or w == {}:
        return []
    if w is False:
        return [(path, f"{wide.label} accepts nothing here, {narrow.label} accepts values")]
    if n is True:
        n = {}
    if not isinstance(w, dict) or not isinstance(n, dict):
        return [(path, "unrecognised schema form")]
    if _json.same(w, n) and (
        wide.root is narrow.root or _refs_agree(w, wide.root, narrow.root, set())
    ):
        return []
    if isinstance(w, dict) and "$ref" in w:
        return [(path, f"cannot resolve $ref {w['$ref']!r} in {wide.label}")]
    for key in ("unevaluatedProperties", "unevaluatedItems"):
        if key in w and w[key] is not True:
            # Its meaning depends on every sibling keyword: only identical schemas are safe.
            return [(path, f"cannot prove '{key}' in {wide.label} holds for {narrow.label}")]
    problems: list[tuple[str, str]] = []

    # A narrow enum/const: decide by validating each allowed value.
    finite = n.get("enum") if "enum" in n else ([n["const"]] if "const" in n else None)
    if isinstance(finite, list) and not any(k in n for k in ("allOf", "$ref")):
        rejected = _values_valid(finite, _Side(w, wide.root, wide.label))
        if rejected:
            shown = ", ".join(repr(v) for v in rejected[:5])
            problems.append((path, f"{narrow.label} allows {shown}, which {wide.label} rejects"))
        return problems

    if "allOf" in n and "allOf" not in w:
        # narrow = base AND each part: it is enough that one of them is covered.
        base = {k: v for k, v in n.items() if k != "allOf"}
        options = [base, *n["allOf"]]
        attempts = [covers(wide, _Side(o, narrow.root, narrow.label), path) for o in options]
        return [] if any(not a for a in attempts) else attempts[0]

    for key in w:
        if key in _ANNOTATIONS or key in _HANDLED or (key.startswith("x-") and key != X_ORDERED):
            continue
        if (
            key not in n
            or not _json.same(n[key], w[key])
            or not _refs_agree(w[key], wide.root, narrow.root, set())
        ):
            problems.append(
                (path, f"cannot prove '{key}' in {wide.label} holds for {narrow.label}")
            )

    for part in w.get("allOf", []):
        problems += covers(_Side(part, wide.root, wide.label), narrow, path)

    wt, nt = _types(w), _types(n)
    if wt is not None:
        missing = sorted((set(_JSON_TYPES) if nt is None else nt) - wt)
        if missing:
            problems.append(
                (path, f"{narrow.label} allows {'/'.join(missing)}, {wide.label} does not")
            )
            return problems
    if "enum" in w or "const" in w:
        problems.append((path, f"{wide.label} restricts values that {narrow.label} does not"))

    applies = nt if nt is not None else set(_JSON_TYPES)
    if applies & {"number", "integer"}:
        problems += _bounds(w, n, path, wide.label, narrow.label)
    if "string" in applies:
        problems += _limits(w, n, ("minLength", "maxLength"), path, wide.label, narrow.label)
        if "pattern" in w and not _json.same(w["pattern"], n.get("pattern")):
            problems.append((path, f"{wide.label} requires pattern {w['pattern']!r}"))
    if "array" in applies:
        problems += _limits(w, n, ("minItems", "maxItems"), path, wide.label, narrow.label)
        problems += _arrays(wide, narrow, w, n, path)
    if "object" in applies:
        problems += _limits(
            w, n, ("minProperties", "maxProperties"), path, wide.label, narrow.label
        )
        problems += _objects(wide, narrow, w, n, path)
    return problems


def _bounds(w: dict[str, Any], n: dict[str, Any], path: str, wl: str, nl: str) -> list[Any]:
    problems = []
    for low, strict in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        sign = 1 if low == "minimum" else -1
        for key in (low, strict):
            if key not in w:
                continue
            bound = w[key]
            candidates = [(n[k], k == strict) for k in (low, strict) if k in n]
            ok = any(
                sign * value > sign * bound
                or (sign * value == sign * bound and (excl or key == low))
                for value, excl in candidates
            )
            if not ok:
                problems.append((path, f"{wl} requires {key} {bound}, {nl} allows values beyond"))
    if "multipleOf" in w:
        m = n.get("multipleOf")
        if m is None or (m / w["multipleOf"]) % 1 != 0:
            problems.append((path, f"{wl} requires multipleOf {w['multipleOf']}"))
    return problems


def _limits(
    w: dict[str, Any], n: dict[str, Any], keys: tuple[str, str], path: str, wl: str, nl: str
) -> list[Any]:
    low, high = keys
    problems = []
    if low in w and n.get(low, 0) < w[low]:
        problems.append((path, f"{wl} requires {low} {w[low]}, {nl} allows fewer"))
    if high in w and (high not in n or n[high] > w[high]):
        problems.append((path, f"{wl} requires {high} {w[high]}, {nl} allows more"))
    return problems


def _arrays(wide: _Side, narrow: _Side, w: Any, n: Any, path: str) -> list[Any]:
    problems = []
    if w.get("uniqueItems") and not n.get("uniqueItems"):
        problems.append((path, f"{wide.label} requires unique items"))
    w_prefix, n_prefix = w.get("prefixItems", []), n.get("prefixItems", [])
    w_items, n_items = w.get("items", True), n.get("items", True)
    for index in range(max(len(w_prefix), len(n_prefix))):
        ws = w_prefix[index] if index < len(w_prefix) else w_items
        ns = n_prefix[index] if index < len(n_prefix) else n_items
        problems += covers(
            _Side(ws, wide.root, wide.label),
            _Side(ns, narrow.root, narrow.label),
            f"{path}[{index}]",
        )
    problems += covers(
        _Side(w_items, wide.root, wide.label),
        _Side(n_items, narrow.root, narrow.label),
        f"{path}[*]",
    )
    return problems


@functools.lru_cache(maxsize=1024)
def _pattern_validator(pattern: str) -> Any:
    return jsonschema_rs.validator_for({"patternProperties": {pattern: False}}, offline=True)


def _pattern_matches(pattern: str, name: str) -> bool | None:
    """Whether a ``patternProperties`` regex matches a name, or None if unknown.

    Decided by the validator's own regex dialect: Python's ``re`` differs (digits, ``$``).
    """
    try:
        return not _pattern_validator(pattern).is_valid({name: 0})
    except (jsonschema_rs.ValidationError, ValueError):
        return None


def _governing(schema: dict[str, Any], name: str, extra: Any) -> Any:
    """The schema an object applies to its member ``name`` (2020-12 applicator rules)."""
    if name in schema.get("properties", {}):
        return schema["properties"][name]
    matched = []
    for pattern, sub in schema.get("patternProperties", {}).items():
        matches = _pattern_matches(pattern, name)
        if matches is None:
            return False  # cannot tell: assume the worst for this side
        if matches:
            matched.append(sub)
    if matched:
        return matched[0] if len(matched) == 1 else {"allOf": matched}
    return extra


def _objects(wide: _Side, narrow: _Side, w: Any, n: Any, path: str) -> list[Any]:
    problems = []
    w_props, n_props = w.get("properties", {}), n.get("properties", {})
    w_extra, n_extra = w.get("additionalProperties", True), n.get("additionalProperties", True)
    if not _json.same(w.get("patternProperties"), n.get("patternProperties")):
        problems.append((path, "cannot prove patternProperties compatible"))
    n_required = set(n.get("required", []))
    for name in w.get("required", []):
        if name not in n_required:
            state = "optional" if name in n.get("properties", {}) else "absent"
            problems.append(
                (f"{path}.{name}", f"mandatory in {wide.label} but {state} in {narrow.label}")
            )
    for name in dict.fromkeys([*w_props, *n_props]):
        sub = f"{path}.{name}"
        ws = _governing(w, name, w_extra)
        ns = _governing(n, name, n_extra)
        if name not in w_props and ws is False and ns is not False:
            problems.append((sub, f"{narrow.label} allows '{name}', {wide.label} does not"))
            continue
        if name not in n_props and ns is True and ws is not True:
            problems.append(
                (
                    sub,
                    f"{wide.label} constrains '{name}', which {narrow.label} "
                    "leaves open (additionalProperties)",
                )
            )
            continue
        problems += covers(
            _Side(ws, wide.root, wide.label), _Side(ns, narrow.root, narrow.label), sub
        )
    if w_extra is False and n_extra is not False:
        problems.append(
            (f"{path}.*", f"{wide.label} allows no properties beyond its own, {narrow.label} does")
        )
    else:
        problems += covers(
            _Side(w_extra, wide.root, wide.label),
            _Side(n_extra, narrow.root, narrow.label),
            f"{path}.*",
        )
    return problems


def _signature(schema: Any, root: dict[str, Any]) -> str | None:
    if not isinstance(schema, dict):
        return None
    if X_TYPE in schema:
        return str(schema[X_TYPE])
    resolved = _resolve(schema, root)
    if isinstance(resolved, dict) and "type" in resolved:
        declared = resolved["type"]
        return declared if isinstance(declared, str) else "/".join(sorted(declared))
    return None


def _walk(schema: Any, root: dict[str, Any], path: str, depth: int = 0) -> Iterator[Any]:
    """Yield ``(path, schema)`` for every property reachable through objects and arrays."""
    resolved = _resolve(schema, root)
    if not isinstance(resolved, dict) or depth > 24:
        return
    for part in resolved.get("allOf", []):
        yield from _walk(part, root, path, depth + 1)
    for name, sub in resolved.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _walk(sub, root, f"{path}.{name}", depth + 1)
    if isinstance(resolved.get("items"), dict):
        yield f"{path}[*]", resolved["items"]  # a list's item type is part of its type
        yield from _walk(resolved["items"], root, f"{path}[*]", depth + 1)


def type_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Incompatibility]:
    """Every property whose type differs between two schemas (the TYPE rule, MRK-7).

    Args:
        old: The earlier compiled JSON Schema.
        new: The candidate compiled JSON Schema.

    Returns:
        One incompatibility per changed property.
    """
    before: dict[str, str | None] = {}
    for path, sub in _walk(old, old, "$"):
        before.setdefault(path, _signature(sub, old))
    found: dict[str, Incompatibility] = {}
    for path, sub in _walk(new, new, "$"):
        if path in before and path not in found:
            was, now = before[path], _signature(sub, new)
            if was is not None and now is not None and was != now:
                found[path] = Incompatibility(
                    path, f"property type changed from {was} to {now}", "TYPE"
                )
    return list(found.values())


def mode_incompatibilities(
    mode: CompatibilityMode,
    candidate: dict[str, Any],
    candidate_label: str,
    previous: Sequence[tuple[str, dict[str, Any]]],
    *,
    skip_paths: frozenset[str] = frozenset(),
) -> list[Incompatibility]:
    """Check a candidate against earlier versions under a compatibility mode.

    Args:
        mode: The mode.
        candidate: The candidate compiled JSON Schema.
        candidate_label: How the candidate is named in messages (``v3``).
        previous: Earlier versions as ``(label, json_schema)``, oldest first.
        skip_paths: Paths already reported (type changes), not reported twice.

    Returns:
        Every incompatibility, each tagged with the mode's name.
    """
    if mode is CompatibilityMode.NONE or not previous:
        return []
    targets = previous if mode.transitive else previous[-1:]
    out: dict[tuple[str, str], Incompatibility] = {}
    new = _Side(candidate, candidate, candidate_label)
    for label, schema in targets:
        old = _Side(schema, schema, label)
        checks = []
        if mode.backward:
            checks.append(("BACKWARD", covers(new, old, "$")))
        if mode.forward:
            checks.append(("FORWARD", covers(old, new, "$")))
        for rule, problems in checks:
            for path, message in problems:
                if path in skip_paths or any(path.startswith(p + ".") for p in skip_paths):
                    continue
                out.setdefault((path, message), Incompatibility(path, message, rule))
    return list(out.values())
