"""Deterministic tool-call arguments that satisfy a tool's JSON schema.

Required properties are filled (all of them when the schema lists none as required), with
the first enum or const value where there is one, else a plain value of the declared type
within any declared bounds. `$ref`s into `$defs`/`definitions` are followed.
"""

from __future__ import annotations

import zlib
from typing import Any

from tokenbrake.tools.emulator.generate import vocabulary

_STRING_FORMATS = {
    "date": "2024-01-15",
    "date-time": "2024-01-15T09:30:00Z",
    "time": "09:30:00",
    "email": "someone@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
}
_MAX_DEPTH = 8


def arguments(schema: Any) -> dict[str, Any]:
    """Arguments for a tool whose parameters are described by `schema` (always an object)."""
    value = _value(schema if isinstance(schema, dict) else {}, schema, "value", 0)
    return value if isinstance(value, dict) else {}


def _value(schema: dict, root: Any, name: str, depth: int) -> Any:
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _value(_first_non_null(schema[key]), root, name, depth)
    kind = _type(schema)
    if depth >= _MAX_DEPTH and kind in ("object", "array"):
        return {} if kind == "object" else []
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        items = given if isinstance(given := schema.get("items"), dict) else {}
        count = max(1, int(schema.get("minItems", 1)))
        return [_value(items, root, name, depth + 1) for _ in range(count)]
    return _scalar(kind, schema, name)


def _object(schema: dict, root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    wanted = schema["required"] if "required" in schema else list(properties)
    return {key: _value(properties.get(key) or {}, root, key, depth + 1) for key in wanted}


def _scalar(kind: str, schema: dict, name: str) -> Any:
    if kind == "integer":
        return int(_bounded(schema, 3))
    if kind == "number":
        return float(_bounded(schema, 2.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") in _STRING_FORMATS:
        return _STRING_FORMATS[schema["format"]]
    vocab = vocabulary()
    seed = zlib.crc32(name.encode())
    text = f"{vocab[seed % len(vocab)]} {vocab[(seed >> 8) % len(vocab)]}"
    return text.ljust(int(schema.get("minLength", 0)), "x")


def _bounded(schema: dict, default: float) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value = default
    if isinstance(low, (int, float)) and value <= low:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, (int, float)) and value >= high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return value


def _type(schema: dict) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind:
        return kind
    if "properties" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _resolve(schema: dict, root: Any) -> dict:
    ref = schema.get("$ref")
    for _ in range(_MAX_DEPTH):
        if not isinstance(ref, str) or not ref.startswith("#/") or not isinstance(root, dict):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return schema
        schema, ref = target, target.get("$ref")
    return schema


def _first_non_null(options: list) -> dict:
    for option in options:
        if isinstance(option, dict) and option.get("type") != "null":
            return option
    return options[0] if isinstance(options[0], dict) else {}
