"""The output processor on its own: steps are fed by hand (as the scheduler would after a
forward pass), and what clients see (text, tokens, logprobs, pooled outputs, metrics) is
checked against transformers' decode of the same tokens."""

from __future__ import annotations

import pytest
import torch

from fw.engine.output_processor import OutputProcessor
from fw.engine.outputs import Logprob
from fw.engine.request import Request, RequestStatus
from fw.engine.sampling_params import RequestOutputKind, SamplingParams
from fw.engine.step_output import StepOutput
from fw.errors import FwError
from fw.pooling.params import PoolingParams

PROMPT = "The capital of France is"


def words(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def add(processor, tokenizer, request_id: str, params: SamplingParams) -> list[Request]:
    prompt_ids = words(tokenizer, PROMPT)
    children = [Request(request_id if params.n == 1 else f"{i}_{request_id}", prompt_ids, params,
                        eos_token_ids=(tokenizer.eos_token_id,), parent_id=request_id, index=i)
                for i in range(params.n)]
    processor.add(request_id, PROMPT, prompt_ids, params, children)
    return children


def stop(request: Request) -> None:
    request.status = RequestStatus.FINISHED_STOPPED


def step(processor, sampled: dict[Request, list[int]], finish: dict[Request, RequestStatus] | None = None,
         logprobs: bool = False):
    """One step: each request gets its tokens (and a status, as the scheduler sets it)."""
    out = StepOutput()
    for request, tokens in sampled.items():
        request.all_token_ids.extend(tokens)
        request.status = (finish or {}).get(request, RequestStatus.RUNNING)
        out.sampled[request.request_id] = list(tokens)
        if logprobs:
            out.logprobs[request.request_id] = [{t: Logprob(-1.0, 1)} for t in tokens]
            out.sampled_logprobs[request.request_id] = [-1.0] * len(tokens)
    return processor.process(list(sampled), out, on_stop=stop)


@pytest.mark.parametrize("include", [False, True])
def test_a_step_of_several_tokens_ending_in_a_stop_token_keeps_the_text_before_it(tokenizer, include):
    """A speculative step accepts several tokens at once; when the last is a stop token id,
    only that token's text is left out (vLLM's rule), not the one before it."""
    processor = OutputProcessor(tokenizer)
    tokens = words(tokenizer, " Paris. Berlin")
    params = SamplingParams(stop_token_ids=[tokens[2]], include_stop_str_in_output=include)
    [request] = add(processor, tokenizer, "r", params)
    [output] = step(processor, {request: tokens[:3]}, {request: RequestStatus.FINISHED_STOPPED})
    want = tokenizer.decode(tokens[:3] if include else tokens[:2])
    assert (output.outputs[0].text, output.outputs[0].token_ids) == (want, tokens[:3])


def test_a_step_of_several_tokens_ending_in_eos_keeps_the_text_before_it(tokenizer):
    processor = OutputProcessor(tokenizer)
    tokens = words(tokenizer, " Paris.") + [tokenizer.eos_token_id]
    [request] = add(processor, tokenizer, "r", SamplingParams(skip_special_tokens=False))
    [output] = step(processor, {request: tokens}, {request: RequestStatus.FINISHED_STOPPED})
    assert output.outputs[0].text == tokenizer.decode(tokens[:-1]) == " Paris."


def test_a_request_stopped_by_another_token_keeps_that_tokens_text(tokenizer):
    """A structured-output request whose grammar ended stops on an ordinary token: that
    token is part of the answer."""
    processor = OutputProcessor(tokenizer)
    tokens = words(tokenizer, " Paris.")
    [request] = add(processor, tokenizer, "r", SamplingParams())
    [output] = step(processor, {request: tokens}, {request: RequestStatus.FINISHED_STOPPED})
    assert output.outputs[0].text == tokenizer.decode(tokens)


def test_with_include_stop_str_in_output_no_text_is_held_back(tokenizer):
    """The stop string would be part of the output anyway, so every step's text is the
    whole decode of the tokens so far."""
    processor = OutputProcessor(tokenizer)
    tokens = words(tokenizer, " Paris. Berlin is")
    [request] = add(processor, tokenizer, "r", SamplingParams(stop=["a stop string never seen"],
                                                              include_stop_str_in_output=True))
    for n, token in enumerate(tokens, start=1):
        [output] = step(processor, {request: [token]})
        assert output.outputs[0].text == tokenizer.decode(tokens[:n])


@pytest.mark.parametrize("asked", [None, 2])
def test_logprobs_are_reported_only_when_asked_for(tokenizer, asked):
    processor = OutputProcessor(tokenizer)
    tokens = words(tokenizer, " Paris.")
    [request] = add(processor, tokenizer, "r", SamplingParams(logprobs=asked))
    [output] = step(processor, {request: tokens}, logprobs=asked is not None)
    completion = output.outputs[0]
    if asked is None:
        assert completion.logprobs is None and completion.cumulative_logprob is None
    else:
        assert [list(entry) for entry in completion.logprobs] == [[t] for t in tokens]
        assert [entry[t].decoded_token for entry, t in zip(completion.logprobs, tokens)] == [
            tokenizer.decode([t]) for t in tokens]


def test_a_delta_output_carries_only_the_sequences_that_changed(tokenizer):
    """n=2 streamed as deltas: once sequence 0 has finished and been reported, a step that
    gives sequence 1 a token reports sequence 1 alone."""
    processor = OutputProcessor(tokenizer)
    tokens = words(tokenizer, " Paris. Berlin")
    first, second = add(processor, tokenizer, "r", SamplingParams(n=2, output_kind=RequestOutputKind.DELTA))
    [output] = step(processor, {first: tokens[:1], second: tokens[:1]}, {first: RequestStatus.FINISHED_LENGTH})
    assert [(c.index, c.text, c.finish_reason) for c in output.outputs] == [
        (0, tokenizer.decode(tokens[:1]), "length"), (1, tokenizer.decode(tokens[:1]), None)]
    [output] = step(processor, {second: tokens[1:2]})
    assert [(c.index, c.text, c.token_ids) for c in output.outputs] == [(1, tokenizer.decode(tokens[1:2]), tokens[1:2])]
    assert not output.finished


def test_a_request_the_processor_no_longer_tracks_does_not_hide_the_others(tokenizer):
    processor = OutputProcessor(tokenizer)
    tokens = words(tokenizer, " Paris.")
    [gone] = add(processor, tokenizer, "gone", SamplingParams())
    step(processor, {gone: tokens}, {gone: RequestStatus.FINISHED_LENGTH})  # reported and dropped
    [request] = add(processor, tokenizer, "r", SamplingParams())
    request.all_token_ids.extend(tokens)
    outputs = processor.process([gone, request], StepOutput(sampled={"r": tokens}), on_stop=stop)
    assert [(o.request_id, o.outputs[0].text) for o in outputs] == [("r", tokenizer.decode(tokens))]


def pooling_request(tokenizer, request_id: str = "p") -> Request:
    request = Request(request_id, words(tokenizer, PROMPT), PoolingParams(), arrival_time=10.0)
    return request


def test_a_pooled_request_reports_its_vector_prompt_and_times_once_it_finishes(tokenizer):
    processor = OutputProcessor(tokenizer)
    request = pooling_request(tokenizer)
    processor.add_pooling(request, PROMPT)
    request.status = RequestStatus.RUNNING
    assert processor.process([request], StepOutput(), on_stop=stop) == []  # a prompt chunk: not yet
    request.first_scheduled_time, request.finished_time = 11.0, 12.5
    request.status = RequestStatus.FINISHED_STOPPED
    vector = torch.tensor([0.5, -1.0, 2.0])
    [output] = processor.process([request], StepOutput(pooled={"p": vector}), on_stop=stop)
    assert (output.request_id, output.prompt, output.prompt_token_ids, output.error) == (
        "p", PROMPT, words(tokenizer, PROMPT), None)
    assert output.outputs.embedding == [0.5, -1.0, 2.0]
    m = output.metrics
    assert (m.arrival_time, m.first_scheduled_time, m.first_token_time, m.last_token_time, m.finished_time) == (
        10.0, 11.0, None, None, 12.5)
    assert not processor.has("p")
    assert processor.process([request], StepOutput(), on_stop=stop) == []  # reported once


def test_a_pooling_request_the_step_failed_carries_the_error(tokenizer):
    processor = OutputProcessor(tokenizer)
    request = pooling_request(tokenizer)
    processor.add_pooling(request, PROMPT)
    request.status = RequestStatus.FINISHED_ABORTED
    error = FwError("the adapter could not be read")
    [output] = processor.process([request], StepOutput(failed={"p": error}), on_stop=stop)
    assert output.outputs is None and output.error is error
