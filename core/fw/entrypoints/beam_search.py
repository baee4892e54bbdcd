"""Beam search for the offline API (``LLM.beam_search``): the synchronous driver of
``fw.entrypoints.beam_search_state``. Each step runs every live beam of every prompt as
one batch of single-token requests through ``LLM.generate`` (so through the engine's
admission step), and the shared prefixes come from the prefix cache instead of being
recomputed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fw.engine.admission import output_budget, tokenize_prompt
from fw.engine.detokenizer import TokenTexts
from fw.engine.sampling_params import BeamSearchParams, RequestOutputKind
from fw.entrypoints.beam_search_state import (
    BeamSearch, BeamSearchOutput, BeamSearchSequence, candidate_count, check_candidates, step_params,
)

if TYPE_CHECKING:
    from fw.entrypoints.llm import LLM

__all__ = ["BeamSearchOutput", "BeamSearchSequence", "run_beam_search"]


def run_beam_search(llm: "LLM", prompts: list, params: BeamSearchParams) -> list[BeamSearchOutput]:
    engine = llm.engine
    admission = engine.admission
    eos = tuple(engine.eos_token_ids)
    check_candidates(params, eos, admission.max_logprobs)
    candidates = candidate_count(params, eos)
    inputs, budgets = [], []
    for prompt in prompts:
        _, ids = tokenize_prompt(engine.tokenizer, prompt)
        kept = len(ids) if params.truncate_prompt_tokens is None else min(len(ids), params.truncate_prompt_tokens)
        budgets.append(output_budget(admission.max_model_len, kept, params.max_tokens,
                                     admission.defaults.get("max_tokens")))
        inputs.append({"prompt_token_ids": ids})
    texts = TokenTexts(engine.tokenizer) if engine.tokenizer is not None else None
    kind = RequestOutputKind.FINAL_ONLY
    firsts = llm.generate(inputs, step_params(params, candidates, first=True, output_kind=kind), use_tqdm=False)
    searches = []
    for first, budget in zip(firsts, budgets):
        search = BeamSearch(first.prompt_token_ids, params, max_tokens=budget, eos_token_ids=eos, texts=texts)
        search.advance([first.outputs[0].logprobs[0]])
        searches.append(search)
    later = step_params(params, candidates, first=False, output_kind=kind)
    while any(not s.done for s in searches):
        batch = [(search, ids) for search in searches for ids in search.pending()]
        outputs = llm.generate([{"prompt_token_ids": ids} for _, ids in batch], later, use_tqdm=False)
        for search in searches:
            if not search.done:
                mine = [out for (owner, _), out in zip(batch, outputs) if owner is search]
                search.advance([out.outputs[0].logprobs[0] for out in mine])
    return [BeamSearchOutput(search.prompt, search.result()) for search in searches]
