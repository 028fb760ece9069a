"""What the new-training form needs besides widgets: reading a trainer's `TrainingInput` schema into
fields, turning typed text back into JSON values, and packing local training images for upload."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BadArgumentError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".txt", ".caption"}


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
        prop = _merged(prop)
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
    import shlex

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


def _merged(prop: dict[str, Any]) -> dict[str, Any]:
    """Cog wraps enums as `allOf: [{enum...}]`; fold those into the property."""
    merged = dict(prop)
    for part in prop.get("allOf") or []:
        if isinstance(part, dict):
            for key, value in part.items():
                merged.setdefault(key, value)
    return merged


def coerce(field: Field, text: str) -> Any:
    """The JSON value for what was typed; None means "leave it to the trainer's default"."""
    value = text.strip()
    if value == "":
        if field.required and field.default is None:
            raise BadArgumentError(f"{field.name} is required: {field.description or 'give a value'}")
        return None
    if field.kind == "integer":
        try:
            number: float = int(value)
        except ValueError:
            raise BadArgumentError(f"{field.name} must be a whole number, not {value!r}") from None
    elif field.kind == "number":
        try:
            number = float(value)
        except ValueError:
            raise BadArgumentError(f"{field.name} must be a number, not {value!r}") from None
    elif field.kind == "boolean":
        lowered = value.lower()
        if lowered not in ("true", "false", "yes", "no", "1", "0"):
            raise BadArgumentError(f"{field.name} must be true or false, not {value!r}")
        return lowered in ("true", "yes", "1")
    else:
        if field.choices and value not in field.choices:
            raise BadArgumentError(f"{field.name} must be one of {', '.join(field.choices)}, not {value!r}")
        return value
    if field.minimum is not None and number < field.minimum or field.maximum is not None and number > field.maximum:
        raise BadArgumentError(f"{field.name} must be between {field.minimum} and {field.maximum}, not {value}")
    return number


def is_url(text: str) -> bool:
    return text.startswith(("https://", "http://", "data:"))


def pack_images(path: Path) -> tuple[bytes, str]:
    """A local folder of images (zipped here) or a zip file, as (bytes, filename) to upload."""
    path = path.expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not any(p.suffix.lower() not in (".txt", ".caption") for p in files):
            raise BadArgumentError(f"{path} holds no images (.jpg, .png, .webp…): choose the folder with "
                                   "your training images, or a zip of them")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in files:
                archive.write(file, file.relative_to(path).as_posix())
        return buffer.getvalue(), f"{path.name or 'images'}.zip"
    if path.is_file():
        if path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path):
            raise BadArgumentError(f"{path} is not a zip file: give a zip or a folder of images")
        return path.read_bytes(), path.name
    raise BadArgumentError(f"{path} does not exist: give a folder of images, a zip file, or a URL")
