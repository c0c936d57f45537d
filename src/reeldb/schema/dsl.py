"""The reeldb schema DSL: parse a definition, resolve its parents, compile to JSON Schema 2020-12.

A definition is JSON. Three shapes are accepted:

* **properties** (Marken style; ``type``/``name``, ``version``, ``extends``, and ``properties``
  or ``keys.properties``)::

      {"name": "CHARACTER_IN_FRAME", "extends": ["TEMPORAL_SPATIAL_BASE", "LABELED_BASE"],
       "properties": {"characterName": {"type": "string", "mandatory": true}}}

* **document** (a 5-level media document; ``levels`` with properties per level)::

      {"name": "face_detection",
       "levels": {"event": {"properties": {"label": {"type": "keyword", "mandatory": true}}},
                  "region": {"properties": {"person": {"type": "keyword"}}}}}

* **plain JSON Schema 2020-12** (``$schema`` names the 2020-12 dialect), used as is.

Multiple inheritance: parents merge in declared order and the lineage is the C3
linearisation (as Python's MRO), so resolution is deterministic. A property that two parents
define with different types, or that a child redefines with another type, is an error naming
both sides. Same-typed definitions merge: mandatory if any side says so, and every side's
keywords must hold (``allOf``).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jsonschema_rs

from reeldb import _json
from reeldb.errors import InvalidSchemaError, ValidationError, Violation
from reeldb.model.names import check_schema_name, check_version
from reeldb.schema.builtins import (
    DIALECT,
    PROPERTY_TYPES,
    SCALAR_TYPES,
    STRUCTURED_TYPES,
    X_INDEXED,
    X_REELDB,
    X_TYPE,
    structured_defs,
)
from reeldb.schema.model import CompatibilityMode, SchemaKind

__all__ = [
    "LEVELS",
    "CompiledSchema",
    "ParentRef",
    "ParsedSchema",
    "compile_schema",
    "parse_definition",
]

LEVELS: Final = ("asset", "track", "component", "event", "region")

_JSON_SCHEMA_KEYWORDS: Final = frozenset(
    """$id $schema $ref $anchor $dynamicRef $dynamicAnchor $vocabulary $comment $defs
    allOf anyOf oneOf not if then else dependentSchemas prefixItems items contains properties
    patternProperties additionalProperties propertyNames unevaluatedItems unevaluatedProperties
    type const enum multipleOf maximum exclusiveMaximum minimum exclusiveMinimum maxLength
    minLength pattern maxItems minItems uniqueItems maxContains minContains maxProperties
    minProperties required dependentRequired title description default deprecated readOnly
    writeOnly examples format contentEncoding contentMediaType contentSchema""".split()
)
_DSL_PROPERTY_KEYS: Final = frozenset({"type", "mandatory", "indexed", "values", "items"})
_TOP_KEYS: Final = frozenset(
    {
        "name",
        "type",
        "version",
        "description",
        "extends",
        "properties",
        "keys",
        "levels",
        "compatibility",
        "additionalProperties",
    }
)
_LEVEL_KEYS: Final = frozenset({"properties", "extends", "additionalProperties", "description"})

# Structural keys of each level of a media document; user properties may not reuse them.
_RESERVED: Final[dict[str, dict[str, Any]]] = {
    "asset": {},
    "track": {
        "frame_rate": {"$ref": "#/$defs/frame_rate"},
        "components": {"type": "array", "items": {"$ref": "#/$defs/component"}},
    },
    "component": {"events": {"type": "array", "items": {"$ref": "#/$defs/event"}}},
    "event": {
        "time_range": {X_TYPE: "time_range", "$ref": "#/$defs/time_range"},
        "regions": {"type": "array", "items": {"$ref": "#/$defs/region"}},
    },
    "region": {
        "bounding_box": {X_TYPE: "bounding_box", "$ref": "#/$defs/bounding_box"},
        "time_range": {X_TYPE: "time_range", "$ref": "#/$defs/time_range"},
    },
}
_RESERVED_REQUIRED: Final = {"event": ["time_range"], "region": ["bounding_box"]}


@dataclass(frozen=True, slots=True)
class ParentRef:
    """A parent named in ``extends``: a schema name and an optional pinned version."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name} v{self.version}"


@dataclass(frozen=True, slots=True)
class _Prop:
    type: str
    mandatory: bool
    schema: dict[str, Any]
    origin: str


@dataclass(frozen=True, slots=True)
class _PropertySet:
    extends: tuple[ParentRef, ...]
    properties: dict[str, _Prop]
    additional: bool


@dataclass(frozen=True, slots=True)
class ParsedSchema:
    """A checked definition, not yet resolved against its parents.

    Attributes:
        kind: What the schema describes.
        name: The schema name, if the definition carries one.
        version: The requested version, if the definition carries one.
        description: Free text.
        compatibility: The compatibility mode the definition asks for, if any.
        definition: The definition as given.
    """

    kind: SchemaKind
    name: str | None
    version: int | None
    description: str
    compatibility: CompatibilityMode | None
    definition: dict[str, Any]
    body: _PropertySet | dict[str, _PropertySet] | None

    @property
    def parents(self) -> tuple[ParentRef, ...]:
        """Every parent named anywhere in the definition, in order, without repeats."""
        if isinstance(self.body, _PropertySet):
            return self.body.extends
        if isinstance(self.body, dict):
            seen: dict[ParentRef, None] = {}
            for level in self.body.values():
                seen.update(dict.fromkeys(level.extends))
            return tuple(seen)
        return ()


@dataclass(frozen=True, slots=True)
class ParentInfo:
    """What the compiler needs to know about a resolved parent schema version."""

    label: str
    kind: SchemaKind
    resolved: dict[str, Any]
    lineage: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """The result of compiling a definition.

    Attributes:
        json_schema: The standalone JSON Schema 2020-12 document.
        resolved: Properties after inheritance (see `SchemaVersion.resolved`).
        lineage: Self then ancestors, C3 order.
        reeldb_keywords: Whether the validator needs reeldb's custom keywords.
    """

    json_schema: dict[str, Any]
    resolved: dict[str, Any]
    lineage: tuple[str, ...]
    reeldb_keywords: bool


class _Errors:
    def __init__(self) -> None:
        self.items: list[Violation] = []

    def add(self, pointer: str, message: str) -> None:
        self.items.append(Violation(pointer, message))

    def raise_if_any(self, head: str) -> None:
        if self.items:
            raise InvalidSchemaError(head, self.items)


def _esc(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _hint(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_definition(definition: Any, *, name: str | None = None) -> ParsedSchema:
    """Check a schema definition and classify it.

    Args:
        definition: The definition (decoded JSON).
        name: The schema name when the definition has none (plain JSON Schema); must agree
            with the definition's own name if both are given.

    Returns:
        The parsed definition.

    Raises:
        InvalidSchemaError: Every problem found, each with a JSON pointer into the definition.
    """
    if not isinstance(definition, Mapping):
        raise InvalidSchemaError(
            f"a schema definition is a JSON object; got {type(definition).__name__}"
        )
    definition = dict(definition)
    if "$schema" in definition:
        return _parse_json_schema(definition, name)
    errors = _Errors()
    for key in definition:
        if key not in _TOP_KEYS:
            errors.add(f"/{_esc(key)}", f"unknown key{_hint(key, _TOP_KEYS)}")
    own_name = definition.get("name", definition.get("type"))
    if "name" in definition and "type" in definition:
        errors.add("/type", "give the schema name once, as 'name' (or Marken's 'type')")
    if own_name is None:
        own_name = name
    if own_name is None:
        errors.add("/name", "missing schema name")
    elif name is not None and own_name != name:
        errors.add("/name", f"definition names the schema {own_name!r}, not {name!r}")
    if own_name is not None:
        _collect(errors, "/name", check_schema_name, own_name)
    version = definition.get("version")
    if version is not None:
        _collect(errors, "/version", check_version, version)
    description = definition.get("description", "")
    if not isinstance(description, str):
        errors.add("/description", "description must be a string")
    compatibility = None
    if "compatibility" in definition:
        compatibility = _collect(
            errors, "/compatibility", CompatibilityMode.parse, definition["compatibility"]
        )

    body: _PropertySet | dict[str, _PropertySet] | None
    if "levels" in definition:
        for key in ("properties", "keys", "extends", "additionalProperties"):
            if key in definition:
                errors.add(
                    f"/{key}",
                    f"a document schema has '{key}' per level (levels.<level>.{key}), "
                    "not at the top",
                )
        body = _parse_levels(definition["levels"], errors)
        kind = SchemaKind.DOCUMENT
    else:
        props = definition.get("properties")
        if "keys" in definition:
            keys = definition["keys"]
            if "properties" in definition:
                errors.add("/keys", "give properties once: 'properties' or 'keys.properties'")
            if not isinstance(keys, Mapping) or set(keys) != {"properties"}:
                errors.add("/keys", "'keys' holds exactly one member, 'properties'")
            else:
                props = keys["properties"]
        pointer = "/keys/properties" if "keys" in definition else "/properties"
        body = _parse_property_set(definition, props or {}, pointer, "", errors)
        kind = SchemaKind.PROPERTIES
    errors.raise_if_any(f"invalid schema definition {own_name or ''}".rstrip())
    return ParsedSchema(
        kind=kind,
        name=own_name,
        version=version,
        description=description,
        compatibility=compatibility,
        definition=definition,
        body=body,
    )


def _collect(errors: _Errors, pointer: str, check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except ValidationError as exc:
        errors.add(pointer, str(exc))
        return None


def _parse_json_schema(definition: dict[str, Any], name: str | None) -> ParsedSchema:
    if definition["$schema"].rstrip("#") != DIALECT:
        raise InvalidSchemaError(
            f"unsupported JSON Schema dialect {definition['$schema']!r}: reeldb accepts "
            f"JSON Schema 2020-12 ({DIALECT})"
        )
    name = name if name is not None else definition.get("title")
    if name is None:
        raise InvalidSchemaError("a plain JSON Schema needs a name: pass one, or set 'title'")
    check_schema_name(name)
    _meta_check(definition, "invalid JSON Schema")
    description = definition.get("description", "")
    return ParsedSchema(
        kind=SchemaKind.JSON_SCHEMA,
        name=name,
        version=None,
        description=description if isinstance(description, str) else "",
        compatibility=None,
        definition=definition,
        body=None,
    )


def _meta_check(schema: dict[str, Any], head: str) -> None:
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        pointer = "".join(f"/{_esc(str(part))}" for part in exc.instance_path)
        raise InvalidSchemaError(head, [Violation(pointer, exc.message)]) from None


def _parse_levels(levels: Any, errors: _Errors) -> dict[str, _PropertySet]:
    if not isinstance(levels, Mapping):
        errors.add("/levels", f"levels maps level names ({', '.join(LEVELS)}) to property sets")
        return {}
    parsed: dict[str, _PropertySet] = {}
    for level, spec in levels.items():
        pointer = f"/levels/{_esc(level)}"
        if level not in LEVELS:
            errors.add(
                pointer, f"unknown level{_hint(level, LEVELS)}; levels are {', '.join(LEVELS)}"
            )
            continue
        if not isinstance(spec, Mapping):
            errors.add(pointer, "a level is an object with 'properties' (and 'extends')")
            continue
        for key in spec:
            if key not in _LEVEL_KEYS:
                errors.add(f"{pointer}/{_esc(key)}", f"unknown key{_hint(key, _LEVEL_KEYS)}")
        parsed[level] = _parse_property_set(
            spec, spec.get("properties", {}), f"{pointer}/properties", level, errors
        )
    return {level: parsed[level] for level in LEVELS if level in parsed}


def _parse_property_set(
    holder: Mapping[str, Any],
    props: Any,
    pointer: str,
    level: str,
    errors: _Errors,
) -> _PropertySet:
    base = pointer.rsplit("/", 1)[0] if "/keys/" not in pointer else ""
    extends = _parse_extends(holder.get("extends", []), f"{base}/extends", errors)
    additional = holder.get("additionalProperties", False)
    if not isinstance(additional, bool):
        errors.add(f"{base}/additionalProperties", "must be true or false")
        additional = False
    properties: dict[str, _Prop] = {}
    if not isinstance(props, Mapping):
        errors.add(pointer, "properties maps property names to {type, mandatory, ...}")
        return _PropertySet(extends, properties, additional)
    reserved = _RESERVED.get(level, {})
    for prop_name, spec in props.items():
        prop_pointer = f"{pointer}/{_esc(prop_name)}"
        if prop_name in reserved:
            errors.add(
                prop_pointer,
                f"'{prop_name}' is a structural key of the {level} level and cannot be redefined",
            )
            continue
        prop = _compile_property(spec, prop_pointer, errors, top=True)
        if prop is not None:
            properties[prop_name] = prop
    return _PropertySet(extends, properties, additional)


def _parse_extends(value: Any, pointer: str, errors: _Errors) -> tuple[ParentRef, ...]:
    if not isinstance(value, list):
        errors.add(pointer, "extends is a list of schema names (or {name, version} objects)")
        return ()
    parents: list[ParentRef] = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            ref = ParentRef(item)
        elif isinstance(item, Mapping) and set(item) <= {"name", "version"} and "name" in item:
            ref = ParentRef(item["name"], item.get("version"))
            if ref.version is not None:
                _collect(errors, f"{pointer}/{index}/version", check_version, ref.version)
        else:
            errors.add(f"{pointer}/{index}", "a parent is a name or {name, version}")
            continue
        _collect(errors, f"{pointer}/{index}", check_schema_name, ref.name)
        if ref in parents:
            errors.add(f"{pointer}/{index}", f"parent {ref} is listed twice")
        parents.append(ref)
    return tuple(parents)


def _compile_property(spec: Any, pointer: str, errors: _Errors, *, top: bool) -> _Prop | None:
    if not isinstance(spec, Mapping):
        errors.add(pointer, 'a property is an object such as {"type": "string"}')
        return None
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in PROPERTY_TYPES:
        hint = _hint(str(kind), PROPERTY_TYPES)
        errors.add(
            f"{pointer}/type",
            f"unknown property type {kind!r}{hint}; types are {', '.join(PROPERTY_TYPES)}",
        )
        return None
    mandatory = spec.get("mandatory", False)
    if not isinstance(mandatory, bool):
        errors.add(f"{pointer}/mandatory", "mandatory must be true or false")
    elif mandatory and not top:
        errors.add(f"{pointer}/mandatory", "list items cannot be mandatory")
    indexed = spec.get("indexed")
    if indexed is not None and not isinstance(indexed, bool):
        errors.add(f"{pointer}/indexed", "indexed must be true or false")
    schema: dict[str, Any] = {X_TYPE: kind}
    if kind in SCALAR_TYPES:
        schema.update(SCALAR_TYPES[kind])
    elif kind in STRUCTURED_TYPES:
        schema["$ref"] = f"#/$defs/{kind}"
    elif kind == "enum":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            errors.add(f"{pointer}/values", "an enum needs a non-empty list of 'values'")
        elif any(isinstance(v, dict | list) for v in values):
            errors.add(f"{pointer}/values", "enum values are strings, numbers, booleans or null")
        else:
            schema["enum"] = list(values)
    elif kind == "list":
        items = spec.get("items")
        item = (
            _compile_property(items, f"{pointer}/items", errors, top=False)
            if items is not None
            else None
        )
        if items is None:
            errors.add(f"{pointer}/items", 'a list needs \'items\', e.g. {"type": "string"}')
        schema.update({"type": "array", "items": item.schema if item else {}})
    elif kind == "object":
        schema.update(_compile_object(spec, pointer, errors))
    for key, value in spec.items():
        if key in _DSL_PROPERTY_KEYS or (kind == "object" and key == "properties"):
            if key == "values" and kind != "enum":
                errors.add(f"{pointer}/values", "'values' is only for type enum")
            if key == "items" and kind != "list":
                errors.add(f"{pointer}/items", "'items' is only for type list")
            continue
        if key == "required":
            errors.add(f"{pointer}/required", "mark nested properties 'mandatory' instead")
        elif key.startswith("x-") or key in _JSON_SCHEMA_KEYWORDS:
            if kind != "object" or key != "additionalProperties":
                schema[key] = copy.deepcopy(value)
        else:
            errors.add(
                f"{pointer}/{_esc(key)}",
                f"unknown keyword{_hint(key, _JSON_SCHEMA_KEYWORDS | _DSL_PROPERTY_KEYS)}",
            )
    if indexed is not None:
        schema[X_INDEXED] = indexed
    return _Prop(kind, mandatory is True, schema, origin="")


def _compile_object(spec: Mapping[str, Any], pointer: str, errors: _Errors) -> dict[str, Any]:
    nested = spec.get("properties", {})
    if not isinstance(nested, Mapping):
        errors.add(f"{pointer}/properties", "an object's properties map names to properties")
        nested = {}
    props: dict[str, Any] = {}
    required: list[str] = []
    for key, sub in nested.items():
        prop = _compile_property(sub, f"{pointer}/properties/{_esc(key)}", errors, top=True)
        if prop is not None:
            props[key] = prop.schema
            if prop.mandatory:
                required.append(key)
    additional = spec.get("additionalProperties", False)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    out["additionalProperties"] = copy.deepcopy(additional)
    return out


def _c3(own: str, parent_lineages: list[tuple[str, ...]]) -> tuple[str, ...]:
    sequences = [list(lineage) for lineage in parent_lineages]
    sequences.append([lineage[0] for lineage in parent_lineages])
    result = [own]
    while True:
        sequences = [seq for seq in sequences if seq]
        if not sequences:
            return tuple(result)
        for seq in sequences:
            head = seq[0]
            if not any(head in other[1:] for other in sequences):
                break
        else:
            raise InvalidSchemaError(
                f"cannot order the parents of {own} consistently (C3 linearisation fails): "
                "two parents list shared ancestors in opposite orders"
            )
        result.append(head)
        for seq in sequences:
            if seq[0] == head:
                del seq[0]


def _merge(a: _Prop, b: _Prop, origin: str) -> _Prop:
    schema = (
        a.schema
        if _json.same(a.schema, b.schema)
        else {X_TYPE: a.type, "allOf": [a.schema, b.schema]}
    )
    return _Prop(a.type, a.mandatory or b.mandatory, schema, a.origin if a == b else origin)


def _resolve_set(
    own_label: str,
    body: _PropertySet,
    parents: Mapping[ParentRef, ParentInfo],
    where: str,
) -> tuple[dict[str, _Prop], tuple[str, ...]]:
    resolved: dict[str, _Prop] = {}
    defined_by: dict[str, str] = {}
    lineages: list[tuple[str, ...]] = []
    for ref in body.extends:
        info = parents[ref]
        if info.kind is not SchemaKind.PROPERTIES:
            raise InvalidSchemaError(
                f"{where}extends {info.label}, a {info.kind.value} schema; only property "
                "schemas (annotation types and bases) can be extended"
            )
        lineages.append(info.lineage)
        for prop_name, raw in info.resolved.items():
            prop = _Prop(raw["type"], raw["mandatory"], raw["schema"], raw["origin"])
            if prop_name not in resolved:
                resolved[prop_name], defined_by[prop_name] = prop, info.label
                continue
            other = resolved[prop_name]
            if other.type != prop.type:
                raise InvalidSchemaError(
                    f"{where}parents disagree on property '{prop_name}': "
                    f"{defined_by[prop_name]} defines it as {other.type}, "
                    f"{info.label} as {prop.type}"
                )
            if not (other.mandatory == prop.mandatory and _json.same(other.schema, prop.schema)):
                resolved[prop_name] = _merge(other, prop, f"{defined_by[prop_name]}+{info.label}")
    for prop_name, own in body.properties.items():
        prop = _Prop(own.type, own.mandatory, own.schema, own_label)
        if prop_name in resolved:
            inherited = resolved[prop_name]
            if inherited.type != prop.type:
                raise InvalidSchemaError(
                    f"{where}property '{prop_name}' is {inherited.type} in parent "
                    f"{defined_by[prop_name]} and cannot become {prop.type} in {own_label}"
                )
            resolved[prop_name] = _merge(inherited, prop, own_label)
        else:
            resolved[prop_name] = prop
    return resolved, _c3(own_label, lineages)


def _object_schema(props: Mapping[str, _Prop], additional: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": {name: prop.schema for name, prop in props.items()},
    }
    required = [name for name, prop in props.items() if prop.mandatory]
    if required:
        out["required"] = required
    out["additionalProperties"] = additional
    return out


def _dump(props: Mapping[str, _Prop]) -> dict[str, Any]:
    return {
        name: {"type": p.type, "mandatory": p.mandatory, "schema": p.schema, "origin": p.origin}
        for name, p in props.items()
    }


def compile_schema(
    parsed: ParsedSchema,
    *,
    label: str,
    parents: Mapping[ParentRef, ParentInfo],
    metadata: Mapping[str, Any],
) -> CompiledSchema:
    """Resolve a parsed definition against its parents and compile it.

    Args:
        parsed: The parsed definition.
        label: How this version is named in lineages and messages (``ns/NAME vN``).
        parents: Every parent named in the definition, resolved to a stored version.
        metadata: Recorded in the compiled schema's ``x-reeldb`` annotation.

    Returns:
        The compiled schema.

    Raises:
        InvalidSchemaError: Parents conflict, cannot be linearised, or are of the wrong kind.
    """
    if parsed.kind is SchemaKind.JSON_SCHEMA:
        return CompiledSchema(copy.deepcopy(parsed.definition), {}, (label,), False)
    head: dict[str, Any] = {"$schema": DIALECT, "title": parsed.name}
    if parsed.description:
        head["description"] = parsed.description
    if isinstance(parsed.body, _PropertySet):
        props, lineage = _resolve_set(label, parsed.body, parents, "")
        schema = {**head, **_object_schema(props, parsed.body.additional)}
        schema["$defs"] = structured_defs(in_track=False)
        resolved: dict[str, Any] = _dump(props)
    else:
        assert isinstance(parsed.body, dict)
        defs = structured_defs(in_track=True)
        resolved = {}
        lineages: list[tuple[str, ...]] = []
        for level in LEVELS:
            body = parsed.body.get(level, _PropertySet((), {}, False))
            props, level_lineage = _resolve_set(label, body, parents, f"level {level}: ")
            lineages.append(level_lineage[1:])
            level_schema = _object_schema(props, body.additional)
            level_schema["properties"].update(copy.deepcopy(_RESERVED[level]))
            required = _RESERVED_REQUIRED.get(level, []) + level_schema.get("required", [])
            if required:
                level_schema["required"] = required
            defs[level] = level_schema
            resolved[level] = _dump(props)
        lineage = (label, *dict.fromkeys(x for lin in lineages for x in lin))
        schema = {
            **head,
            "type": "object",
            "properties": {
                "asset": {"$ref": "#/$defs/asset"},
                "tracks": {"type": "array", "items": {"$ref": "#/$defs/track"}},
            },
            "additionalProperties": False,
        }
        if any(p["mandatory"] for p in resolved["asset"].values()):
            schema["required"] = ["asset"]
        schema["$defs"] = defs
    schema[X_REELDB] = {"kind": parsed.kind.value, **metadata, "lineage": list(lineage)}
    _meta_check(schema, f"schema {label} compiles to an invalid JSON Schema")
    return CompiledSchema(schema, resolved, lineage, True)
