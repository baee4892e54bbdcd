"""Request bodies parsed strictly, before FastAPI validates them.

Python's ``json`` module accepts more than JSON: ``NaN``, ``Infinity`` and ``-Infinity``
(which became a NaN temperature and garbage tokens), nesting deep enough to raise
``RecursionError``, and ``\\ud800`` escapes that leave a lone UTF-16 surrogate in a
``str`` (which no tokenizer, log or response can encode: a 500 with two tracebacks).
Every route with a body goes through ``StrictJSONRoute``, which parses the body here and
refuses those with a 400 naming the field; FastAPI then validates the parsed value.

A large body is parsed and validated on the server's ``PreprocessPool``, not on the event
loop: pydantic needed 2 s for 200,000 tiny chat messages (8 MB), during which /health and
every stream stood still. FastAPI then receives the validated model, which it passes
through without validating it again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

if TYPE_CHECKING:
    from fastapi._compat import ModelField

from fw.errors import InvalidParameterError

#: bodies above this many bytes are parsed and validated on the preprocess pool
POOL_PARSE_BYTES = 256 * 1024


class _NotJSON(ValueError):
    """A construct Python's parser takes but JSON does not have."""


def _refuse_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON number")


def _invalid(reason: str) -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error",
                                    "input": {}, "ctx": {"error": reason}}])


def _may_hold_surrogates(body: bytes) -> bool:
    """Cheap pre-check: a surrogate can only come from an escape \\uD800-\\uDFFF or from
    the raw bytes ED A0-BF (which json decodes with 'surrogatepass')."""
    return b"\\ud" in body or b"\\uD" in body or b"\xed" in body


def _path(parts: tuple[Any, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_lone_surrogate(value: Any) -> str | None:
    """The path (``messages[0].content``) of the first string or key holding a lone
    surrogate, or None. Iterative, so any nesting json accepted is walked."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, parts = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                return _path(parts)
        elif isinstance(item, dict):
            for key, child in item.items():
                if _has_surrogate(key):
                    return _path(parts) or "body"
                if isinstance(child, (str, dict, list)):
                    stack.append((child, parts + (key,)))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, (str, dict, list)):
                    stack.append((child, parts + (index,)))
    return None


def load_json(body: bytes) -> Any:
    """``body`` as a JSON value, or RequestValidationError (not JSON) or
    InvalidParameterError (a lone surrogate, naming where)."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise _invalid(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _NotJSON as exc:
        raise _invalid(str(exc)) from None
    except UnicodeDecodeError:
        raise _invalid("the body is not UTF-8 text") from None
    except RecursionError:
        raise _invalid("the body is nested too deeply") from None
    if _may_hold_surrogates(body):
        where = find_lone_surrogate(value)
        if where is not None:
            raise InvalidParameterError(where, "contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff); "
                                               "text must be valid Unicode")
    return value


def _declares_json(request: Request) -> bool:
    """What FastAPI parses as JSON: no content type, or application/json or */*+json."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return not kind or kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _load_and_validate(body: bytes, field: ModelField) -> Any:
    """The body as ``field``'s model; errors located as FastAPI locates them."""
    value, errors = field.validate(load_json(body), {}, loc=("body",))
    if errors:
        raise RequestValidationError(errors, body=None)
    return value


class ParsedJSONRequest(Request):
    async def parse(self, field: ModelField) -> None:
        """Read and parse the body now; Starlette's ``json()`` then returns the result."""
        body = await self.body()
        if not body:
            return
        if len(body) > POOL_PARSE_BYTES:
            self._json = await self.app.state.fw.preprocess.run(_load_and_validate, body, field)
        else:
            self._json = load_json(body)


class StrictJSONRoute(APIRoute):
    """An APIRoute whose JSON body is parsed by ``load_json``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        field = self.body_field
        if field is None:
            return handler

        async def parse_then_handle(request: Request) -> Response:
            if _declares_json(request):
                request = ParsedJSONRequest(request.scope, request.receive)
                await request.parse(field)
            return await handler(request)

        return parse_then_handle
