"""Every registered reasoning parser, found by name, over a corpus and fuzzed text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fw.parsing import ReasoningParser
from fw.parsing.testkit import check_output_parser, check_reasoning_parser
from fw.plugins import registry
from tests.core.parsing.tiny_tokenizer import tiny_tokenizer
from tests.plugins.tool_parsers.corpus import CORPUS

TEXTS = [
    "<think>\nOkay, the user asks for 2 + 2. That is 4.\n</think>\n\nThe answer is **4**.",
    "Okay, the user asks for 2 + 2.\n</think>\n\nThe answer is 4.",
    "<think>\n\n</think>\n\nBonjour !",
    "<think>Hmm, should I call a tool? <tool_call>{\"name\": \"x\"}</tool_call></think>\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "<think>考えています…",
    "No reasoning at all, just 日本語 and 🙂.",
    "",
    "   ",
]


def test_builtin_names_resolve():
    reasoning = registry("reasoning_parser")
    assert {"deepseek_r1", "qwen3"} <= set(reasoning.names())
    for name in ("deepseek_r1", "qwen3"):
        assert issubclass(reasoning.load(name), ReasoningParser)
        assert reasoning.entry(name).plugin == "reasoning_parsers"


@pytest.mark.parametrize("name", registry("reasoning_parser").names())
def test_every_parser_keeps_the_property(name):
    parser = registry("reasoning_parser").load(name)
    tokenizer = tiny_tokenizer(TEXTS, special_tokens=parser.special_tokens)
    for text in TEXTS:
        check_reasoning_parser(parser, text)
        check_reasoning_parser(parser, text, tokenizer=tokenizer, random_runs=0)


@pytest.mark.parametrize("name", registry("reasoning_parser").names())
def test_reasoning_then_tools_for_every_pair(name):
    reasoning = registry("reasoning_parser").load(name)
    for tool_name in registry("tool_parser").names():
        tools = registry("tool_parser").load(tool_name)
        for text, _ in CORPUS[tool_name] if tool_name in CORPUS else []:
            for prefix in ("", "<think>\nLet me use a tool.\n</think>\n\n"):
                check_output_parser(reasoning, tools, prefix + text)
        for text in TEXTS:
            check_output_parser(reasoning, tools, text)


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.sampled_from(
    ["<think>", "</think>", "<thi", "</", " ", "\n", "a", "東", "🙂", "<tool_call>",
     '{"name": "f"}', "</tool_call>"]), max_size=25), seed=st.integers(0, 1000))
def test_fuzzed_text_never_breaks_the_property(pieces, seed):
    text = "".join(pieces)
    for name in registry("reasoning_parser").names():
        check_reasoning_parser(registry("reasoning_parser").load(name), text, seed=seed,
                               random_runs=1)
