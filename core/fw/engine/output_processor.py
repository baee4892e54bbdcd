"""Turns sampled tokens into what clients see: text (incrementally detokenized), stop
strings, logprobs with their token texts, and RequestOutputs in the shape each request
asked for (cumulative, deltas, or final only). A request with n > 1 is one parent whose
children are separate sequences; its outputs carry every child's index. A pooling request
gets one PoolingRequestOutput, when its prompt has been pooled (or it ended otherwise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fw.engine.detokenizer import IncrementalDetokenizer, TokenTexts
from fw.engine.outputs import CompletionOutput, PoolingOutput, PoolingRequestOutput, RequestMetrics, RequestOutput
from fw.engine.request import Request, RequestStatus
from fw.engine.sampling_params import RequestOutputKind, SamplingParams
from fw.engine.step_output import StepOutput


@dataclass
class _Child:
    request: Request
    detok: IncrementalDetokenizer
    text: str = ""  # text released so far (stop strings cut, hold-back excluded)
    sent_text: int = 0
    sent_tokens: int = 0
    sent_logprobs: int = 0
    reported_finish: bool = False


@dataclass
class _Parent:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    children: list[_Child]
    lora_name: str | None = None
    sent_prompt_logprobs: bool = False

    @property
    def finished(self) -> bool:
        return all(c.request.status.finished for c in self.children)



class OutputProcessor:
    def __init__(self, tokenizer) -> None:
        self.texts = TokenTexts(tokenizer) if tokenizer is not None else None
        self.parents: dict[str, _Parent] = {}
        self.child_parent: dict[str, str] = {}
        #: pooling request id -> (prompt text, the request)
        self.pooling: dict[str, tuple[str | None, Request]] = {}

    def add_pooling(self, request: Request, prompt: str | None) -> None:
        self.pooling[request.request_id] = (prompt, request)

    def add(self, request_id: str, prompt: str | None, prompt_token_ids: list[int],
            params: SamplingParams, children: list[Request], *, keep_special_ids=frozenset(),
            lora_name: str | None = None) -> None:
        kids = [
            _Child(child, IncrementalDetokenizer(
                self.texts, prompt_token_ids, skip_special_tokens=params.skip_special_tokens,
                spaces_between_special_tokens=params.spaces_between_special_tokens,
                keep_special_ids=keep_special_ids,
            ) if self.texts is not None and params.detokenize else None)
            for child in children
        ]
        self.parents[request_id] = _Parent(request_id, prompt, prompt_token_ids, params, kids, lora_name)
        for child in children:
            self.child_parent[child.request_id] = request_id

    def has(self, request_id: str) -> bool:
        return request_id in self.parents or request_id in self.pooling

    def children(self, request_id: str) -> list[Request]:
        if request_id in self.pooling:
            return [self.pooling[request_id][1]]
        parent = self.parents.get(request_id)
        return [c.request for c in parent.children] if parent else []

    def process(self, changed: list[Request], step: StepOutput, *,
                on_stop: Callable[[Request], None]) -> list[RequestOutput]:
        """Detokenize the tokens each changed child got, finish children that hit a stop
        string (``on_stop``; tokens a speculative step made after the stop are dropped),
        record the step's logprobs, and build outputs for every parent that changed (with
        the error of a parent the step failed)."""
        touched: dict[str, _Parent] = {}
        outputs: list = []
        for request in changed:
            if request.pooling is not None:
                outputs.extend(self._pooled(request, step))
                continue
            parent = self._parent_of(request)
            if parent is None:
                continue
            child = parent.children[request.index]
            count = len(step.sampled.get(request.request_id, ()))
            if child.detok is not None and count:
                new_tokens = request.output_token_ids[-count:]
                if _stopped_by_its_last_token(request) and not parent.params.include_stop_str_in_output:
                    # Stopped by a token (EOS or a stop token id): as in vLLM, its text is
                    # not part of the output unless include_stop_str_in_output. (A request
                    # whose grammar ended keeps its last token: that token is the output.)
                    new_tokens = new_tokens[:-1]
                kept = self._detokenize(child, new_tokens, parent.params)
                if kept is not None:
                    if kept < count:
                        del request.all_token_ids[kept - count:]
                        step.truncate(request.request_id, kept)
                    on_stop(request)
            touched[parent.request_id] = parent
        self._record_logprobs(step)
        for parent in touched.values():
            output = self._make_output(parent)
            if output is not None:
                output.error = step.failed.get(parent.request_id)
                outputs.append(output)
            if parent.finished:
                self._drop(parent)
        return outputs

    def _pooled(self, request: Request, step: StepOutput) -> list[PoolingRequestOutput]:
        """The output of a pooling request that finished (pooled, failed or aborted)."""
        if not request.status.finished or request.request_id not in self.pooling:
            return []
        prompt, _ = self.pooling.pop(request.request_id)
        data = step.pooled.get(request.request_id)
        return [PoolingRequestOutput(
            request_id=request.request_id, prompt=prompt, prompt_token_ids=request.prompt_token_ids,
            outputs=None if data is None else PoolingOutput(data.numpy()),
            error=step.failed.get(request.parent_id),
            metrics=RequestMetrics(request.arrival_time, request.first_scheduled_time, None, None,
                                   request.finished_time))]

    def aborted(self, requests: list[Request]) -> list[RequestOutput]:
        """The final outputs of requests ended outside a step (aborts)."""
        return self.process(requests, StepOutput(), on_stop=lambda request: None)

    def _record_logprobs(self, step: StepOutput) -> None:
        """Keep the step's logprobs with their sequences (prompt logprobs also of prompt
        chunks that sampled nothing)."""
        for request_id, entries in step.prompt_logprobs.items():
            request = self._request(request_id)
            if request is not None and entries:
                if not request.prompt_logprobs:
                    request.prompt_logprobs.append(None)  # nothing predicts the first token
                request.prompt_logprobs.extend(entries)
        for request_id, entries in step.logprobs.items():
            request = self._request(request_id)
            if request is not None:
                request.output_logprobs.extend(entries)
                request.cumulative_logprob += sum(step.sampled_logprobs[request_id])

    def _request(self, request_id: str) -> Request | None:
        parent = self.parents.get(self.child_parent.get(request_id, ""))
        if parent is None:
            return None
        return next((c.request for c in parent.children if c.request.request_id == request_id), None)

    def _parent_of(self, request: Request) -> _Parent | None:
        parent_id = self.child_parent.get(request.request_id)
        return self.parents.get(parent_id) if parent_id else None

    def _detokenize(self, child: _Child, new_tokens: list[int], params: SamplingParams) -> int | None:
        """Feed the tokens; when a stop string ends the child, how many of them it keeps
        (those up to the one completing the stop), else None."""
        request = child.request
        stops = params.stop
        if not stops or request.status.finished:
            for token in new_tokens:
                child.detok.add(token)
            child.text = child.detok.text
            return None
        longest = max(len(s) for s in stops)
        before = request.num_output_tokens - len(new_tokens)
        for kept, token in enumerate(new_tokens, start=1):
            child.detok.add(token)
            full = child.detok.text
            if before + kept >= params.min_tokens:
                search_from = max(0, len(child.text) - longest)
                found = min(((at, stop) for stop in stops if (at := full.find(stop, search_from)) != -1),
                            default=None)
                if found is not None:
                    at, stop = found
                    child.text = full[: at + len(stop)] if params.include_stop_str_in_output else full[:at]
                    request.stop_reason = stop
                    return kept
            # Hold back what could be the start of a stop string.
            held = 0 if params.include_stop_str_in_output else longest - 1
            child.text = full[: max(len(child.text), len(full) - held)]
        return None

    def _make_output(self, parent: _Parent) -> RequestOutput | None:
        kind = parent.params.output_kind
        finished = parent.finished
        if kind == RequestOutputKind.FINAL_ONLY and not finished:
            return None
        delta = kind == RequestOutputKind.DELTA
        completions = []
        for child in parent.children:
            request = child.request
            if request.status.finished and child.detok is not None and not isinstance(request.stop_reason, str):
                child.text = child.detok.text  # finished without a stop string: release what was held
            text = child.text
            tokens = request.output_token_ids
            logprobs = request.output_logprobs if parent.params.logprobs is not None else None
            if delta:
                new_text, new_tokens = text[child.sent_text:], tokens[child.sent_tokens:]
                new_logprobs = logprobs[child.sent_logprobs:] if logprobs is not None else None
                if not new_text and not new_tokens and not (request.status.finished and not child.reported_finish):
                    continue
                completions.append(self._completion(child, new_text, new_tokens, new_logprobs))
            else:
                completions.append(self._completion(child, text, list(tokens), list(logprobs) if logprobs is not None else None))
            child.sent_text, child.sent_tokens = len(text), len(tokens)
            child.reported_finish = request.status.finished
            child.sent_logprobs = len(logprobs) if logprobs is not None else 0
        if not completions and not finished:
            return None
        first = parent.children[0].request
        prompt_logprobs = None
        if parent.params.prompt_logprobs is not None and (not delta or not parent.sent_prompt_logprobs):
            prompt_logprobs = self._decode_logprobs(first.prompt_logprobs)
            parent.sent_prompt_logprobs = True
        return RequestOutput(
            request_id=parent.request_id, prompt=parent.prompt, prompt_token_ids=parent.prompt_token_ids,
            outputs=completions, finished=finished, prompt_logprobs=prompt_logprobs,
            num_cached_tokens=max(first.num_cached_tokens, 0), lora_name=parent.lora_name,
            metrics=RequestMetrics(first.arrival_time, first.first_scheduled_time, first.first_token_time,
                                   first.last_token_time, first.finished_time, first.model_forward_time,
                                   first.model_execute_time),
        )

    def _completion(self, child: _Child, text: str, tokens: list[int], logprobs) -> CompletionOutput:
        request = child.request
        return CompletionOutput(
            index=request.index, text=text, token_ids=tokens,
            cumulative_logprob=request.cumulative_logprob if request.params.logprobs is not None else None,
            logprobs=self._decode_logprobs(logprobs) if logprobs is not None else None,
            finish_reason=request.status.finish_reason, stop_reason=request.stop_reason,
        )

    def _decode_logprobs(self, entries):
        if entries is None or self.texts is None:
            return entries
        for entry in entries:
            if entry is None:
                continue
            for token, logprob in entry.items():
                if logprob.decoded_token is None:
                    logprob.decoded_token = self.texts.single(token)
        return entries

    def _drop(self, parent: _Parent) -> None:
        self.parents.pop(parent.request_id, None)
        for child in parent.children:
            self.child_parent.pop(child.request.request_id, None)


def _stopped_by_its_last_token(request: Request) -> bool:
    """Whether ``request`` finished because its last token is EOS or a stop token id."""
    if request.status != RequestStatus.FINISHED_STOPPED or not request.output_token_ids:
        return False
    token, params = request.output_token_ids[-1], request.params
    return token in params.stop_token_ids or (not params.ignore_eos and token in request.eos_token_ids)
