"""What a chat request's ``tools`` and ``tool_choice`` mean for generation.

* ``none``: tools are shown to the template (unless --exclude-tools-when-tool-choice-none),
  nothing is parsed.
* ``auto``: the model decides; its text is read by the --tool-call-parser.
* ``required`` and a named function: enforced with structured outputs, so they work with
  any model — a JSON array of ``{"name", "parameters"}`` calls (one or more), or the
  named function's arguments object — and turned into ``tool_calls`` by the two forced
  parsers below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fw.structured.params import StructuredOutputsParams
from fw.errors import InvalidParameterError
from fw.parsing.messages import DeltaMessage, ParsedMessage, ToolCallDelta, merge_deltas
from fw.parsing.tool_parser import ToolParser, call_from_object, loads_strict


@dataclass
class ToolPlan:
    mode: str  # none | auto | required | named
    #: the tools the chat template sees
    template_tools: list[dict[str, Any]] | None
    #: the forced function's name (mode "named")
    name: str | None = None
    #: the constraint that enforces "required" / "named"
    constraint: StructuredOutputsParams | None = None


def _function(tool: Any, index: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise InvalidParameterError("tools", f"tools[{index}] must be {{'type': 'function', 'function': {{...}}}}")
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise InvalidParameterError("tools", f"tools[{index}].function needs a name")
    parameters = function.get("parameters", {"type": "object"})
    if not isinstance(parameters, dict):
        raise InvalidParameterError("tools", f"tools[{index}].function.parameters must be a JSON schema object")
    return function


def _parameters(function: dict[str, Any]) -> dict[str, Any]:
    return function.get("parameters") or {"type": "object", "properties": {}}


def plan_tools(tools: list[Any] | None, tool_choice: Any, *, parallel_tool_calls: bool | None,
               auto_enabled: bool, parser: str | None, exclude_when_none: bool) -> ToolPlan:
    if not tools:
        if tool_choice not in (None, "none"):
            raise InvalidParameterError("tool_choice", "needs tools; this request has none")
        return ToolPlan("none", None)
    functions = [_function(tool, i) for i, tool in enumerate(tools)]
    choice = "auto" if tool_choice is None else tool_choice
    if choice == "none":
        return ToolPlan("none", None if exclude_when_none else tools)
    if choice == "auto":
        if not (auto_enabled and parser):
            raise InvalidParameterError(
                "tool_choice", '"auto" tool choice needs the server started with --enable-auto-tool-choice '
                               "and --tool-call-parser NAME",
            )
        return ToolPlan("auto", tools)
    if choice == "required":
        variants = [{
            "type": "object",
            "properties": {"name": {"type": "string", "enum": [f["name"]]}, "parameters": _parameters(f)},
            "required": ["name", "parameters"],
        } for f in functions]
        schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": variants}}
        if parallel_tool_calls is False:
            schema["maxItems"] = 1
        return ToolPlan("required", tools, constraint=_compact(schema))
    if isinstance(choice, dict) and choice.get("type", "function") == "function":
        name = (choice.get("function") or {}).get("name")
        match = next((f for f in functions if f["name"] == name), None)
        if match is None:
            raise InvalidParameterError("tool_choice", f"names function {name!r}, which is not among the tools")
        return ToolPlan("named", tools, name=name, constraint=_compact(_parameters(match)))
    raise InvalidParameterError(
        "tool_choice", 'must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}')


def _compact(schema: dict[str, Any]) -> StructuredOutputsParams:
    """Tool arguments as compact JSON: no layout whitespace to spend tokens (or loop) on."""
    return StructuredOutputsParams(json=schema, disable_any_whitespace=True, source="tool_choice")


class NamedCallParser(ToolParser):
    """The whole output is the named function's arguments: stream it as one call."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self._id: str | None = None

    def feed(self, delta_text: str) -> DeltaMessage:
        if not delta_text:
            return DeltaMessage()
        if self._id is None:
            self._id = self._new_call_id()
            return DeltaMessage(tool_calls=[ToolCallDelta(0, self._id, "function", self.name, delta_text)])
        return DeltaMessage(tool_calls=[ToolCallDelta(0, arguments=delta_text)])

    def finish(self) -> DeltaMessage:
        return DeltaMessage()

    def parse(self, text: str) -> ParsedMessage:
        return merge_deltas([self.feed(text), self.finish()])


class RequiredCallsParser(ToolParser):
    """The output is a JSON array of calls; emitted whole once it is complete (a
    truncated array comes back as content)."""

    def __init__(self) -> None:
        super().__init__()
        self._text = ""

    def feed(self, delta_text: str) -> DeltaMessage:
        self._text += delta_text
        return DeltaMessage()

    def finish(self) -> DeltaMessage:
        try:
            items = loads_strict(self._text)
        except ValueError:
            items = None
        calls = [call_from_object(item, ("parameters", "arguments")) for item in items] \
            if isinstance(items, list) and items else [None]
        if any(call is None for call in calls):
            return DeltaMessage(content=self._text or None)
        return DeltaMessage(tool_calls=[
            ToolCallDelta(i, self._new_call_id(), "function", name, arguments)
            for i, (name, arguments) in enumerate(calls)
        ])

    def parse(self, text: str) -> ParsedMessage:
        return merge_deltas([self.feed(text), self.finish()])
