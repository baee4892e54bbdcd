"""The two built-in structured-output backends (xgrammar, llguidance as "guidance") on a
random tiny model, where only the grammar can make an output valid; "auto"'s fallback;
backend names checked at start-up and per request."""

from __future__ import annotations

import json
import re

import pytest

from fw import SamplingParams
from fw.engine.sampling_params import StructuredOutputsParams as Constraint
from fw.errors import InvalidParameterError

jsonschema = pytest.importorskip("jsonschema")

PROMPT = "Answer:"
BACKENDS = ("xgrammar", "guidance")
#: schemas both backends compile; bounded so a random model finishes within max_tokens
SCHEMAS = {
    "flat": {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}, "ok": {"type": "boolean"}},
             "required": ["color", "ok"]},
    "nested": {"type": "object", "required": ["user"], "properties": {"user": {
        "type": "object", "required": ["name", "age"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 6},
                       "age": {"type": "integer", "minimum": 0, "maximum": 99}}}}},
    "array": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"enum": [1, 2, 3]}},
    "anyof": {"anyOf": [{"type": "boolean"}, {"type": "null"}, {"enum": ["x", "y"]}]},
    "refs": {"type": "object", "required": ["a", "b"], "$defs": {"pt": {
        "type": "object", "required": ["x"], "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9}}}},
        "properties": {"a": {"$ref": "#/$defs/pt"}, "b": {"$ref": "#/$defs/pt"}}},
    "optional": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 5}, "tag": {"type": "string", "maxLength": 3}}},
    "pattern": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string",
                                                                                "pattern": "^[A-Z]{2}-[0-9]{3}$"}}},
}
LARK = 'start: "yes" | "no" | "maybe"'


@pytest.fixture(scope="module")
def llm(tiny_llama, llm_factory):
    return llm_factory(tiny_llama)


def generate(llm, constraint, **kwargs):
    kwargs = {"max_tokens": 120, "temperature": 1.0, "seed": 0, **kwargs}
    return llm.generate([PROMPT], SamplingParams(structured_outputs=constraint, **kwargs), use_tqdm=False)[0].outputs[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_both_backends_give_valid_json_for_the_same_schemas(llm, backend, name):
    schema = SCHEMAS[name]
    out = generate(llm, Constraint(json=schema, disable_any_whitespace=True, backend=backend))
    assert out.finish_reason == "stop", out.text
    value = json.loads(out.text)
    jsonschema.validate(value, schema)
    assert out.text == json.dumps(value, ensure_ascii=False)  # one layout, whichever the backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_objects_get_only_the_listed_properties(llm, backend):
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}}
    for seed in range(3):
        out = generate(llm, Constraint(json=schema, disable_any_whitespace=True, backend=backend), seed=seed)
        assert set(json.loads(out.text)) <= {"a"}, out.text


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_constraint_kinds(llm, backend):
    assert generate(llm, Constraint(choice=["red", "green"], backend=backend)).text in {"red", "green"}
    assert re.fullmatch(r"[ab]{3}-\d", generate(llm, Constraint(regex=r"[ab]{3}-\d", backend=backend)).text)
    assert generate(llm, Constraint(grammar='root ::= "on" | "off"', backend=backend)).text in {"on", "off"}
    value = json.loads(generate(llm, Constraint(json_object=True, backend=backend), max_tokens=200).text)
    assert isinstance(value, dict)


def test_auto_falls_back_to_guidance_for_what_xgrammar_cannot_compile(llm):
    # a Lark grammar: llguidance reads it, xgrammar's EBNF parser does not
    assert generate(llm, Constraint(grammar=LARK)).text in {"yes", "no", "maybe"}
    with pytest.raises(InvalidParameterError, match="EBNF") as info:
        generate(llm, Constraint(grammar=LARK, backend="xgrammar", source="guided_grammar"))
    assert info.value.param == "guided_grammar"


def test_disable_fallback_keeps_the_first_backend(tiny_llama, llm_factory):
    llm = llm_factory(tiny_llama, guided_decoding_disable_fallback=True)
    with pytest.raises(InvalidParameterError, match="EBNF"):
        generate(llm, Constraint(grammar=LARK))


def test_the_engine_default_backend_is_used(tiny_llama, llm_factory):
    llm = llm_factory(tiny_llama, guided_decoding_backend="llguidance")  # an alias of "guidance"
    assert llm.engine.structured.default == "guidance"
    assert generate(llm, Constraint(grammar=LARK)).text in {"yes", "no", "maybe"}
    assert set(llm.engine.structured._backends) == {"guidance"}


def test_unknown_backend_names(tiny_llama, llm):
    with pytest.raises(ValueError, match="unknown structured-output backend 'outlines'; available: guidance, xgrammar"):
        from fw import LLM

        LLM(str(tiny_llama), guided_decoding_backend="outlines")
    with pytest.raises(InvalidParameterError) as info:
        generate(llm, Constraint(choice=["a"], backend="outlines"))
    assert info.value.param == "guided_decoding_backend"
