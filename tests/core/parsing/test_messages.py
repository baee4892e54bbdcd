"""merge_deltas: the single definition of how streamed deltas add up."""

from __future__ import annotations

import pytest

from fw.parsing import DeltaMessage, ParsedMessage, ParserContractError, ToolCallDelta
from fw.parsing import merge_deltas


def first(index, name="f", arguments=""):
    return ToolCallDelta(index=index, id=f"call_{index}", type="function", name=name,
                         arguments=arguments)


def test_merge_concatenates_content_reasoning_and_arguments():
    parsed = merge_deltas([
        DeltaMessage(reasoning="Think"), DeltaMessage(reasoning="ing", content="Hi"),
        DeltaMessage(tool_calls=[first(0, arguments='{"a"')]),
        DeltaMessage(tool_calls=[ToolCallDelta(index=0, arguments=": 1}")]),
        DeltaMessage(tool_calls=[first(1, name="g", arguments="{}")]),
    ])
    assert parsed.reasoning == "Thinking" and parsed.content == "Hi"
    assert [(c.id, c.name, c.arguments) for c in parsed.tool_calls] == [
        ("call_0", "f", '{"a": 1}'), ("call_1", "g", "{}")]
    assert parsed.tools_called


def test_a_call_whose_name_comes_before_its_arguments():
    """As vLLM's own parsers stream: id and name first, the arguments in later deltas,
    some of which carry none yet."""
    for opening in (first(0, arguments=""), first(0, arguments=None)):
        parsed = merge_deltas([
            DeltaMessage(tool_calls=[opening]),
            DeltaMessage(tool_calls=[ToolCallDelta(index=0, arguments=None)]),
            DeltaMessage(tool_calls=[ToolCallDelta(index=0, arguments='{"a": 1}')]),
        ])
        assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("f", '{"a": 1}')]


def test_empty_parts_are_none():
    parsed = merge_deltas([DeltaMessage(), DeltaMessage(content="")])
    assert parsed == ParsedMessage() and not parsed.tools_called


def test_delta_truthiness_tells_empty_chunks():
    assert not DeltaMessage() and not DeltaMessage(content="")
    assert DeltaMessage(content="x") and DeltaMessage(tool_calls=[first(0)])


@pytest.mark.parametrize("pieces, problem", [
    ([ToolCallDelta(index=0, arguments="{}")], "must carry id"),
    ([ToolCallDelta(index=0, id="c", type="function")], "must carry id"),
    ([first(0), ToolCallDelta(index=0, name="again")], "only arguments"),
    ([first(1)], "out of order"),
    ([first(0), first(1), ToolCallDelta(index=0, arguments="x")], "out of order"),
])
def test_contract_violations_are_named(pieces, problem):
    with pytest.raises(ParserContractError, match=problem):
        merge_deltas([DeltaMessage(tool_calls=pieces)])


def test_a_delta_is_true_when_it_carries_anything():
    """Parsers and servers skip empty deltas with ``if delta:``."""
    from fw.parsing import ReasoningDelta

    assert not ReasoningDelta() and not ReasoningDelta(reasoning="", content="")
    assert ReasoningDelta(reasoning="r") and ReasoningDelta(content="c")
    assert not DeltaMessage() and DeltaMessage(content="c") and DeltaMessage(reasoning="r")
    assert DeltaMessage(tool_calls=[first(0)])
