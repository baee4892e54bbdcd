"""Every sampling parameter changes what it should (each test fails if it is ignored)."""

from __future__ import annotations

from collections import Counter

import pytest

from fw import SamplingParams
from fw.engine.sampling_params import RequestOutputKind
from fw.errors import ContextLengthError, InvalidParameterError

PROMPT = "Once upon a time there was a little robot"


@pytest.fixture(scope="module")
def llm(tiny_llama, llm_factory):
    return llm_factory(tiny_llama, max_logprobs=5)


def run(llm, prompt=PROMPT, **kwargs):
    kwargs.setdefault("max_tokens", 16)
    return llm.generate([prompt], SamplingParams(**kwargs), use_tqdm=False)[0].outputs[0]


@pytest.fixture(scope="module")
def greedy(llm):
    return run(llm, temperature=0.0, ignore_eos=True)


def test_random_sampling_differs_from_greedy_and_seed_reproduces(llm, greedy):
    a = run(llm, temperature=1.5, seed=1, ignore_eos=True)
    b = run(llm, temperature=1.5, seed=1, ignore_eos=True)
    c = run(llm, temperature=1.5, seed=2, ignore_eos=True)
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids
    assert a.token_ids != greedy.token_ids


def test_seed_is_independent_of_batch_neighbours(llm):
    params = SamplingParams(temperature=1.5, seed=11, max_tokens=16, ignore_eos=True)
    alone = llm.generate([PROMPT], params, use_tqdm=False)[0].outputs[0].token_ids
    others = [SamplingParams(temperature=1.0, max_tokens=20, ignore_eos=True)] * 3
    batch = llm.generate(["Hello", PROMPT, "The moon", "Numbers"], [others[0], params, *others[1:]], use_tqdm=False)
    assert batch[1].outputs[0].token_ids == alone


@pytest.mark.parametrize("setting", [{"top_k": 1}, {"top_p": 1e-6}, {"min_p": 1.0}])
def test_truncation_to_the_top_token_is_greedy(llm, greedy, setting):
    assert run(llm, temperature=2.0, seed=3, ignore_eos=True, **setting).token_ids == greedy.token_ids


def test_top_k_limits_choices(llm, greedy):
    assert run(llm, temperature=5.0, seed=4, ignore_eos=True).token_ids != greedy.token_ids
    sampled = run(llm, temperature=5.0, seed=4, top_k=2, ignore_eos=True, logprobs=2)
    for token, entries in zip(sampled.token_ids, sampled.logprobs):
        assert entries[token].rank <= 2


def repeats(tokens):
    return sum(c - 1 for c in Counter(tokens).values())


@pytest.mark.parametrize("penalty", [{"frequency_penalty": 2.0}, {"presence_penalty": 2.0},
                                     {"repetition_penalty": 2.0}])
def test_penalties_reduce_repetition(llm, greedy, penalty):
    assert repeats(greedy.token_ids) > 0
    penalised = run(llm, temperature=0.0, ignore_eos=True, **penalty)
    assert repeats(penalised.token_ids) < repeats(greedy.token_ids)


def test_logit_bias_forces_a_token(llm):
    assert run(llm, temperature=0.0, ignore_eos=True, logit_bias={42: 100.0}).token_ids == [42] * 16


def test_allowed_token_ids(llm):
    output = run(llm, temperature=1.0, seed=5, ignore_eos=True, allowed_token_ids=[40, 41, 42])
    assert set(output.token_ids) <= {40, 41, 42}


def test_bad_words_are_never_generated(llm, greedy):
    tokenizer = llm.get_tokenizer()
    banned_token = greedy.token_ids[0]
    word = tokenizer.decode([banned_token])
    output = run(llm, temperature=0.0, ignore_eos=True, bad_words=[word])
    assert banned_token not in output.token_ids


def test_stop_token_ids_and_min_tokens(llm, greedy):
    first = greedy.token_ids[0]
    stopped = run(llm, temperature=0.0, stop_token_ids=[first])
    assert stopped.token_ids == [first] and stopped.finish_reason == "stop" and stopped.stop_reason == first
    held = run(llm, temperature=0.0, stop_token_ids=[first], min_tokens=4)
    assert len(held.token_ids) >= 4 and held.token_ids[0] != first


def test_ignore_eos(llm):
    eos = llm.engine.eos_token_ids[0]
    assert run(llm, temperature=0.0, logit_bias={eos: 100.0}).finish_reason == "stop"
    output = run(llm, temperature=0.0, logit_bias={eos: 100.0}, ignore_eos=True, max_tokens=5)
    assert output.token_ids == [eos] * 5 and output.finish_reason == "length"


def test_max_tokens(llm):
    output = run(llm, temperature=0.0, ignore_eos=True, max_tokens=3)
    assert len(output.token_ids) == 3 and output.finish_reason == "length"


def test_stop_strings_are_cut_unless_included(llm, greedy):
    text = greedy.text
    stop = text[len(text) // 2: len(text) // 2 + 2]
    assert stop.strip() and stop in text
    cut = run(llm, temperature=0.0, ignore_eos=True, stop=[stop])
    assert cut.text == text[: text.index(stop)] and cut.finish_reason == "stop" and cut.stop_reason == stop
    kept = run(llm, temperature=0.0, ignore_eos=True, stop=[stop], include_stop_str_in_output=True)
    assert kept.text == text[: text.index(stop) + len(stop)]


def test_skip_and_space_special_tokens(llm):
    tokenizer = llm.get_tokenizer()
    special = tokenizer.convert_tokens_to_ids("<|im_start|>")
    common = dict(temperature=0.0, logit_bias={special: 100.0}, max_tokens=2, ignore_eos=True)
    assert "<|im_start|>" not in run(llm, **common).text
    spaced = run(llm, skip_special_tokens=False, **common).text
    tight = run(llm, skip_special_tokens=False, spaces_between_special_tokens=False, **common).text
    assert tight == "<|im_start|><|im_start|>"
    assert spaced == "<|im_start|> <|im_start|>"


def test_parser_markers_survive_skip_special_tokens(llm):
    """Marker tokens a parser declared are kept (as their text, unspaced) even though
    skip_special_tokens drops every other special token."""
    tokenizer = llm.get_tokenizer()
    marker = tokenizer.convert_tokens_to_ids("<|im_start|>")
    engine = llm.engine
    params = SamplingParams(temperature=0.0, logit_bias={marker: 100.0}, max_tokens=2, ignore_eos=True)
    engine.add_request("markers", PROMPT, params, keep_special_ids=frozenset({marker}))
    text = ""
    while engine.has_unfinished_requests():
        for output in engine.step():
            text = output.outputs[0].text
    assert text == "<|im_start|><|im_start|>"


def test_truncate_prompt_tokens(llm):
    output = llm.generate([PROMPT], SamplingParams(max_tokens=1, truncate_prompt_tokens=3), use_tqdm=False)[0]
    full = llm.get_tokenizer().encode(PROMPT)
    assert output.prompt_token_ids == full[-3:]


def test_detokenize_false_gives_ids_only(llm, greedy):
    output = run(llm, temperature=0.0, ignore_eos=True, detokenize=False)
    assert output.text == "" and output.token_ids == greedy.token_ids


def test_delta_outputs_concatenate_to_the_cumulative_text(llm, greedy):
    engine = llm.engine
    engine.add_request("delta", PROMPT, SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=16,
                                                       output_kind=RequestOutputKind.DELTA))
    text, tokens = "", []
    while engine.has_unfinished_requests():
        for output in engine.step():
            text += output.outputs[0].text
            tokens += output.outputs[0].token_ids
    assert text == greedy.text and tokens == greedy.token_ids


@pytest.mark.parametrize("kwargs,param", [
    ({"temperature": -1.0}, "temperature"), ({"top_p": 0.0}, "top_p"), ({"top_k": -5}, "top_k"),
    ({"n": 0}, "n"), ({"max_tokens": 0}, "max_tokens"), ({"min_p": 2.0}, "min_p"),
    ({"presence_penalty": 3.0}, "presence_penalty"), ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"min_tokens": 5, "max_tokens": 2}, "min_tokens"), ({"stop": [""]}, "stop"),
    ({"temperature": float("nan")}, "temperature"), ({"temperature": float("inf")}, "temperature"),
    ({"top_p": float("nan")}, "top_p"), ({"presence_penalty": float("nan")}, "presence_penalty"),
    ({"logit_bias": {5: float("nan")}}, "logit_bias"), ({"seed": 2**63}, "seed"), ({"seed": -(2**63) - 1}, "seed"),
])
def test_invalid_values_name_the_parameter(kwargs, param):
    with pytest.raises(InvalidParameterError) as info:
        SamplingParams(**kwargs)
    assert info.value.param == param and param in str(info.value)


def test_engine_limits_name_the_parameter(llm):
    too_long = "word " * 600
    with pytest.raises(ContextLengthError) as info:
        llm.generate([too_long], SamplingParams(max_tokens=1), use_tqdm=False)
    assert info.value.param == "prompt" and "512" in str(info.value)
    with pytest.raises(ContextLengthError) as info:
        llm.generate([PROMPT], SamplingParams(max_tokens=10_000), use_tqdm=False)
    assert info.value.param == "max_tokens"
    with pytest.raises(InvalidParameterError) as info:
        llm.generate([PROMPT], SamplingParams(logprobs=6), use_tqdm=False)
    assert info.value.param == "logprobs"
    with pytest.raises(InvalidParameterError) as info:  # one request must not flood the engine
        llm.generate([PROMPT], SamplingParams(n=100_000), use_tqdm=False)
    assert info.value.param == "n" and "--max-num-seqs" in str(info.value)
    assert not llm.engine.has_unfinished_requests()


def test_logprobs_name_their_tokens(llm):
    """Each logprob entry carries its token's text, as the tokenizer decodes it alone."""
    tokenizer = llm.get_tokenizer()
    params = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=4, logprobs=2, prompt_logprobs=2)
    output = llm.generate([PROMPT], params, use_tqdm=False)[0]
    entries = output.outputs[0].logprobs + output.prompt_logprobs[1:]
    assert output.prompt_logprobs[0] is None and len(entries) == 4 + len(output.prompt_token_ids) - 1
    for entry in entries:
        assert len(entry) >= 2
        for token, logprob in entry.items():
            assert logprob.decoded_token == tokenizer.decode([token]), token
