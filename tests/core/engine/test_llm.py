"""The offline API: generate's input forms, chat, beam search, and clear errors."""

from __future__ import annotations

import math

import pytest

from fw import BeamSearchParams, LLM, SamplingParams
from tests.core.engine.conftest import hf_greedy


@pytest.fixture(scope="module")
def llm(tiny_llama, llm_factory):
    return llm_factory(tiny_llama)


def test_prompt_forms_agree(llm, tiny_llama):
    params = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)
    ids = llm.get_tokenizer().encode("Hello there")
    by_text = llm.generate("Hello there", params, use_tqdm=False)[0]
    by_ids = llm.generate(ids, params, use_tqdm=False)[0]
    by_dict = llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0]
    assert by_text.outputs[0].token_ids == by_ids.outputs[0].token_ids == by_dict.outputs[0].token_ids
    assert by_text.outputs[0].token_ids == hf_greedy(tiny_llama, "Hello there", 6)
    assert by_text.prompt == "Hello there" and by_ids.prompt is None


def test_outputs_keep_input_order_and_per_prompt_params(llm):
    outputs = llm.generate(["a", "b", "c"], [SamplingParams(max_tokens=n, ignore_eos=True) for n in (1, 2, 3)],
                           use_tqdm=False)
    assert [len(o.outputs[0].token_ids) for o in outputs] == [1, 2, 3]


def test_chat_renders_the_template(llm):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    output = llm.chat(messages, SamplingParams(max_tokens=4, temperature=0.0), use_tqdm=False)[0]
    text = llm.get_tokenizer().decode(output.prompt_token_ids)
    assert text == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    batch = llm.chat([messages, messages], SamplingParams(max_tokens=4, temperature=0.0), use_tqdm=False)
    assert batch[0].outputs[0].token_ids == batch[1].outputs[0].token_ids == output.outputs[0].token_ids


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy(llm):
    prompt = "The capital of France is"
    greedy = llm.generate(prompt, SamplingParams(max_tokens=5, temperature=0.0, logprobs=0, ignore_eos=True),
                          use_tqdm=False)[0].outputs[0]
    result = llm.beam_search([prompt], BeamSearchParams(beam_width=3, max_tokens=5, ignore_eos=True,
                                                        length_penalty=0.0))[0]
    assert len(result.sequences) == 3
    best = result.sequences[0]
    assert len(best.tokens) == 5
    assert best.cum_logprob >= greedy.cumulative_logprob - 1e-4
    scores = [s.cum_logprob for s in result.sequences]
    assert scores == sorted(scores, reverse=True) and not any(math.isnan(s) for s in scores)


def test_unknown_option_and_bad_values_are_clear(tiny_llama):
    with pytest.raises(ValueError, match="unknown option 'max_model_length'"):
        LLM(str(tiny_llama), max_model_length=5)
    with pytest.raises(ValueError, match="--block-size"):
        LLM(str(tiny_llama), block_size=7)


def test_missing_model_path_is_named(tmp_path):
    with pytest.raises(Exception) as info:
        LLM(str(tmp_path / "nowhere"))
    assert "nowhere" in str(info.value)


def test_max_model_len_above_the_model_is_refused(tiny_llama):
    with pytest.raises(Exception, match="exceeds the model's context"):
        LLM(str(tiny_llama), max_model_len=100_000)


def test_aborting_a_finished_or_unknown_request_does_nothing(llm):
    """A client that goes away after its answer (or twice) must not break the engine."""
    engine = llm.engine
    engine.add_request("done", "Hello", SamplingParams(max_tokens=2, ignore_eos=True))
    while engine.has_unfinished_requests():
        engine.step()
    assert engine.abort_request(["done", "never-added"]) == []
    engine.add_request("twice", "Hello", SamplingParams(max_tokens=50, ignore_eos=True))
    engine.step()
    (first,) = engine.abort_request("twice")
    assert first.finished and first.outputs[0].finish_reason == "abort"
    assert engine.abort_request("twice") == [] and not engine.has_unfinished_requests()
