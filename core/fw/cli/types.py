"""Value types the CLI and the YAML config share: human-readable sizes and JSON values."""

from __future__ import annotations

import json
from typing import Any

import click

from fw.config.sizes import parse_size

class SizeType(click.ParamType):
    name = "size"

    def convert(self, value: Any, param, ctx) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class JsonType(click.ParamType):
    """A JSON value: a JSON string on the command line, or already parsed (YAML, dotted keys)."""

    name = "json"

    def convert(self, value: Any, param, ctx) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON ({exc.msg} at position {exc.pos}): {value!r}", param, ctx)


SIZE = SizeType()
JSON = JsonType()
