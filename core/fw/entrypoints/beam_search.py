"""Beam search for the offline API, built on the engine's prefix cache: each step every
live beam is one single-token request asking for its top 2*beam_width logprobs, and the
shared prefixes come from the cache instead of being recomputed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fw.engine.sampling_params import BeamSearchParams, SamplingParams

if TYPE_CHECKING:
    from fw.entrypoints.llm import LLM


@dataclass
class BeamSearchSequence:
    tokens: list[int]  # generated tokens only
    cum_logprob: float = 0.0
    text: str = ""
    finished: bool = False

    def score(self, length_penalty: float, eos: tuple[int, ...]) -> float:
        length = len(self.tokens) - (1 if self.tokens and self.tokens[-1] in eos else 0)
        return self.cum_logprob / max(length, 1) ** length_penalty


@dataclass
class BeamSearchOutput:
    prompt_token_ids: list[int]
    sequences: list[BeamSearchSequence] = field(default_factory=list)


def run_beam_search(llm: "LLM", prompts: list, params: BeamSearchParams) -> list[BeamSearchOutput]:
    from fw.engine.admission import tokenize_prompt

    engine = llm.engine
    eos = engine.eos_token_ids
    width = params.beam_width
    step_params = SamplingParams(max_tokens=1, temperature=params.temperature, logprobs=2 * width,
                                 ignore_eos=True, detokenize=False)
    states = []
    for prompt in prompts:
        _, ids = tokenize_prompt(engine.tokenizer, prompt)
        states.append((ids, [BeamSearchSequence([])], []))
    for _ in range(params.max_tokens):
        live = [(i, beam) for i, (_, beams, _) in enumerate(states) for beam in beams]
        if not live:
            break
        candidates: dict[int, list[BeamSearchSequence]] = {i: [] for i in range(len(states))}
        outputs = llm.generate([{"prompt_token_ids": states[i][0] + beam.tokens} for i, beam in live],
                               step_params, use_tqdm=False)
        for (i, beam), output in zip(live, outputs):
            for token, logprob in output.outputs[0].logprobs[0].items():
                candidates[i].append(BeamSearchSequence(beam.tokens + [token], beam.cum_logprob + logprob.logprob))
        for i, (ids, _, completed) in enumerate(states):
            ranked = sorted(candidates[i], key=lambda s: s.score(params.length_penalty, eos), reverse=True)
            beams = []
            for seq in ranked:
                if seq.tokens[-1] in eos and not params.ignore_eos:
                    seq.finished = True
                    completed.append(seq)
                elif len(beams) < width:
                    beams.append(seq)
                if len(beams) >= width and len(completed) >= width:
                    break
            if params.early_stopping and len(completed) >= width:
                beams = []
            states[i] = (ids, beams, completed)
    results = []
    for ids, beams, completed in states:
        best = sorted(completed + beams, key=lambda s: s.score(params.length_penalty, eos), reverse=True)[:width]
        for seq in best:
            seq.text = engine.tokenizer.decode(seq.tokens, skip_special_tokens=True)
        results.append(BeamSearchOutput(ids, best))
    return results
