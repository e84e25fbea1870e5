"""The building blocks of the providers' request shapes (openai_shapes.py, anthropic_shapes.py),
and a pydantic validation error said as the one field at fault and what it should be.

Shapes are TypedDicts validated strictly (no "0.5" taken for a number, no `true` for an
integer) that ignore extra keys: the body sent upstream is the client's own, not the validated
copy, so a field a provider adds tomorrow still passes through while a known field of the
wrong type is refused (and ignoring extras costs pydantic about half what keeping them does).
Every union is tagged by a function of the value (`one_of`): pydantic then tries one member,
not all, and reports one error at a path that names only fields and indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import ConfigDict, Discriminator, Field, Tag, ValidationError, with_config
from pydantic_core import ErrorDetails

# Tags are dropped from an error's path: no field name starts with this (a free-form key
# that does, in `metadata` or `logit_bias`, is left out of the path with them).
TAG = "|"
shape = with_config(ConfigDict(extra="ignore", strict=True))

Number = float  # strict: an int or a float, never a bool or a string
PositiveInt = Annotated[int, Field(ge=1)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
JSONObject = dict[str, Any]


def json_kind(value: Any) -> str:
    """The JSON type of a decoded value, as a message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds.get(type(value), type(value).__name__)


def one_of(choose: Callable[[Any], str | None], expected: str, **members: Any) -> Any:
    """A union whose member is named by `choose(value)`; a value it names none for is refused
    as not `expected` (say "a string or an array of content parts")."""
    tagged = tuple(Annotated[member, Tag(TAG + name)] for name, member in members.items())

    def tag(value: Any) -> str | None:
        name = choose(value)
        return TAG + name if isinstance(name, str) and name in members else None

    # Union[*members] is built at run time: the `X | Y` spelling cannot take a tuple.
    return Annotated[Union[tagged], Discriminator(tag, custom_error_type="wrong_shape", custom_error_message=expected)]  # noqa: UP007


def by_json_kind(expected: str, **members: Any) -> Any:
    """A union picked by the value's JSON type: `one_of(..., string=str, array=list[...])`."""
    return one_of(json_kind, expected, **members)


def by_type(expected: str, default: str | None = None, **members: Any) -> Any:
    """A union of objects picked by their `type` field (`default` when it is absent)."""
    def choose(value: Any) -> str | None:
        return value.get("type", default) if isinstance(value, dict) else None
    return one_of(choose, expected, **members)


def error_path(loc: tuple[int | str, ...]) -> str:
    """`('messages', 0, 'content', '|array', 1, 'image_url', 'url')` → `messages[0].content[1].image_url.url`"""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith(TAG):
            path += f".{part}" if path else part
    return path


_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected a boolean",
    "list_type": "expected an array",
    "dict_type": "expected an object",
}
_LIMITS = {
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}",
    "less_than": "must be less than {lt}",
    "too_long": "must have at most {max_length} items",
    "string_too_long": "must have at most {max_length} characters",
}


def describe(error: ErrorDetails) -> str:
    """What is wrong with the value at an error's path, and what it should be."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing" or (value is None and (kind in _EXPECTED or kind == "wrong_shape")):
        return "this field is required"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {json_kind(value)}"
    if kind == "wrong_shape":
        got = f"an object of type {value['type']!r}" if isinstance(value, dict) and "type" in value else json_kind(value)
        return f"expected {error['msg']}, got {got}"
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}, got {value!r}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind in _LIMITS:
        limit = _LIMITS[kind].format(**ctx)
        return limit if kind.endswith("too_long") else f"{limit}, got {value!r}"
    return error["msg"]


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The path and description of a validation's first error (the one the client fixes first)."""
    error = exc.errors(include_url=False)[0]
    return error_path(error["loc"]), describe(error)
