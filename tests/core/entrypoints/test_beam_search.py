"""The offline LLM.beam_search against transformers' beam search on the same weights."""

from __future__ import annotations

import pytest
import torch

from fw import BeamSearchParams, SamplingParams
from tests.core.engine.conftest import _hf_model, _tokenizer

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def llm(tiny_llama, llm_factory):
    return llm_factory(tiny_llama)


def hf_beams(path, prompt: str, width: int, steps: int) -> list[tuple[list[int], float]]:
    """transformers' ``width`` best beams after ``steps`` tokens (EOS never ends one) and
    their summed logprobs (``sequences_scores`` with length_penalty 0)."""
    model, tok = _hf_model(str(path)), _tokenizer(str(path))
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, num_beams=width, num_return_sequences=width, do_sample=False,
                             max_new_tokens=steps, min_new_tokens=steps, length_penalty=0.0, pad_token_id=0,
                             output_scores=True, return_dict_in_generate=True)
    return [(seq[ids.shape[1]:].tolist(), float(score)) for seq, score in zip(out.sequences, out.sequences_scores)]


def test_the_beams_are_transformers_beams(llm, tiny_llama):
    width, steps = 3, 5
    result = llm.beam_search([PROMPT], BeamSearchParams(beam_width=width, max_tokens=steps, ignore_eos=True,
                                                        length_penalty=0.0))[0]
    ours = [(b.tokens, b.cum_logprob) for b in result.sequences]
    theirs = hf_beams(tiny_llama, PROMPT, width, steps)
    assert [tokens for tokens, _ in ours] == [tokens for tokens, _ in theirs]
    for (_, mine), (_, hf) in zip(ours, theirs):
        assert mine == pytest.approx(hf, abs=1e-4)
    greedy = llm.generate(PROMPT, SamplingParams(max_tokens=steps, temperature=0.0, logprobs=0, ignore_eos=True),
                          use_tqdm=False)[0].outputs[0]
    assert ours[0][1] >= greedy.cumulative_logprob - 1e-4
    for beam in result.sequences:  # the engine's text: a trailing incomplete character is held back
        assert beam.finish_reason == "length"
        assert llm.get_tokenizer().decode(beam.tokens, skip_special_tokens=True).startswith(beam.text)
        if beam.tokens == greedy.token_ids:
            assert beam.text == greedy.text


def test_a_batch_of_prompts_searches_each_alone(llm):
    params = BeamSearchParams(beam_width=2, max_tokens=3, ignore_eos=True)
    alone = [llm.beam_search([p], params)[0] for p in (PROMPT, "Hello there")]
    together = llm.beam_search([PROMPT, "Hello there"], params)
    assert [[b.tokens for b in r.sequences] for r in together] == [[b.tokens for b in r.sequences] for r in alone]


def test_max_tokens_past_the_context_is_refused_before_searching(llm):
    with pytest.raises(ValueError, match="max_tokens"):
        llm.beam_search([PROMPT], BeamSearchParams(beam_width=2, max_tokens=10**6))
