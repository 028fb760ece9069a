"""A trainer's inputs, with one set of rules for every front (the TUI's form, `replitrack train`,
the simulator): typed text becomes a JSON value by the input's schema type, the values are checked
against the trainer's `TrainingInput` JSON schema with jsonschema, and a folder of training
images becomes the zip that is uploaded.

The rule from text, by the input's type: empty text means "not given" (the trainer's default
applies); a string input takes the text as typed (a number given to it is sent as text); an
integer takes any whole number (`1000`, `1000.0`, `1e3`); a number any finite number; a boolean
`true/false`, `yes/no` or `1/0` in any case; an input of another or no type the text as JSON when
it parses, else as text. What does not fit stays text, so the schema check names the problem.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from core.errors import BadArgumentError

# What Cog accepts for a `format: uri` input: an http(s) URL or a data: URL.
URI = re.compile(r"^(https?://[^\s/]+[^\s]*|data:[^\s,]*,[^\s]*)$", re.IGNORECASE)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_TRUE, _FALSE = frozenset({"true", "yes", "1"}), frozenset({"false", "no", "0"})
# Files a trainer reads from the images zip: pictures and their caption files.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
CAPTION_SUFFIXES = frozenset({".txt", ".caption"})

_FORMATS = FormatChecker(formats=())
_FORMATS.checks("uri")(lambda value: not isinstance(value, str) or bool(URI.match(value)))
_KINDS = {"integer": "a whole number", "number": "a number", "boolean": "true or false", "string": "text",
          "array": "a list", "object": "an object", "null": "null"}


@dataclass(frozen=True)
class InputProblem:
    """One input that does not fit: `rule` is the JSON-schema keyword it breaks (`type`, `enum`,
    `minimum`, `maximum`, `format`, `required`, ...) or `unknown` for a name the trainer lacks."""

    name: str
    rule: str
    expected: Any
    given: Any
    message: str


def spec(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The schema of one input, with Cog's `allOf: [{enum...}]` wrapping folded in."""
    prop = (schema.get("properties") or {}).get(name)
    if not isinstance(prop, dict):
        return {}
    merged = dict(prop)
    for part in prop.get("allOf") or []:
        if isinstance(part, dict):
            for key, value in part.items():
                merged.setdefault(key, value)
    return merged


def from_text(prop: Mapping[str, Any], text: str) -> Any:
    """The JSON value for typed text, by the module's one rule; None when nothing was typed."""
    text = text.strip()
    if not text:
        return None
    kind = prop.get("type")
    if kind == "string":
        return text
    if kind == "boolean":
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    if kind in ("integer", "number"):
        if not _NUMBER.fullmatch(text):
            return text
        if re.fullmatch(r"-?[0-9]+", text):
            return int(text)
        number = float(text)
        return int(number) if kind == "integer" and number.is_integer() else number
    try:
        return json.loads(text)
    except ValueError:
        return text


def values_from_text(schema: Mapping[str, Any], texts: Mapping[str, str]) -> dict[str, Any]:
    """Each typed input as its JSON value; inputs left empty are left out."""
    values = {name: from_text(spec(schema, name), text) for name, text in texts.items()}
    return {name: value for name, value in values.items() if value is not None}


def problems(schema: Mapping[str, Any], values: Mapping[str, Any], *, trainer: str = "the trainer",
             unknown_allowed: bool = False, later: Iterable[str] = ()) -> list[InputProblem]:
    """What is wrong with `values` for this `TrainingInput` schema ([] when nothing): required
    inputs missing (None counts as missing; `later` are filled in afterwards), unknown names
    (unless allowed, as Cog drops them), then at most one problem per given input."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    given = {name: value for name, value in values.items() if value is not None}
    found = [InputProblem(name, "required", True, None, f"{name} is required")
             for name in schema.get("required") or [] if name not in given and name not in set(later)]
    if not unknown_allowed:
        valid = ", ".join(sorted(properties))
        found += [InputProblem(name, "unknown", sorted(properties), given[name],
                               f"{trainer} has no input {name!r}; its inputs are: {valid}")
                  for name in sorted(set(given) - set(properties))]
    shape = {"type": "object", "properties": {name: spec(schema, name) for name in properties}}
    seen: set[str] = set()
    errors = Draft202012Validator(shape, format_checker=_FORMATS).iter_errors(given)
    for error in sorted(errors, key=lambda e: [str(part) for part in e.path]):
        name = str(error.path[0]) if error.path else ""
        if name and name not in seen:
            seen.add(name)
            found.append(InputProblem(name, str(error.validator), error.validator_value, error.instance,
                                      _message(name, str(error.validator), error.validator_value,
                                               error.instance, error.message)))
    return found


def check(schema: Mapping[str, Any], values: Mapping[str, Any], *, trainer: str = "the trainer",
          later: Iterable[str] = ()) -> dict[str, Any]:
    """The values without the empty ones, or BadArgumentError naming every problem."""
    found = problems(schema, values, trainer=trainer, later=later)
    if found:
        raise BadArgumentError("; ".join(problem.message for problem in found))
    return {name: value for name, value in values.items() if value is not None}


def _message(name: str, rule: str, expected: Any, given: Any, fallback: str) -> str:
    shown = repr(given) if isinstance(given, str) else json.dumps(given)
    if rule == "type":
        kinds = [expected] if isinstance(expected, str) else list(expected)
        return f"input {name} must be {' or '.join(_KINDS.get(k, k) for k in kinds)}, not {shown}"
    if rule == "enum":
        return f"input {name} must be one of {', '.join(map(str, expected))}, not {shown}"
    bounds = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
              "exclusiveMaximum": "less than"}
    if rule in bounds:
        return f"input {name} must be {bounds[rule]} {expected}, not {shown}"
    if rule == "format" and expected == "uri":
        return f"input {name} must be a URL (https://… or data:…), not {shown}"
    return f"input {name}: {fallback}"


def images_upload(path: Path) -> tuple[bytes | Path, str]:
    """What to upload for a trainer's images: a folder zipped in memory (its pictures and caption
    files; hidden files and anything else left out), or a zip file as it is."""
    path = path.expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts)
                       and p.suffix.lower() in IMAGE_SUFFIXES | CAPTION_SUFFIXES)
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
            raise BadArgumentError(f"{path} holds no images (.jpg, .png, .webp…): choose the folder with "
                                   "your training images, or a zip of them")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in files:
                archive.write(file, file.relative_to(path).as_posix())
        return buffer.getvalue(), f"{path.name or 'images'}.zip"
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise BadArgumentError(f"{path} is not a zip file: give a zip or a folder of images")
        return path, path.name
    raise BadArgumentError(f"{path}: no such file or folder: give a folder of images, a zip file, or a URL")
