"""Pythonic tool calls: ``[get_weather(city="Paris"), get_time()]``.

Written by Llama 3.2 / 4, ToolACE and other models trained to call tools as a Python
list of calls. The list must open the response (after whitespace); text after it is
content.

The list is read with ``ast.parse`` and converted node by node: only literals (strings,
numbers, booleans, None, and lists, tuples and dicts of them; JSON's ``true``,
``false`` and ``null`` too) are accepted as argument values. Nothing is ever evaluated.

Decisions for imperfect output: a list that is not entirely calls with keyword
arguments of literal values (positional arguments have no names to put in JSON), and
a list cut off at the end of the output, are returned as content.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from fw.parsing.scan import BracketScanner
from fw.parsing.text import skip_ws
from fw.parsing.tool_parser import ToolParser, dump_arguments

_JSON_NAMES = {"true": True, "false": False, "null": None}


class PythonicToolParser(ToolParser):
    """``--tool-call-parser pythonic``."""

    def __init__(self, tokenizer=None, tools=None):
        super().__init__(tokenizer, tools)
        self._at_start = True
        self._scanner: BracketScanner | None = None

    def _step(self, text: str, final: bool) -> int | None:
        if not self._at_start:
            self._emit_content(text)
            return len(text)
        start = skip_ws(text, 0)
        if start == len(text) and not final:
            return None
        if start == len(text) or text[start] != "[":
            self._at_start = False
            return 0
        if self._scanner is None:
            self._scanner = BracketScanner(start, quotes="'\"")
        end = self._scanner.end(text)
        if end is None and not final:
            return None
        end = len(text) if end is None else end
        self._at_start = False
        calls = parse_calls(text[start:end])
        if calls is None:
            self._emit_content(text[:end])
        for name, arguments in calls or ():
            self._emit_call(name, arguments)
        return end


def parse_calls(source: str) -> list[tuple[str, str]] | None:
    """``[(name, arguments JSON), ...]`` of a Python list of calls, or None."""
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(tree.body, ast.List) or not tree.body.elts:
        return None
    calls = []
    for node in tree.body.elts:
        if not isinstance(node, ast.Call):
            return None
        name = _dotted_name(node.func)
        names = [kw.arg for kw in node.keywords]
        if name is None or node.args or None in names or len(set(names)) < len(names):
            return None  # positional, ``**kwargs`` or repeated arguments
        try:
            arguments = dump_arguments({kw.arg: _literal(kw.value) for kw in node.keywords})
        except (ValueError, RecursionError):
            return None
        calls.append((name, arguments))
    return calls


def _dotted_name(node: ast.expr) -> str | None:
    """``f`` or ``module.f``; None for anything else that can be called."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _literal(node: ast.expr) -> Any:
    """The JSON value of a literal node; ValueError for anything that is not one."""
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
    elif isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    elif isinstance(node, ast.Dict):
        result = {}
        for key, value in zip(node.keys, node.values):
            key = None if key is None else _literal(key)
            if not isinstance(key, str):
                raise ValueError("dict keys must be strings")
            result[key] = _literal(value)
        return result
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    elif isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    raise ValueError(f"not a literal: {ast.dump(node)[:80]}")
