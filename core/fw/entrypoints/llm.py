"""`LLM`: the offline API, with vLLM's semantics.

    llm = LLM()                       # the embedded SmolLM2-135M-Instruct
    llm = LLM("/path/to/model", max_model_len=2048, dtype="float32")
    outputs = llm.generate(["Hello"], SamplingParams(max_tokens=16))
    outputs = llm.chat([{"role": "user", "content": "Hi"}])
    vectors = LLM("./all-MiniLM-L6-v2").embed(["Hello"])[0].outputs.embedding
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

from fw.config import EngineConfig
from fw.engine.llm_engine import LLMEngine
from fw.engine.outputs import PoolingRequestOutput, RequestOutput
from fw.engine.protocol import PromptInput
from fw.engine.sampling_params import BeamSearchParams, SamplingParams
from fw.pooling.params import PoolingParams


class LLM:
    def __init__(self, model: str | None = None, **options: Any):
        """``options`` are engine option names as keywords (``max_model_len=...``,
        ``enable_prefix_caching=False``, ``kv_cache_memory_bytes="512M"`` ...)."""
        self.config = EngineConfig.from_options(model=model, **options)
        self.engine = LLMEngine.from_config(self.config)
        self._ids = itertools.count()

    def get_tokenizer(self):
        return self.engine.tokenizer

    def get_default_sampling_params(self) -> SamplingParams:
        """The model's generation_config defaults, else fw's."""
        return self.engine.default_sampling_params()

    # -- generation --------------------------------------------------------------------

    def generate(self, prompts: PromptInput | Sequence[PromptInput],
                 sampling_params: SamplingParams | Sequence[SamplingParams] | None = None, *,
                 use_tqdm: bool = True, lora_request: Any = None,
                 priority: Sequence[int] | None = None) -> list[RequestOutput]:
        prompts = _as_prompt_list(prompts)
        params = _broadcast(sampling_params or self.get_default_sampling_params(), len(prompts), "sampling_params")
        loras = _broadcast(lora_request, len(prompts), "lora_request")
        priorities = list(priority) if priority is not None else [0] * len(prompts)
        ids = []
        for lora in dict.fromkeys(lora for lora in loras if lora is not None):
            self.engine.add_lora(lora)  # offline, an adapter loads on first use
        for prompt, param, lora, prio in zip(prompts, params, loras, priorities):
            request_id = str(next(self._ids))
            self.engine.add_request(request_id, prompt, param, priority=prio, lora_request=lora)
            ids.append(request_id)
        return self._run(ids, use_tqdm)

    # -- pooling (fw.pooling) -----------------------------------------------------------

    def encode(self, prompts: PromptInput | Sequence[PromptInput],
               pooling_params: PoolingParams | Sequence[PoolingParams] | None = None, *,
               use_tqdm: bool = True, priority: Sequence[int] | None = None) -> list[PoolingRequestOutput]:
        """One pooled output per prompt (``PoolingParams.task``: embed, classify or encode)."""
        prompts = _as_prompt_list(prompts)
        params = _broadcast(pooling_params or PoolingParams(), len(prompts), "pooling_params")
        priorities = list(priority) if priority is not None else [0] * len(prompts)
        ids = []
        for prompt, param, prio in zip(prompts, params, priorities):
            ids.append(str(next(self._ids)))
            self.engine.add_request(ids[-1], prompt, param, priority=prio)
        return self._run(ids, use_tqdm)

    def embed(self, prompts: PromptInput | Sequence[PromptInput], *, use_tqdm: bool = True,
              **params: Any) -> list[PoolingRequestOutput]:
        """Embeddings (``outputs.embedding``); ``params``: PoolingParams fields (dimensions, normalize)."""
        return self.encode(prompts, PoolingParams("embed", **params), use_tqdm=use_tqdm)

    def classify(self, prompts: PromptInput | Sequence[PromptInput], *, use_tqdm: bool = True,
                 **params: Any) -> list[PoolingRequestOutput]:
        """Class probabilities (``outputs.data``) from a classification model."""
        return self.encode(prompts, PoolingParams("classify", **params), use_tqdm=use_tqdm)

    def _run(self, ids: list[str], use_tqdm: bool) -> list[Any]:
        finals: dict[str, Any] = {}
        bar = None
        if use_tqdm:
            from tqdm import tqdm

            bar = tqdm(total=len(ids), desc="Processed prompts", dynamic_ncols=True)
        try:
            while self.engine.has_unfinished_requests():
                for output in self.engine.step():
                    if output.finished:
                        finals[output.request_id] = output
                        if bar is not None:
                            bar.update(1)
        except BaseException:
            self.engine.abort_request([i for i in ids if i not in finals])
            raise
        finally:
            if bar is not None:
                bar.close()
        return [finals[i] for i in ids]

    def chat(self, messages: list[dict] | list[list[dict]],
             sampling_params: SamplingParams | Sequence[SamplingParams] | None = None, *,
             use_tqdm: bool = True, lora_request: Any = None, chat_template: str | None = None,
             chat_template_content_format: str = "auto", add_generation_prompt: bool = True,
             continue_final_message: bool = False, tools: list[dict] | None = None,
             chat_template_kwargs: dict | None = None) -> list[RequestOutput]:
        from fw.chat import render_chat

        conversations = [messages] if messages and isinstance(messages[0], dict) else list(messages)
        tokenizer = self.get_tokenizer()
        prompts = []
        for conversation in conversations:
            text = render_chat(tokenizer, conversation, chat_template=chat_template,
                               add_generation_prompt=add_generation_prompt,
                               continue_final_message=continue_final_message, tools=tools,
                               chat_template_kwargs=chat_template_kwargs,
                               content_format=chat_template_content_format)
            prompts.append({"prompt": text,
                            "prompt_token_ids": tokenizer.encode(text, add_special_tokens=False)})
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm, lora_request=lora_request)

    def beam_search(self, prompts: PromptInput | Sequence[PromptInput], params: BeamSearchParams):
        from fw.entrypoints.beam_search import run_beam_search

        return run_beam_search(self, _as_prompt_list(prompts), params)


def _as_prompt_list(prompts) -> list[PromptInput]:
    if isinstance(prompts, (str, dict)):
        return [prompts]
    prompts = list(prompts)
    if prompts and all(isinstance(t, int) for t in prompts):
        return [prompts]  # one prompt given as token ids
    return prompts


def _broadcast(value, count: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name}: got {len(value)} for {count} prompts")
        return list(value)
    return [value] * count
