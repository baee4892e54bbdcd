"""Finding, reading and compiling chat templates.

Templates run in Jinja's immutable sandbox with the globals and filters that Hugging Face
chat templates rely on (``raise_exception``, ``strftime_now``, a non-ASCII-preserving
``tojson``, loop controls), so a template written for transformers renders the same here.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fw.errors import InvalidParameterError


class TemplateRaised(Exception):
    """``raise_exception(...)`` called by a template: the messages break its rules."""


def _raise_exception(message: str) -> None:
    raise TemplateRaised(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


ENVIRONMENT = _environment()


@lru_cache(maxsize=32)
def compile_template(source: str) -> jinja2.Template:
    """Compile once per distinct template text (the server's, or a trusted request's)."""
    try:
        return ENVIRONMENT.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidParameterError(
            "chat_template", f"the chat template is not valid Jinja (line {exc.lineno}: {exc.message})"
        ) from None


def load_chat_template(value: str | None) -> str | None:
    """The ``--chat-template`` value as template text: the content of a file, or the
    option itself when it holds a template in single-line form (where ``\\n`` and ``\\t``
    stand for a newline and a tab)."""
    if value is None:
        return None
    path = Path(value).expanduser()
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    except OSError:  # a long inline template is no valid file name
        pass
    if "{{" in value or "{%" in value:
        return value.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
    raise ValueError(
        f"{value!r} is neither a readable file nor a Jinja template (a template contains "
        "'{{' or '{%')"
    )


def chat_template_option(value: str | None) -> str | None:
    """The ``--chat-template`` option as checked template text (read and compiled), so a
    bad one stops start-up; ValueError names the option."""
    try:
        template = load_chat_template(value)
        if template is not None:
            compile_template(template)
    except InvalidParameterError as exc:
        raise ValueError(f"--chat-template: {exc.message.removeprefix('chat_template: ')}") from None
    except ValueError as exc:
        raise ValueError(f"--chat-template: {exc}") from None
    return template


def resolve_chat_template(tokenizer: Any, chat_template: str | None = None, *,
                          tools: list[dict] | None = None) -> str | None:
    """The template to use: ``chat_template`` if given, else the tokenizer's own.

    A tokenizer may carry several named templates; the ``tool_use`` one is picked when
    tools are given and it exists, else ``default``.
    """
    if chat_template is not None:
        return chat_template
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):
        if tools and "tool_use" in own:
            return own["tool_use"]
        if "default" in own:
            return own["default"]
        return next(iter(own.values()), None) if len(own) == 1 else None
    return own or None
