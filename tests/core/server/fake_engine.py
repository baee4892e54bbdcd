"""A fake EngineClient for server tests: deterministic, fast, observable.

It "generates" characters of a fixed sentence, one byte-level token per character, and
honours what the server must pass through: max_tokens, stop strings and stop token ids
(with min_tokens and include_stop_str_in_output), n, logprobs and prompt_logprobs
shapes, DELTA outputs. Requests pass the engine's real admission step
(``fw.engine.admission``), so the server's errors for refused requests are the real
engine's. tests/core/server/test_engine_contract.py holds it to the real engine's
behaviour on the rest. It can be slowed down
(``token_delay``) so clients can disconnect mid-stream, records what it was asked
(``requests``, ``extras``, ``lora_requests``) and what it answered (``outputs``), and raises ``OverloadedError`` beyond
``queue_limit`` running requests. LoRA adapters are a registry of names (``loras``):
an adapter shifts the generated text by its id, so tests can tell who answered. It ignores structured-output constraints (the real engine's are
tested in tests/core/structured and against SmolLM2). Given a ``pooling`` setup it also
pools (``encode``, through the real ``admit_pooling``): its "hidden state" of a token is a
fixed function of the token id and its type (``fake_states``), pooled by mean, so tests
can compute what any request must get.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import lru_cache
from typing import Any, AsyncIterator

import numpy as np

from fw.engine.admission import Admission
from fw.engine.outputs import (
    CompletionOutput, Logprob, PoolingOutput, PoolingRequestOutput, RequestMetrics, RequestOutput,
)
from fw.engine.protocol import EngineClient, EngineStats, ModelInfo
from fw.engine.sampling_params import RequestOutputKind, SamplingParams
from fw.errors import EngineDeadError, ModelNotFoundError, OverloadedError
from fw.lora.request import LoRARequest
from fw.pooling.params import PoolingParams
from fw.pooling.setup import PoolingSetup

SENTENCE = " the quick brown fox jumps over the lazy dog."
CHATML = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@lru_cache(maxsize=None)
def make_tokenizer(chat_template: str | None = CHATML) -> Any:
    """A real Hugging Face fast tokenizer: one token per byte, plus <s> </s> <pad>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "<pad>": 2}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>")
    tokenizer.chat_template = chat_template
    return tokenizer


class FakeEngine(EngineClient):
    def __init__(self, *, max_model_len: int = 256, max_logprobs: int = 5, token_delay: float = 0.0,
                 queue_limit: int | None = None, chat_template: str | None = CHATML,
                 served_names: tuple[str, ...] = ("fake-model",), model_chat_template: str | None = None,
                 loras: tuple[LoRARequest, ...] = (), generation_defaults: dict[str, Any] | None = None,
                 max_num_seqs: int = 128, pooling: PoolingSetup | None = None):
        self.tokenizer = make_tokenizer(chat_template)
        runner = pooling.runner if pooling is not None else "generate"
        self.model_info = ModelInfo(
            name=served_names[0], served_model_names=list(served_names), path="/models/fake",
            max_model_len=max_model_len, vocab_size=len(self.tokenizer), max_logprobs=max_logprobs,
            eos_token_ids=[1], chat_template=model_chat_template, runner=runner, pooling=pooling,
            max_new_tokens=(generation_defaults or {}).get("max_tokens"),
        )
        self.admission = Admission(
            max_model_len=max_model_len, vocab_size=len(self.tokenizer), max_num_seqs=max_num_seqs,
            max_logprobs=max_logprobs, num_kv_blocks=max_model_len, block_size=16, tokenizer=self.tokenizer,
            defaults=dict(generation_defaults or {}), runner=runner, pooling=pooling)
        self.token_delay = token_delay
        self.queue_limit = queue_limit
        self.running: set[str] = set()
        self.aborted: list[str] = []
        self.requests: list[tuple[str, dict, SamplingParams]] = []
        #: request id -> engine extras the server passed (keep_special_ids, ...)
        self.extras: dict[str, dict] = {}
        self.loras: dict[str, LoRARequest] = {lora.lora_name: lora for lora in loras}
        #: request id -> the lora_request the server passed (None for the base model)
        self.lora_requests: dict[str, LoRARequest | None] = {}
        #: request id -> the RequestOutputs it yielded (what a response must be made of)
        self.outputs: dict[str, list[RequestOutput]] = {}
        self.seen_prompts: set[tuple[int, ...]] = set()
        self.dead = False
        self.shut_down = False
        self.fail_after: int | None = None  # raise RuntimeError after this many steps
        self._ids = {c: self.tokenizer.encode(c, add_special_tokens=False)[0] for c in set(SENTENCE)}

    # -- the contract ----------------------------------------------------------------

    def generate(self, prompt, params, request_id, *, priority=0, lora_request=None,
                 **extras) -> AsyncIterator[RequestOutput]:
        self.extras[request_id] = extras
        self.lora_requests[request_id] = lora_request
        return self._generate(prompt, params, request_id)

    def encode(self, prompt, params, request_id, *, priority=0) -> AsyncIterator[PoolingRequestOutput]:
        return self._encode(prompt, params, request_id)

    async def _encode(self, prompt: dict, params: PoolingParams, request_id: str):
        text, ids, params, types = self.admission.admit_pooling(
            prompt.get("prompt"), list(prompt["prompt_token_ids"]), params, prompt.get("token_type_ids"))
        if self.queue_limit is not None and len(self.running) >= self.queue_limit:
            raise OverloadedError("the waiting queue is full", retry_after=3)
        self.requests.append((request_id, {"prompt": text, "prompt_token_ids": ids, "token_type_ids": types}, params))
        self.running.add(request_id)
        try:
            await asyncio.sleep(self.token_delay)
            if request_id not in self.running:
                yield PoolingRequestOutput(request_id, None, ids)
                return
            yield PoolingRequestOutput(request_id, PoolingOutput(fake_pooled(self.model_info.pooling, ids, types, params)),
                                       ids, prompt=text, metrics=RequestMetrics(time.monotonic(), time.monotonic()))
        finally:
            self.running.discard(request_id)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)
        self.running.discard(request_id)

    def stats(self) -> EngineStats:
        used = min(1.0, 0.05 * len(self.running))
        return EngineStats(num_running=len(self.running), num_waiting=0, kv_cache_usage=used,
                           num_blocks=100, num_free_blocks=int(100 * (1 - used)),
                           prefix_cache_queries=10, prefix_cache_hits=4, num_preemptions=1)

    def check_health(self) -> None:
        if self.dead:
            raise EngineDeadError("the engine loop died (fake)")

    async def shutdown(self) -> None:
        self.shut_down = True

    async def add_lora(self, lora_request: LoRARequest) -> bool:
        existing = self.loras.get(lora_request.lora_name)
        if existing is not None and existing.lora_path == lora_request.lora_path:
            return False
        if existing is not None or not os.path.isdir(lora_request.lora_path):
            from fw.errors import LoRAAdapterError

            raise LoRAAdapterError(lora_request.lora_name, lora_request.lora_path,
                                   "already loaded from elsewhere" if existing else "the folder does not exist")
        self.loras[lora_request.lora_name] = lora_request
        return True

    async def remove_lora(self, lora_name: str) -> bool:
        return self.loras.pop(lora_name, None) is not None

    def list_loras(self) -> list[LoRARequest]:
        return list(self.loras.values())

    def generated(self, request_id: str, index: int = 0) -> list[tuple[int, dict[int, Logprob] | None]]:
        """Choice ``index`` of a request as this engine gave it: each generated token with its
        logprobs position (None when logprobs were not asked for)."""
        tokens = []
        for out in self.outputs[request_id]:
            for completion in out.outputs:
                if completion.index == index:
                    positions = completion.logprobs or [None] * len(completion.token_ids)
                    tokens.extend(zip(completion.token_ids, positions))
        return tokens

    # -- generation ------------------------------------------------------------------

    def _char(self, ids: list[int], index: int, step: int, params: SamplingParams, shift: int) -> str:
        offset = sum(ids) + 7 * index + (0 if params.temperature == 0 else (params.seed or 0)) + shift
        return SENTENCE[(offset + step) % len(SENTENCE)]

    def _position(self, token_id: int, char: str, top: int | None) -> dict[int, Logprob]:
        # The sampled token is the most likely one, so it is one of the top ``top``.
        position = {token_id: Logprob(-0.5, rank=1, decoded_token=char)}
        count = 5 if top == -1 else max((top or 0) - 1, 0)
        for k, alt in enumerate(c for c in "xyzwvutsrq" if self._ids.get(c) != token_id):
            if k >= count:
                break
            alt_id = self.tokenizer.encode(alt, add_special_tokens=False)[0]
            position[alt_id] = Logprob(-1.0 - k, rank=k + 2, decoded_token=alt)
        return position

    async def _generate(self, prompt: dict, params: SamplingParams, request_id: str):
        assert params.output_kind == RequestOutputKind.DELTA
        text, ids, params = self.admission.admit(prompt.get("prompt"), list(prompt["prompt_token_ids"]), params)
        prompt = {"prompt": text, "prompt_token_ids": ids}
        lora = self.lora_requests[request_id]
        if self.dead:
            raise EngineDeadError("the engine loop died (fake)")
        if lora is not None and lora.lora_name not in self.loras:
            raise ModelNotFoundError(f"LoRA adapter {lora.lora_name!r} is not loaded", param="model")
        if self.queue_limit is not None and len(self.running) >= self.queue_limit:
            raise OverloadedError("the waiting queue is full", retry_after=3)
        self.requests.append((request_id, prompt, params))
        cached = len(ids) - 1 if tuple(ids) in self.seen_prompts else 0
        self.seen_prompts.add(tuple(ids))
        self.running.add(request_id)
        timing = RequestMetrics(arrival_time=time.monotonic(), first_scheduled_time=time.monotonic())
        n = params.n
        texts, sent = [""] * n, [0] * n
        done: list[str | None] = [None] * n
        holdback = max((len(s) for s in params.stop), default=1) - 1
        try:
            for step in range(params.max_tokens):
                await asyncio.sleep(self.token_delay)
                if request_id not in self.running:
                    return
                if self.fail_after is not None and step >= self.fail_after:
                    raise RuntimeError("fake engine failure")
                outputs = []
                for i in range(n):
                    if done[i] is not None:
                        continue
                    shift = 11 * lora.lora_int_id if lora else 0
                    char = self._char(ids, i, step, params, shift)
                    stops_count = step + 1 >= params.min_tokens
                    for _ in SENTENCE:  # stop tokens are masked before min_tokens, as the real sampler does
                        if stops_count or self._ids[char] not in params.stop_token_ids:
                            break
                        shift += 1
                        char = self._char(ids, i, step, params, shift)
                    token = self._ids[char]
                    texts[i] += char
                    reason, stop_reason = None, None
                    if stops_count and token in params.stop_token_ids:
                        if not params.include_stop_str_in_output:
                            texts[i] = texts[i][:-1]
                        reason, stop_reason = "stop", token
                    elif stops_count and params.stop:
                        # the earliest stop string that the new character completes
                        found = min(((at, stop) for stop in params.stop
                                     if (at := texts[i].find(stop, max(0, len(texts[i]) - len(stop)))) >= 0),
                                    default=None)
                        if found is not None:
                            at, stop = found
                            texts[i] = texts[i][: at + (len(stop) if params.include_stop_str_in_output else 0)]
                            reason, stop_reason = "stop", stop
                    if reason is None and step + 1 == params.max_tokens:
                        reason = "length"
                    upto = len(texts[i]) if reason else max(sent[i], len(texts[i]) - holdback)
                    delta, sent[i] = texts[i][sent[i]:upto], upto
                    done[i] = reason
                    positions = [self._position(token, char, params.logprobs)] if params.logprobs is not None else None
                    outputs.append(CompletionOutput(index=i, text=delta, token_ids=[token], logprobs=positions,
                                                    finish_reason=reason, stop_reason=stop_reason))
                now = time.monotonic()
                timing.first_token_time = timing.first_token_time or now
                timing.last_token_time = now
                finished = all(d is not None for d in done)
                if finished:
                    timing.finished_time = now
                prompt_logprobs = None
                if step == 0 and params.prompt_logprobs is not None:
                    prompt_logprobs = [None] + [
                        self._position(t, self.tokenizer.decode([t]), params.prompt_logprobs) for t in ids[1:]]
                out = RequestOutput(request_id=request_id, prompt=prompt.get("prompt"), prompt_token_ids=ids,
                                    outputs=outputs, finished=finished, prompt_logprobs=prompt_logprobs,
                                    num_cached_tokens=cached, metrics=timing,
                                    lora_name=lora.lora_name if lora else None)
                self.outputs.setdefault(request_id, []).append(out)
                yield out
                if finished:
                    return
        finally:
            self.running.discard(request_id)


def fake_states(ids: list[int], types: list[int] | None, size: int) -> np.ndarray:
    """The fake engine's hidden state of each token: ``sin((id + 7 * type + 1) * (j + 1))``."""
    rows = np.asarray(ids, dtype=np.float64)[:, None] + 7 * np.asarray(types or [0] * len(ids))[:, None] + 1
    return np.sin(rows * np.arange(1, size + 1)[None, :]).astype(np.float32)


def fake_pooled(setup: PoolingSetup, ids: list[int], types: list[int] | None, params: PoolingParams) -> np.ndarray:
    """What the fake engine returns for a resolved request: mean pooling, then the task's head
    (a classifier's logits are the first ``num_labels`` dimensions)."""
    states = fake_states(ids, types, setup.hidden_size)
    if params.task == "encode":
        out = states
    elif params.task == "classify":
        logits = states.mean(0)[: setup.num_labels]
        if params.activation:
            logits = 1 / (1 + np.exp(-logits)) if len(logits) == 1 else np.exp(logits) / np.exp(logits).sum()
        return logits.astype(np.float32)
    else:
        out = states.mean(0)[: params.dimensions or None]
    if params.normalize:
        out = out / np.linalg.norm(out, axis=-1, keepdims=True)
    return out.astype(np.float32)
