"""Stop strings and stop token ids on the real engine, against transformers' greedy text.

The reference is transformers' greedy continuation decoded by the tokenizer, cut by the
rules clients rely on (OpenAI's ``stop`` and vLLM's extras): the earliest occurrence of
any stop string ends the text, without it unless ``include_stop_str_in_output``; stops
count only from ``min_tokens`` on; a stop token id ends the output, its text left out
unless ``include_stop_str_in_output`` too. Streamed outputs must add up to the same text
at every step: the start of a stop string is held back until it is known not to be one,
never sent and then taken back.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from fw import SamplingParams
from fw.engine.sampling_params import RequestOutputKind
from tests.core.engine.conftest import _hf_model, _tokenizer, hf_greedy

PROMPT = "Once upon a time there was a little robot"
MAX_TOKENS = 32


@pytest.fixture(scope="module")
def llm(tiny_llama, llm_factory):
    return llm_factory(tiny_llama)


@pytest.fixture(scope="module")
def reference(llm, tiny_llama):
    """transformers' greedy tokens, and the text each prefix of them decodes to."""
    tokens = hf_greedy(tiny_llama, PROMPT, MAX_TOKENS)
    tokenizer = llm.get_tokenizer()
    prefixes = [tokenizer.decode(tokens[:n]) for n in range(len(tokens) + 1)]
    return tokens, prefixes


def hf_generate(path, prompt: str, **kwargs) -> list[int]:
    """transformers' greedy ``generate`` (its stopping and min-length rules)."""
    ids = _tokenizer(str(path))(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = _hf_model(str(path)).generate(ids, do_sample=False, pad_token_id=0, **kwargs)
    return out[0, ids.shape[1]:].tolist()


def cut(text: str, stops: list[str], include: bool, start: int = 0) -> tuple[str, str | None]:
    """The reference rule: the earliest stop string found at or after ``start`` ends the text."""
    found = [(text.find(s, start), s) for s in stops if text.find(s, start) != -1]
    if not found:
        return text, None
    at, stop = min(found)
    return text[: at + len(stop)] if include else text[:at], stop


def streamed(llm, request_id: str, **kwargs):
    """Run one request with DELTA outputs; returns (the text after each step, last output)."""
    engine = llm.engine
    engine.add_request(request_id, PROMPT, SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=MAX_TOKENS,
                                                          output_kind=RequestOutputKind.DELTA, **kwargs))
    text, seen, last = "", [], None
    while engine.has_unfinished_requests():
        for output in engine.step():
            text += output.outputs[0].text
            seen.append(text)
            last = output
    return seen, last


def final(llm, **kwargs):
    params = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=MAX_TOKENS, **kwargs)
    return llm.generate([PROMPT], params, use_tqdm=False)[0].outputs[0]


def readable(stop: str) -> bool:
    """Not blank, and no stand-in for bytes of an unfinished character (text that is held
    back anyway until the character is complete, stop string or not)."""
    return bool(stop.strip()) and "\ufffd" not in stop


def spanning_stop(prefixes: list[str]) -> str:
    """A stop string that begins in one token and ends in the next, found first there:
    its start is text a step before it is known to be a stop."""
    text = prefixes[-1]
    for n in range(4, len(prefixes) - 4):
        boundary = len(prefixes[n])
        for before, after in ((2, 2), (1, 2), (2, 1), (1, 1)):
            stop = text[boundary - before: boundary + after]
            if (len(stop) == before + after and readable(stop) and text.find(stop) == boundary - before
                    and len(prefixes[n + 1]) >= boundary + after):
                return stop
    raise AssertionError(f"no stop string spans two tokens of {text!r}")


def test_reference_text_is_what_the_engine_generates(llm, reference):
    tokens, prefixes = reference
    output = final(llm)
    assert output.token_ids == tokens and output.text == prefixes[-1]


@pytest.mark.parametrize("include", [False, True])
def test_a_stop_string_cuts_the_text_and_its_start_is_never_streamed(llm, reference, include):
    _, prefixes = reference
    stop = spanning_stop(prefixes)
    want, _ = cut(prefixes[-1], [stop], include)
    output = final(llm, stop=[stop], include_stop_str_in_output=include)
    assert (output.text, output.finish_reason, output.stop_reason) == (want, "stop", stop)
    seen, last = streamed(llm, f"hold-{include}", stop=[stop], include_stop_str_in_output=include)
    assert all(want.startswith(text) for text in seen), f"streamed {seen} before the final {want!r}"
    assert seen[-1] == want and last.outputs[0].finish_reason == "stop" and last.finished


def two_stops_in_one_token(prefixes: list[str]) -> tuple[str, str]:
    """Two stop strings completed by the same token: one that began in the token before,
    and a later one inside the token."""
    text = prefixes[-1]
    for n in range(2, len(prefixes) - 1):
        boundary, end = len(prefixes[n]), len(prefixes[n + 1])
        early, late = text[boundary - 1: boundary + 1], text[boundary + 1: end]
        if (end - boundary >= 3 and readable(early) and readable(late)
                and text.find(early) == boundary - 1 and text.find(late) == boundary + 1):
            return early, late
    raise AssertionError(f"no token of {text!r} completes two stop strings")


def test_the_earliest_of_several_stop_strings_wins(llm, reference):
    """Listed first, longer, found in the same step: the later one still loses."""
    _, prefixes = reference
    text = prefixes[-1]
    early, late = two_stops_in_one_token(prefixes)
    stops = [late, early]
    want, stop = cut(text, stops, include=False)
    assert stop == early
    output = final(llm, stop=stops)
    assert (output.text, output.stop_reason) == (want, early)
    seen, _ = streamed(llm, "several", stop=stops)
    assert all(want.startswith(t) for t in seen) and seen[-1] == want


def test_text_held_back_for_a_stop_that_never_comes_is_released_at_the_end(llm, reference):
    _, prefixes = reference
    text = prefixes[-1]
    never = "<a stop string this text never holds>"  # its length makes the last characters wait
    assert never not in text
    seen, last = streamed(llm, "released", stop=[never])
    assert seen[-1] == text and last.outputs[0].finish_reason == "length"
    assert final(llm, stop=[never]).text == text


def test_stop_strings_count_only_from_min_tokens(llm, reference):
    tokens, prefixes = reference
    text = prefixes[-1]
    # a string that occurs before min_tokens and again after it
    for min_tokens, size in itertools.product(range(6, len(tokens) - 6), (3, 2, 1)):
        edge = len(prefixes[min_tokens - 1])
        first = next((i for i in range(edge - 2 * size) if readable(text[i: i + size])
                      and text.find(text[i: i + size], edge - 2 * size) >= edge), None)
        if first is not None:
            stop = text[first: first + size]
            break
    else:
        pytest.fail(f"no string repeats across a min_tokens boundary in {text!r}")
    assert text.find(stop) < edge - size  # without min_tokens it would stop early
    want, _ = cut(text, [stop], include=False, start=edge - size + 1)
    output = final(llm, stop=[stop], min_tokens=min_tokens)
    assert (output.text, output.finish_reason) == (want, "stop")
    assert len(output.token_ids) >= min_tokens
    assert final(llm, stop=[stop]).text == text[: text.find(stop)]


@pytest.mark.parametrize("include", [False, True])
def test_a_stop_token_id_ends_the_output(llm, reference, include):
    """The token is in token_ids; its text only with include_stop_str_in_output (vLLM's rule)."""
    tokens, prefixes = reference
    index = next(i for i in range(3, len(tokens)) if tokens[i] not in tokens[:i])
    output = final(llm, stop_token_ids=[tokens[index]], include_stop_str_in_output=include)
    assert output.token_ids == tokens[: index + 1]
    text = prefixes[index + 1] if include else prefixes[index]
    assert (output.text, output.finish_reason, output.stop_reason) == (text, "stop", tokens[index])
    seen, _ = streamed(llm, f"stop-id-{include}", stop_token_ids=[tokens[index]], include_stop_str_in_output=include)
    assert seen[-1] == text


def test_a_stop_token_id_is_masked_until_min_tokens(llm, reference, tiny_llama):
    """As transformers' min_new_tokens does for an end-of-sequence token: the stop token
    cannot be sampled before min_tokens; once it may be, it ends the output."""
    tokens, _ = reference
    index = next(i for i in range(1, len(tokens)) if tokens[i] not in tokens[:i])
    stop = tokens[index]
    want = hf_generate(tiny_llama, PROMPT, max_new_tokens=MAX_TOKENS, min_new_tokens=index + 2, eos_token_id=stop)
    output = final(llm, stop_token_ids=[stop], min_tokens=index + 2)
    assert output.token_ids == want
    assert stop not in output.token_ids[: index + 2]
    assert output.finish_reason == ("stop" if want[-1] == stop else "length")
