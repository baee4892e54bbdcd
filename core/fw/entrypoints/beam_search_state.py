"""One prompt's beam search, advanced one engine step at a time: the algorithm that the
offline ``LLM.beam_search`` (``fw.entrypoints.beam_search``) and the server's
``use_beam_search`` (``fw.server.beam_search``) share. They differ only in how a step runs
on the engine; neither knows how beams are chosen.

A step is, for every live beam, one engine request for a single token (``step_params``)
that asks for the top ``candidate_count`` logprobs of the model's own distribution (the
sampler's logprobs come before any processing), as vLLM's serving beam search does; the
beams' shared prefixes come from the prefix cache. ``BeamSearch.advance`` takes those
logprobs and does the rest, with the semantics of vLLM's V0 engine and Hugging Face
transformers, where they agree:

* candidates: the ``2 x beam_width`` most likely one-token extensions over all live beams,
  by cumulative logprob;
* a candidate ends when its token is EOS (unless ``ignore_eos``) or one of
  ``stop_token_ids`` (finish reason "stop"), or when its text now holds a stop string
  (cut there, unless ``include_stop_str_in_output``); before ``min_tokens`` nothing
  ends, as the sampler masks those tokens. Ended candidates join the finished hypotheses
  (the best ``beam_width`` are kept); the best ``beam_width`` others live on;
* score: ``cumulative_logprob / length ** length_penalty``, where the length counts the
  prompt and the generated tokens but not an ending EOS or stop token (vLLM's
  ``get_beam_search_score``): above 0 favours longer beams, below 0 shorter ones;
* ``early_stopping``, once ``beam_width`` hypotheses are finished: ``True`` stops at once;
  ``False`` stops when the best live beam, were it to end now, would not score above the
  worst finished one (transformers' heuristic); ``"never"`` stops only when no live beam
  can reach a better score: at the longest length it can reach when ``length_penalty`` is
  above 0, else at its current length (so the answer is the one an exhaustive run of
  the same search gives);
* after ``max_tokens`` steps the live beams end with "length"; the answer is the best
  ``beam_width`` of the finished and (unless stopped early) live beams, best first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from fw.engine.admission import NO_TOKENIZER
from fw.engine.detokenizer import IncrementalDetokenizer, TokenTexts
from fw.engine.outputs import CompletionOutput, Logprob
from fw.engine.sampling_params import BeamSearchParams, RequestOutputKind, SamplingParams
from fw.errors import InvalidParameterError


@dataclass
class BeamSearchSequence:
    """One beam: its generated tokens (an ending EOS or stop token included, as in the
    engine's outputs), their summed logprob, and its text."""

    tokens: list[int]
    cum_logprob: float = 0.0
    text: str = ""
    #: "stop" (EOS, a stop token or string), "length", or None while it lives
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    #: per token: the chosen token's Logprob and the requested top alternatives
    logprobs: list[dict[int, Logprob]] = field(default_factory=list)
    #: tokens that count toward the score's length (an ending EOS or stop token does not)
    scored_length: int = 0
    _detok: IncrementalDetokenizer | None = field(default=None, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def score(self, length_penalty: float, prompt_len: int, length: int | None = None) -> float:
        """vLLM's beam score; ``length`` (generated tokens) defaults to the beam's own."""
        counted = prompt_len + (self.scored_length if length is None else length)
        return self.cum_logprob / max(counted, 1) ** length_penalty


@dataclass
class BeamSearchOutput:
    prompt_token_ids: list[int]
    sequences: list[BeamSearchSequence] = field(default_factory=list)


def candidate_count(params: BeamSearchParams, eos_token_ids: tuple[int, ...]) -> int:
    """Logprobs each step asks for per beam: 2 x width, plus the tokens that may not end a
    beam before ``min_tokens`` (skipped, so as many candidates remain), or the top
    alternatives the client asked to see, if more."""
    count = 2 * params.beam_width
    if params.min_tokens:
        count += len(_ending_ids(params, eos_token_ids))
    return max(count, params.logprobs or 0)


def check_candidates(params: BeamSearchParams, eos_token_ids: tuple[int, ...], max_logprobs: int) -> None:
    """A width whose candidates exceed --max-logprobs is refused naming ``beam_width``
    (the server calls it ``n``), not the logprobs the client never asked for."""
    needed = 2 * params.beam_width + (len(_ending_ids(params, eos_token_ids)) if params.min_tokens else 0)
    if max_logprobs != -1 and needed > max_logprobs:
        raise InvalidParameterError(
            "beam_width", f"beam search asks the engine for {needed} logprobs per beam (2 x the width"
                          f"{' + the ending tokens, with min_tokens' if params.min_tokens else ''}), "
                          f"more than --max-logprobs ({max_logprobs}); use a width of at most {max_logprobs // 2}")


def step_params(params: BeamSearchParams, candidates: int, *, first: bool,
                output_kind: RequestOutputKind) -> SamplingParams:
    """One beam's request of a step: one greedy token and its top ``candidates`` logprobs.
    The first step's request (the prompt alone) also carries what the engine's admission
    step checks once for the whole search (truncation, prompt logprobs, stop strings and
    token ids); on a single token they change nothing the search reads."""
    extra = dict(truncate_prompt_tokens=params.truncate_prompt_tokens, prompt_logprobs=params.prompt_logprobs,
                 stop=params.stop, stop_token_ids=params.stop_token_ids) if first else {}
    return SamplingParams(max_tokens=1, temperature=0.0, logprobs=candidates, ignore_eos=True, detokenize=False,
                          output_kind=output_kind, **extra)


def _ending_ids(params: BeamSearchParams, eos_token_ids: tuple[int, ...]) -> set[int]:
    return set(params.stop_token_ids) | (set() if params.ignore_eos else set(eos_token_ids))


class BeamSearch:
    """The beams of one prompt. ``pending()`` lists the token ids to run this step (one
    request each), ``advance()`` takes each one's logprobs; ``done`` when it is over,
    then ``result()``."""

    def __init__(self, prompt_token_ids: list[int], params: BeamSearchParams, *, max_tokens: int,
                 eos_token_ids: tuple[int, ...], texts: TokenTexts | None,
                 keep_special_ids: frozenset[int] = frozenset()):
        if texts is None and params.stop:
            raise InvalidParameterError("stop", f"{NO_TOKENIZER}: it needs text; use stop_token_ids")
        self.prompt = list(prompt_token_ids)
        self.params = params
        self.max_tokens = max_tokens
        self.ending_ids = _ending_ids(params, eos_token_ids)
        self.eos = frozenset(eos_token_ids)
        detok = None if texts is None else IncrementalDetokenizer(
            texts, self.prompt, skip_special_tokens=params.skip_special_tokens,
            spaces_between_special_tokens=params.spaces_between_special_tokens, keep_special_ids=keep_special_ids)
        self.live = [BeamSearchSequence([], _detok=detok)]
        self.finished: list[BeamSearchSequence] = []
        self.steps = 0
        #: over: out of steps, out of live beams, or stopped early (then the live beams are dropped)
        self.done = False
        self.stopped_early = False

    def pending(self) -> list[list[int]]:
        return [] if self.done else [self.prompt + beam.tokens for beam in self.live]

    def _score(self, beam: BeamSearchSequence, length: int | None = None) -> float:
        return beam.score(self.params.length_penalty, len(self.prompt), length)

    def advance(self, positions: list[dict[int, Logprob]]) -> None:
        """One step: ``positions[i]`` is the logprobs (token -> Logprob with its rank) of the
        next token after ``pending()[i]``."""
        params, width = self.params, self.params.beam_width
        self.steps += 1
        may_end = self.steps >= params.min_tokens
        candidates = []
        for beam, position in zip(self.live, positions):
            ranked = sorted(position.items(), key=lambda item: item[1].rank or 0)
            kept = [(token, lp) for token, lp in ranked if may_end or token not in self.ending_ids]
            for token, lp in kept[:2 * width]:
                candidates.append((beam.cum_logprob + lp.logprob, beam, token, position))
        candidates.sort(key=lambda c: c[0], reverse=True)  # stable: ties keep beam, then rank, order
        live = []
        for cum, parent, token, position in candidates[:2 * width]:
            child = self._child(parent, token, cum, position, may_end)
            if child.finished:
                self.finished.append(child)
            elif len(live) < width:
                live.append(child)
        self.finished = sorted(self.finished, key=self._score, reverse=True)[:width]
        self.live = live
        if self.steps >= self.max_tokens:
            for beam in self.live:
                beam.finish_reason = "length"
            self.done = True
        elif self.live and len(self.finished) >= width and self._cannot_improve():
            self.stopped_early = True
            self.live = []
        self.done = self.done or not self.live

    def _child(self, parent: BeamSearchSequence, token: int, cum: float, position: dict[int, Logprob],
               may_end: bool) -> BeamSearchSequence:
        params = self.params
        logprobs = parent.logprobs
        if params.logprobs is not None:
            top = sorted(position.items(), key=lambda item: item[1].rank or 0)[:params.logprobs]
            logprobs = logprobs + [{token: position[token], **{t: lp for t, lp in top if t != token}}]
        child = BeamSearchSequence(parent.tokens + [token], cum, parent.text, logprobs=logprobs,
                                   scored_length=len(parent.tokens) + 1)
        detok = parent._detok
        if may_end and token in self.ending_ids:
            child.finish_reason, child.stop_reason = "stop", None if token in self.eos else token
            child.scored_length -= 1
            if params.include_stop_str_in_output and detok is not None:
                child.text = _forked(detok, token).text
            return child
        if detok is None:
            return child
        detok = child._detok = _forked(detok, token)
        child.text = detok.text
        if may_end and params.stop:
            longest = max(len(stop) for stop in params.stop)
            start = max(0, len(parent.text) - longest)
            found = min(((at, stop) for stop in params.stop if (at := detok.text.find(stop, start)) != -1),
                        default=None)
            if found is not None:
                at, stop = found
                child.text = detok.text[:at + len(stop)] if params.include_stop_str_in_output else detok.text[:at]
                child.finish_reason, child.stop_reason = "stop", stop
        return child

    def _cannot_improve(self) -> bool:
        """The ``early_stopping`` rule, with ``beam_width`` hypotheses finished."""
        mode = self.params.early_stopping
        if mode is True:
            return True
        best = self.live[0]  # the live beams are in order of cumulative logprob, all one length
        if mode == "never" and self.params.length_penalty > 0:
            reachable = self._score(best, self.max_tokens)
        else:
            reachable = self._score(best)
        return self._score(self.finished[-1]) >= reachable

    def result(self) -> list[BeamSearchSequence]:
        """The best ``beam_width`` beams, best first."""
        return sorted(self.finished + self.live, key=self._score, reverse=True)[:self.params.beam_width]

    def completions(self, with_logprobs: bool) -> list[CompletionOutput]:
        """``result()`` in the engine's output shape, one choice per beam."""
        return [CompletionOutput(index=i, text=beam.text, token_ids=list(beam.tokens),
                                 cumulative_logprob=beam.cum_logprob,
                                 logprobs=beam.logprobs if with_logprobs else None,
                                 finish_reason=beam.finish_reason or "length", stop_reason=beam.stop_reason)
                for i, beam in enumerate(self.result())]


def _forked(detok: IncrementalDetokenizer, token: int) -> IncrementalDetokenizer:
    """A copy of ``detok`` that has also read ``token`` (beams that share a parent share
    nothing mutable)."""
    child = copy.copy(detok)
    child.window = list(detok.window)
    child.add(token)
    return child
