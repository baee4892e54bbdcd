"""The engine's admission step called directly: the exact boundary of every limit (context
length, max_tokens, n, logprobs, vocabulary, KV cache, the waiting queue), the parameter
each refusal names and the numbers its message gives, and what a request left unset
becomes. (tests/core/server/test_admission.py shows the same refusals over HTTP.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fw.engine.admission import FW_DEFAULTS, WAITING_PER_SEQ, Admission, check_room, output_budget, tokenize_prompt
from fw.engine.sampling_params import SamplingParams
from fw.errors import ContextLengthError, InvalidParameterError, NotSupportedError, OverloadedError
from fw.pooling.params import PoolingParams
from fw.pooling.setup import PoolingSetup
from tests.core.server.fake_engine import make_tokenizer

TOKENIZER = make_tokenizer()
VOCAB = len(TOKENIZER)


def admission(**changes) -> Admission:
    values = dict(max_model_len=32, vocab_size=VOCAB, max_num_seqs=4, max_logprobs=5, num_kv_blocks=64,
                  block_size=4, tokenizer=TOKENIZER, defaults={})
    values.update(changes)
    return Admission(**values)


def refusal(call, *args, **kwargs) -> InvalidParameterError:
    with pytest.raises(InvalidParameterError) as info:
        call(*args, **kwargs)
    return info.value


def admit(params: SamplingParams, prompt_ids=(5, 6, 7, 8), **changes):
    return admission(**changes).admit(None, list(prompt_ids), params)


# -- the waiting queue and sleep (503) ---------------------------------------------------


def engine_with_waiting(num_waiting: int, max_num_seqs: int = 2):
    return SimpleNamespace(scheduler_config=SimpleNamespace(max_num_seqs=max_num_seqs),
                           scheduler=SimpleNamespace(num_waiting=num_waiting))


def test_the_waiting_queue_holds_eight_requests_per_running_slot():
    """--max-num-seqs 2: 16 requests may wait; the 17th is told to retry (503), with the limit."""
    limit = 2 * WAITING_PER_SEQ
    assert limit == 16
    check_room(engine_with_waiting(limit - 1), sleeping=False)
    with pytest.raises(OverloadedError) as info:
        check_room(engine_with_waiting(limit), sleeping=False)
    assert info.value.message == "the waiting queue is full (16 requests); retry shortly"


def test_a_sleeping_engine_refuses_even_an_empty_queue():
    with pytest.raises(OverloadedError) as info:
        check_room(engine_with_waiting(0), sleeping=True)
    assert info.value.message == "the engine is asleep (sleep mode); POST /wake_up first"


# -- prompts --------------------------------------------------------------------------------


def test_text_is_tokenized_with_the_special_tokens_the_tokenizer_adds():
    assert tokenize_prompt(TOKENIZER, "ab") == ("ab", TOKENIZER.encode("ab"))
    assert tokenize_prompt(TOKENIZER, "ab")[1][0] == TOKENIZER.bos_token_id
    assert tokenize_prompt(TOKENIZER, {"prompt": "ab"}) == ("ab", TOKENIZER.encode("ab"))


def test_token_prompts_pass_as_they_are():
    assert tokenize_prompt(TOKENIZER, [3, 4]) == (None, [3, 4])
    assert tokenize_prompt(TOKENIZER, (3, 4)) == (None, [3, 4])
    assert tokenize_prompt(TOKENIZER, {"prompt_token_ids": (3, 4), "prompt": "xy"}) == ("xy", [3, 4])
    assert tokenize_prompt(None, {"prompt_token_ids": [3, 4]}) == (None, [3, 4])
    assert tokenize_prompt(None, [3, 4]) == (None, [3, 4])


NO_TEXT = "prompt: the engine runs without a tokenizer (--skip-tokenizer-init): send prompt token ids, not text"


@pytest.mark.parametrize("tokenizer, prompt, message", [
    (None, "hi", NO_TEXT),
    (None, {"prompt": "hi"}, NO_TEXT),
    (TOKENIZER, {"text": "hi"}, "prompt: a prompt dict needs 'prompt' or 'prompt_token_ids'"),
    (TOKENIZER, 3.5, "prompt: expected text or a list of token ids, got float"),
    (TOKENIZER, [1, "a"], "prompt: expected text or a list of token ids, got list"),
])
def test_a_prompt_that_cannot_be_used_names_the_prompt(tokenizer, prompt, message):
    error = refusal(tokenize_prompt, tokenizer, prompt)
    assert error.param == "prompt" and error.message == message


def test_an_empty_prompt_is_refused():
    assert refusal(admit, SamplingParams(), prompt_ids=[]).message == "prompt: the prompt is empty"


# -- the context length and max_tokens ---------------------------------------------------------


def test_a_prompt_must_leave_room_for_one_token():
    """A prompt one short of the context may generate exactly one token; one that fills it
    is refused naming the prompt and both numbers."""
    assert output_budget(32, 31, None, None) == 1
    error = refusal(output_budget, 32, 32, None, None)
    assert isinstance(error, ContextLengthError) and error.param == "prompt"
    assert error.message == ("prompt: this model's maximum context length is 32 tokens, but the prompt has 32 "
                             "tokens, which leaves no room to generate; shorten it (or set truncate_prompt_tokens)")


def test_max_tokens_may_fill_the_context_exactly():
    assert output_budget(32, 10, 22, None) == 22
    error = refusal(output_budget, 32, 10, 23, None)
    assert isinstance(error, ContextLengthError) and error.param == "max_tokens"
    assert error.message == ("max_tokens: this model's maximum context length is 32 tokens, but 33 were "
                             "requested (10 in the prompt, 23 for the output); ask for at most 22 tokens or "
                             "shorten the prompt")


def test_unset_max_tokens_is_what_the_context_leaves_up_to_the_models_cap():
    """vLLM: max_tokens left unset generates until the context is full, or the model's
    max_new_tokens (the server-wide cap), whichever comes first; the cap also lowers an
    explicit max_tokens, even one the context could not hold."""
    assert output_budget(32, 10, None, None) == 22
    assert output_budget(32, 10, None, 5) == 5
    assert output_budget(32, 10, None, 30) == 22
    assert output_budget(32, 10, 8, 5) == 5
    assert output_budget(32, 10, 3, 5) == 3
    assert output_budget(32, 10, 100, 5) == 5


def test_admit_fills_max_tokens_from_the_context_and_the_cap():
    assert admit(SamplingParams(max_tokens=None))[2].max_tokens == 28
    assert admit(SamplingParams(max_tokens=None), defaults={"max_tokens": 6})[2].max_tokens == 6
    assert admit(SamplingParams(max_tokens=28))[2].max_tokens == 28
    error = refusal(admit, SamplingParams(max_tokens=29))
    assert isinstance(error, ContextLengthError) and error.param == "max_tokens"


def test_a_request_must_fit_the_kv_cache_whole():
    """Blocks of 4 tokens, 3 in the cache: prompt plus max_tokens may be 12 tokens, not 13,
    and the refusal names max_tokens with both block counts."""
    assert admit(SamplingParams(max_tokens=8), num_kv_blocks=3)[2].max_tokens == 8
    error = refusal(admit, SamplingParams(max_tokens=9), num_kv_blocks=3)
    assert error.param == "max_tokens"
    assert error.message == ("max_tokens: the request needs 4 KV-cache blocks but the cache has 3; reduce "
                             "max_tokens or start the server with a larger --kv-cache-memory-bytes")


# -- n and logprobs -------------------------------------------------------------------------


def test_n_may_be_max_num_seqs_but_not_more():
    assert admit(SamplingParams(n=4))[2].n == 4
    error = refusal(admit, SamplingParams(n=5))
    assert error.param == "n" and error.message == "n: at most 4 samples per request (--max-num-seqs), got 5"


@pytest.mark.parametrize("name", ["logprobs", "prompt_logprobs"])
def test_logprobs_up_to_max_logprobs(name):
    """vLLM's --max-logprobs: up to the cap is fine, beyond it and -1 (the whole vocabulary)
    are refused naming the field; -1 as the cap lifts the limit."""
    assert getattr(admit(SamplingParams(**{name: 5}))[2], name) == 5
    assert getattr(admit(SamplingParams(**{name: 0}))[2], name) == 0
    for value in (6, -1):
        error = refusal(admit, SamplingParams(**{name: value}))
        assert error.param == name
        assert error.message == f"{name}: at most 5 logprobs may be requested (--max-logprobs), got {value}"
    for value in (-1, 1000):
        assert getattr(admit(SamplingParams(**{name: value}), max_logprobs=-1)[2], name) == value


# -- token ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["prompt", "allowed_token_ids", "stop_token_ids", "logit_bias"])
def test_token_ids_must_be_inside_the_vocabulary(field):
    def request(token):
        if field == "prompt":
            return admit(SamplingParams(), prompt_ids=[5, token])
        value = {token: 1.0} if field == "logit_bias" else [token]
        return admit(SamplingParams(**{field: value}))

    request(VOCAB - 1)
    request(0)
    for token in (VOCAB, -1):
        error = refusal(request, token)
        assert error.param == field
        assert error.message == f"{field}: token id {token} is outside the vocabulary (0..{VOCAB - 1})"


# -- truncation -----------------------------------------------------------------------------


def test_truncate_prompt_tokens_keeps_the_last_tokens_and_drops_the_text():
    prompt, ids, _ = admission().admit("abcde", [1, 2, 3, 4, 5], SamplingParams(truncate_prompt_tokens=3))
    assert (prompt, ids) == (None, [3, 4, 5])
    prompt, ids, _ = admission().admit("abc", [1, 2, 3], SamplingParams(truncate_prompt_tokens=3))
    assert (prompt, ids) == ("abc", [1, 2, 3])


def test_truncation_happens_before_the_context_check():
    """A 40-token prompt in a 32-token context is admitted when truncated to 30."""
    _, ids, params = admit(SamplingParams(truncate_prompt_tokens=30, max_tokens=None), prompt_ids=range(3, 43))
    assert ids == list(range(13, 43)) and params.max_tokens == 2


# -- defaults -------------------------------------------------------------------------------


def test_unset_sampling_fields_take_the_models_defaults_else_fws():
    """fw's defaults are vLLM's neutral ones (temperature 1, top_p 1, top_k 0 (off), min_p 0,
    repetition_penalty 1); a field the request sets is kept."""
    unset = SamplingParams(**{name: None for name in FW_DEFAULTS})
    params = admit(unset)[2]
    assert {name: getattr(params, name) for name in FW_DEFAULTS} == {
        "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}
    model = {"temperature": 0.5, "top_p": 0.9, "top_k": 7, "min_p": 0.1, "repetition_penalty": 1.2}
    params = admit(unset, defaults=model)[2]
    assert {name: getattr(params, name) for name in FW_DEFAULTS} == model
    params = admit(SamplingParams(temperature=0.0, top_k=3), defaults=model)[2]
    assert (params.temperature, params.top_k, params.top_p) == (0.0, 3, 1.0)


def test_admission_does_not_change_the_callers_params():
    params = SamplingParams(max_tokens=None, temperature=None)
    admit(params)
    assert (params.max_tokens, params.temperature) == (None, None)


# -- without a tokenizer, and a pooling model ------------------------------------------------


@pytest.mark.parametrize("name", ["stop", "bad_words", "structured_outputs"])
def test_without_a_tokenizer_text_parameters_are_refused(name):
    from fw.engine.sampling_params import StructuredOutputsParams

    value = StructuredOutputsParams(regex="a+") if name == "structured_outputs" else ["x"]
    error = refusal(admit, SamplingParams(**{name: value}), tokenizer=None)
    assert error.param == name
    assert error.message == (f"{name}: the engine runs without a tokenizer (--skip-tokenizer-init): it needs "
                             "text; use stop_token_ids, allowed_token_ids or logit_bias")
    admit(SamplingParams(stop_token_ids=[5]), tokenizer=None)


def test_a_pooling_model_generates_nothing():
    with pytest.raises(NotSupportedError) as info:
        admit(SamplingParams(), runner="pooling")
    assert info.value.param == "prompt" and info.value.message == (
        "this model runs the pooling runner: it embeds or classifies, it does not generate text (a generative "
        "model runs the generate runner)")


# -- bad words, constraints, logits processors -------------------------------------------------


def test_bad_words_are_banned_with_and_without_a_leading_space():
    encode = lambda text: TOKENIZER.encode(text, add_special_tokens=False)  # noqa: E731
    params = admit(SamplingParams(bad_words=["fox", " dog"]))[2]
    assert params._bad_words_token_ids == [encode("fox"), encode(" fox"), encode(" dog")]


def test_an_allowed_token_that_is_a_bad_word_leaves_nothing_to_generate():
    token = TOKENIZER.encode("x", add_special_tokens=False)
    with pytest.raises(InvalidParameterError, match="bad_words"):
        admit(SamplingParams(bad_words=["x"], allowed_token_ids=token))


def test_allowing_only_end_tokens_contradicts_min_tokens():
    """The model's EOS (token 1 here) cannot end an output min_tokens says must go on."""
    error = refusal(admit, SamplingParams(allowed_token_ids=[1], min_tokens=2), eos_token_ids=(1,))
    assert error.param == "allowed_token_ids" and "min_tokens" in error.message
    admit(SamplingParams(allowed_token_ids=[1, 5], min_tokens=2), eos_token_ids=(1,))


def test_allowed_tokens_none_of_which_can_begin_the_constrained_output_are_refused():
    import torch

    from fw.engine.sampling_params import StructuredOutputsParams

    first = torch.zeros(VOCAB, dtype=torch.bool)
    first[5] = True
    constraint = StructuredOutputsParams(regex="a+")
    error = refusal(admit, SamplingParams(structured_outputs=constraint, allowed_token_ids=[6]),
                    first_tokens=lambda _: first)
    assert error.param == "allowed_token_ids" and "can begin an output" in error.message
    admit(SamplingParams(structured_outputs=constraint, allowed_token_ids=[5, 6]), first_tokens=lambda _: first)


def test_a_structured_output_constraint_is_compiled_at_admission():
    from fw.engine.sampling_params import StructuredOutputsParams

    compiled = []
    constraint = StructuredOutputsParams(regex="a+")
    admit(SamplingParams(structured_outputs=constraint), compile_constraint=compiled.append)
    admit(SamplingParams(), compile_constraint=compiled.append)
    assert compiled == [constraint]


def test_the_engines_logits_processors_validate_each_request():
    seen = []
    admit(SamplingParams(), logits_processors=SimpleNamespace(validate=seen.append))
    assert len(seen) == 1 and isinstance(seen[0], SamplingParams)
    with pytest.raises(InvalidParameterError, match="logits_processors"):
        admit(SamplingParams(logits_processors=["x.Y"]))


# -- pooling requests -------------------------------------------------------------------------


def pooling_setup(**changes) -> PoolingSetup:
    values = dict(tasks=["embed", "classify"], poolers={"embed": "mean", "classify": "cls"}, hidden_size=8)
    values.update(changes)
    return PoolingSetup(**values)


def admit_pooling(params=None, prompt_ids=(5, 6, 7, 8), types=None, setup=None, **changes):
    engine = admission(pooling=setup or pooling_setup(), **changes)
    return engine.admit_pooling("text", list(prompt_ids), params or PoolingParams(), types)


def test_a_task_the_model_does_not_serve_names_the_task():
    with pytest.raises(NotSupportedError) as info:
        admit_pooling(PoolingParams(task="encode"))
    assert info.value.param == "task"
    assert info.value.message == "this model does not serve the 'encode' task: its pooling tasks are embed, classify"
    with pytest.raises(NotSupportedError) as info:
        admission().admit_pooling(None, [5], PoolingParams(), None)
    assert info.value.message == ("this model does not serve the 'embed' task: it runs the generate runner "
                                  "(serve it with --enable-embeddings, or --runner pooling)")


def test_a_pooling_input_may_fill_the_context_but_not_more():
    _, ids, _, _ = admit_pooling(prompt_ids=range(3, 35))
    assert len(ids) == 32
    error = refusal(admit_pooling, prompt_ids=range(3, 36))
    assert isinstance(error, ContextLengthError) and error.param == "prompt"
    assert error.message == ("prompt: this model's maximum context length is 32 tokens, but the input has 33 "
                             "tokens; shorten it (or set truncate_prompt_tokens)")


def test_pooling_truncation_keeps_the_last_tokens_and_their_types():
    prompt, ids, _, types = admit_pooling(PoolingParams(truncate_prompt_tokens=2), prompt_ids=[5, 6, 7, 8, 9],
                                          types=[1, 0, 0, 0, 1])
    assert (prompt, ids, types) == (None, [8, 9], [0, 1])
    prompt, ids, _, types = admit_pooling(PoolingParams(truncate_prompt_tokens=4), types=[0, 0, 1, 1])
    assert (prompt, ids, types) == ("text", [5, 6, 7, 8], [0, 0, 1, 1])
    prompt, ids, _, _ = admit_pooling(PoolingParams(truncate_prompt_tokens=-1), prompt_ids=range(3, 43))
    assert (prompt, ids) == (None, list(range(11, 43)))  # -1: the last max_model_len


def test_pooling_input_checks_name_their_parameter():
    assert refusal(admit_pooling, prompt_ids=[]).message == "prompt: the input is empty"
    assert refusal(admit_pooling, prompt_ids=[5, VOCAB]).param == "prompt"
    error = refusal(admit_pooling, types=[0, 1, 1])
    assert error.param == "token_type_ids" and error.message == "token_type_ids: 3 token types for 4 tokens"


def test_pooling_input_must_fit_the_kv_cache_unless_computed_whole():
    """Blocks of 4: 3 blocks hold a 12-token input, not 13; an encoder (whole prompts,
    no KV cache) is not limited by it."""
    admit_pooling(prompt_ids=range(3, 15), num_kv_blocks=3)
    error = refusal(admit_pooling, prompt_ids=range(3, 16), num_kv_blocks=3)
    assert error.param == "prompt" and error.message == (
        "prompt: the input needs 4 KV-cache blocks but the cache has 3; start the server with a larger "
        "--kv-cache-memory-bytes")
    admit_pooling(prompt_ids=range(3, 16), num_kv_blocks=3, setup=pooling_setup(whole_prompts=True))


def test_only_matryoshka_embeddings_can_be_shortened():
    error = refusal(admit_pooling, PoolingParams(task="classify", dimensions=4))
    assert error.param == "dimensions" and error.message == "dimensions: only embeddings can be shortened"
    error = refusal(admit_pooling, PoolingParams(dimensions=4))
    assert error.param == "dimensions" and "Matryoshka" in error.message
    resolved = admit_pooling(PoolingParams(dimensions=4), setup=pooling_setup(matryoshka=True))[2]
    assert resolved.dimensions == 4


def test_unset_pooling_fields_take_the_models_defaults_for_the_task():
    """normalize and dimensions are the model's for embeddings only; activation is the model's."""
    setup = pooling_setup(normalize=True, activation=False, dimensions=6)
    embed = admit_pooling(PoolingParams(task="embed"), setup=setup)[2]
    assert (embed.dimensions, embed.normalize, embed.activation) == (6, True, False)
    classify = admit_pooling(PoolingParams(task="classify"), setup=setup)[2]
    assert (classify.dimensions, classify.normalize, classify.activation) == (None, False, False)
    explicit = admit_pooling(PoolingParams(task="embed", normalize=False, activation=True),
                             setup=pooling_setup(activation=False))[2]
    assert (explicit.normalize, explicit.activation) == (False, True)
