"""Structured outputs in the engine: every constraint kind holds on a random tiny model
(where nothing but the grammar can make the output valid)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from fw import SamplingParams
from fw.structured.params import StructuredOutputsParams as Constraint
from fw.errors import InvalidParameterError

PROMPT = "Answer:"


@pytest.fixture(scope="module")
def llm(tiny_llama, llm_factory):
    return llm_factory(tiny_llama)


def generate(llm, constraint, n=1, **kwargs):
    kwargs = {"max_tokens": 40, "temperature": 1.0, "seed": 0, **kwargs}
    params = SamplingParams(n=n, structured_outputs=constraint, **kwargs)
    return llm.generate([PROMPT], params, use_tqdm=False)[0].outputs


def test_choice(llm):
    (out,) = generate(llm, Constraint(choice=["red", "green", "blue"]))
    assert out.text in {"red", "green", "blue"} and out.finish_reason == "stop"


def test_regex_matches_whole_output(llm):
    (out,) = generate(llm, Constraint(regex=r"[ab]{4}-\d"))
    assert re.fullmatch(r"[ab]{4}-\d", out.text), out.text


def test_ebnf_grammar(llm):
    (out,) = generate(llm, Constraint(grammar='root ::= "yes" | "no" | "maybe"'))
    assert out.text in {"yes", "no", "maybe"}


def test_json_schema_validates(llm):
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}, "ok": {"type": "boolean"}},
              "required": ["color", "ok"]}
    (out,) = generate(llm, Constraint(json=schema, disable_any_whitespace=True))
    value = json.loads(out.text)
    jsonschema.validate(value, schema)
    assert out.text == json.dumps(value)  # one canonical layout: no optional whitespace


def test_whitespace_pattern(llm):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    (out,) = generate(llm, Constraint(json=schema, whitespace_pattern=r"[ ]?"), temperature=2.0)
    assert json.loads(out.text) in ({"ok": True}, {"ok": False})
    assert "\n" not in out.text and "  " not in out.text


def test_every_sample_is_constrained(llm):
    outs = generate(llm, Constraint(choice=["alpha", "beta", "gamma", "delta"]), n=4, temperature=2.0)
    assert all(o.text in {"alpha", "beta", "gamma", "delta"} for o in outs)


@pytest.mark.parametrize("constraint,param,fragment", [
    (Constraint(json="{not json", source="response_format"), "response_format", "not valid JSON"),
    (Constraint(regex="(((", source="guided_regex"), "guided_regex", "parenthesis"),
    (Constraint(grammar='root ::= ("a"', source="guided_grammar"), "guided_grammar", "EBNF"),
    (Constraint(choice=[], source="guided_choice"), "guided_choice", "non-empty"),
])
def test_invalid_constraints_name_the_parameter(llm, constraint, param, fragment):
    with pytest.raises(InvalidParameterError) as info:
        generate(llm, constraint)
    assert info.value.param == param and fragment in str(info.value)
    assert not llm.engine.has_unfinished_requests()


def test_constraint_starts_after_reasoning_ends(llm):
    engine = llm.engine
    end_token = 42
    params = SamplingParams(max_tokens=20, temperature=0.0, logit_bias={end_token: 100.0},
                            structured_outputs=Constraint(choice=["yes", "no"]))
    engine.add_request("think", PROMPT, params, reasoning_end_ids=(end_token,))
    final = None
    while engine.has_unfinished_requests():
        for output in engine.step():
            final = output
    tokens = final.outputs[0].token_ids
    assert tokens[0] == end_token  # free before the end marker (the bias wins)
    after = llm.get_tokenizer().decode(tokens[1:], skip_special_tokens=True)
    assert after in {"yes", "no"}  # constrained after it


def test_async_engine_compiles_off_the_loop(tiny_llama):
    from fw.config import EngineConfig
    from fw.engine.async_engine import AsyncEngine
    from fw.engine.sampling_params import RequestOutputKind

    engine = AsyncEngine.from_config(EngineConfig.from_options(model=str(tiny_llama), dtype="float32"))

    async def main():
        params = SamplingParams(max_tokens=20, structured_outputs=Constraint(regex=r"\d{3}"),
                                output_kind=RequestOutputKind.DELTA)
        text = ""
        async for output in engine.generate(PROMPT, params, "r1"):
            text += output.outputs[0].text
        with pytest.raises(InvalidParameterError):
            async for _ in engine.generate(PROMPT, SamplingParams(structured_outputs=Constraint(regex="(")), "r2"):
                pass
        await engine.shutdown()
        return text

    assert re.fullmatch(r"\d{3}", asyncio.run(main()))


# -- constraints that contradict each other ----------------------------------------------


def test_allowed_tokens_the_grammar_cannot_start_with_are_refused_at_admission(llm):
    with pytest.raises(InvalidParameterError) as info:
        generate(llm, Constraint(choice=["yes", "no"], source="guided_choice"), allowed_token_ids=[100])
    assert info.value.param == "allowed_token_ids" and "guided_choice" in str(info.value)
    assert not llm.engine.has_unfinished_requests()


@pytest.mark.parametrize("extra", [{"bad_words": ["the"]}, {"min_tokens": 2}])
def test_allowed_tokens_taken_away_by_other_parameters_are_refused_at_admission(llm, extra):
    tokenizer = llm.get_tokenizer()
    if "bad_words" in extra:  # a one-token bad word bans its tokens (with and without a space) everywhere
        variants = [tokenizer.encode(w, add_special_tokens=False) for w in ("the", " the")]
        assert all(len(v) == 1 for v in variants)
        allowed = [v[0] for v in variants]
    else:  # min_tokens forbids the end of sequence at first
        allowed = [tokenizer.eos_token_id]
    with pytest.raises(InvalidParameterError) as info:
        llm.generate([PROMPT], SamplingParams(allowed_token_ids=list(allowed), **extra), use_tqdm=False)
    assert info.value.param == "allowed_token_ids"


def _two_token_word(tokenizer) -> list[int]:
    for word in ("forest", "Celsius", "scattered", "museums", "wondered"):
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) >= 2 and ids[0] not in ids[1:]:
            return ids
    raise AssertionError("the tiny tokenizer splits none of the words")


def test_a_constraint_that_runs_out_of_tokens_ends_with_an_error_not_garbage(llm, caplog):
    """Only the word's first token is allowed: the grammar accepts it, then needs the
    second, which allowed_token_ids forbids. The request ends there with an error."""
    tokenizer = llm.get_tokenizer()
    ids = _two_token_word(tokenizer)
    word = tokenizer.decode(ids)
    params = SamplingParams(max_tokens=10, temperature=0.0, allowed_token_ids=ids[:1],
                            structured_outputs=Constraint(choice=[word], source="guided_choice"))
    (output,) = llm.generate([PROMPT], params, use_tqdm=False)
    (choice,) = output.outputs
    assert choice.token_ids == ids[:1] and choice.finish_reason == "abort"
    assert isinstance(output.error, InvalidParameterError) and output.error.param == "allowed_token_ids"
    assert "after 1 generated tokens" in str(output.error) and "guided_choice" in str(output.error)
    assert not [r for r in caplog.records if "rejected by its grammar" in r.getMessage()]
    assert not llm.engine.has_unfinished_requests() and llm.engine.stats().kv_cache_usage == 0


def test_the_async_engine_raises_the_contradiction_to_the_caller(tiny_llama):
    from fw.config import EngineConfig
    from fw.engine.async_engine import AsyncEngine
    from fw.engine.sampling_params import RequestOutputKind

    engine = AsyncEngine.from_config(EngineConfig.from_options(model=str(tiny_llama), dtype="float32"))
    ids = _two_token_word(engine.tokenizer)
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=0, allowed_token_ids=ids[:1], n=2,
                            structured_outputs=Constraint(choice=[engine.tokenizer.decode(ids)]),
                            output_kind=RequestOutputKind.DELTA)

    async def main():
        received = []
        try:
            with pytest.raises(InvalidParameterError, match="contradict"):
                async for output in engine.generate(PROMPT, params, "r1"):
                    received.append(output)
            return received, engine.stats()
        finally:
            await engine.shutdown()

    received, stats = asyncio.run(main())
    assert [o.outputs[0].token_ids for o in received] == [ids[:1]]
    assert stats.num_running == 0 and stats.kv_cache_usage == 0
