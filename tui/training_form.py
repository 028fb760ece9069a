"""What the new-training form needs besides widgets: reading a trainer's `TrainingInput` schema into
fields and reading the extra `name=value` pairs. Typed text becomes JSON values, and images a zip,
by core.inputs, as in the CLI."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from core.errors import BadArgumentError
from core.inputs import spec


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "string", "integer", "number", "boolean", "file"
    required: bool
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def fields_of(schema: dict[str, Any]) -> list[Field]:
    """The form's fields, in the schema's `x-order` (required first when there is none)."""
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        prop = spec(schema, name)
        kind = str(prop.get("type") or "string")
        if prop.get("format") == "uri":
            kind = "file"
        choices = tuple(str(c) for c in prop.get("enum") or ())
        fields.append(Field(name, kind if kind in ("string", "integer", "number", "boolean", "file") else "string",
                            name in required, prop.get("default"), str(prop.get("description") or ""),
                            choices, prop.get("minimum"), prop.get("maximum")))
    order = {name: (properties[name] or {}).get("x-order", 10_000) if isinstance(properties[name], dict) else 10_000
             for name in properties}
    fields.sort(key=lambda f: (order.get(f.name, 10_000), not f.required, f.name))
    return fields


def images_field(fields: list[Field]) -> str | None:
    """The input that takes the training data: the first file input, required ones first."""
    files = [f for f in fields if f.kind == "file"]
    files.sort(key=lambda f: not f.required)
    return files[0].name if files else None


def parse_pairs(text: str) -> dict[str, str]:
    """`steps=1000 trigger_word=TOK` → {"steps": "1000", "trigger_word": "TOK"} (values typed later)."""
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise BadArgumentError(f"cannot read the extra inputs ({error}): write name=value pairs") from None
    pairs = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise BadArgumentError(f"{word!r} is not name=value: write e.g. steps=1000")
        pairs[name] = value
    return pairs
