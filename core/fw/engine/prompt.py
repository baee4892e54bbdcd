"""Turning a prompt and its sampling parameters into something the scheduler can run,
or a clear error naming the parameter that makes it impossible."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fw.engine.protocol import PromptInput
from fw.engine.sampling_params import SamplingParams
from fw.errors import ContextLengthError, InvalidParameterError

if TYPE_CHECKING:
    from fw.engine.llm_engine import LLMEngine


NO_TOKENIZER = "the engine runs without a tokenizer (--skip-tokenizer-init)"


def tokenize_prompt(tokenizer: Any, prompt: PromptInput) -> tuple[str | None, list[int]]:
    """(prompt text if known, prompt token ids). Text is tokenized with special tokens
    added, as the model's tokenizer config says."""
    if tokenizer is None and (isinstance(prompt, str) or (isinstance(prompt, dict) and "prompt_token_ids" not in prompt)):
        raise InvalidParameterError("prompt", f"{NO_TOKENIZER}: send prompt token ids, not text")
    if isinstance(prompt, str):
        return prompt, tokenizer.encode(prompt)
    if isinstance(prompt, dict):
        if "prompt_token_ids" in prompt:
            return prompt.get("prompt"), list(prompt["prompt_token_ids"])
        if "prompt" in prompt:
            return prompt["prompt"], tokenizer.encode(prompt["prompt"])
        raise InvalidParameterError("prompt", "a prompt dict needs 'prompt' or 'prompt_token_ids'")
    if isinstance(prompt, (list, tuple)) and all(isinstance(t, int) for t in prompt):
        return None, list(prompt)
    raise InvalidParameterError("prompt", f"expected text or a list of token ids, got {type(prompt).__name__}")


def _bad_words_ids(tokenizer: Any, words: list[str]) -> list[list[int]]:
    """Each bad word as token ids, with and without a leading space (as it would appear
    after another word)."""
    ids: list[list[int]] = []
    for word in words:
        for variant in (word, " " + word.lstrip()):
            tokens = tokenizer.encode(variant, add_special_tokens=False)
            if tokens and tokens not in ids:
                ids.append(tokens)
    return ids


def validate_and_prepare(engine: "LLMEngine", params: SamplingParams, prompt_ids: list[int]) -> tuple[SamplingParams, list[int]]:
    max_len = engine.max_model_len
    vocab = engine.loaded.hf_config.vocab_size
    if engine.tokenizer is None:
        for name in ("stop", "bad_words", "structured_outputs"):
            if getattr(params, name):
                raise InvalidParameterError(name, f"{NO_TOKENIZER}: it needs text; use stop_token_ids, "
                                                  "allowed_token_ids or logit_bias")
    max_seqs = engine.scheduler_config.max_num_seqs
    if params.n > max_seqs:
        raise InvalidParameterError("n", f"at most {max_seqs} samples per request (--max-num-seqs), got {params.n}")
    if params.truncate_prompt_tokens is not None:
        prompt_ids = prompt_ids[-params.truncate_prompt_tokens:]
    if not prompt_ids:
        raise InvalidParameterError("prompt", "the prompt is empty")
    bad_ids = [t for t in prompt_ids if not 0 <= t < vocab]
    if bad_ids:
        raise InvalidParameterError("prompt", f"token id {bad_ids[0]} is out of range for a vocabulary of {vocab}")
    if len(prompt_ids) >= max_len:
        raise ContextLengthError(
            "prompt", f"this model's maximum context length is {max_len} tokens, but the prompt has "
                      f"{len(prompt_ids)} tokens; shorten it (or set truncate_prompt_tokens)")
    params = params.clone()
    if params.max_tokens is None:
        params.max_tokens = max_len - len(prompt_ids)
    limit = engine.generation_defaults.get("max_tokens")  # --generation-config's max_new_tokens: server-wide
    if limit is not None:
        params.max_tokens = min(params.max_tokens, limit)
    if len(prompt_ids) + params.max_tokens > max_len:
        raise ContextLengthError(
            "max_tokens", f"this model's maximum context length is {max_len} tokens, but {len(prompt_ids) + params.max_tokens} "
                          f"were requested ({len(prompt_ids)} in the prompt, {params.max_tokens} for the output); "
                          "reduce the prompt or max_tokens")
    cap = engine.config.model.max_logprobs
    for name in ("logprobs", "prompt_logprobs"):
        value = getattr(params, name)
        if value is not None and cap != -1 and (value == -1 or value > cap):
            raise InvalidParameterError(name, f"at most {cap} logprobs may be requested (--max-logprobs), got {value}")
    for name in ("allowed_token_ids", "stop_token_ids"):
        ids = getattr(params, name) or []
        if any(not 0 <= t < vocab for t in ids):
            raise InvalidParameterError(name, f"token ids must be in [0, {vocab})")
    if params.logit_bias and any(not 0 <= t < vocab for t in params.logit_bias):
        raise InvalidParameterError("logit_bias", f"token ids must be in [0, {vocab})")
    if params.structured_outputs is not None:
        engine.structured.compile(params.structured_outputs)  # invalid constraints fail here
    needed = engine.blocks_needed(len(prompt_ids) + params.max_tokens)
    if needed > engine.kv.num_blocks:
        raise InvalidParameterError(
            "max_tokens", f"the request needs {needed} KV-cache blocks but the cache has {engine.kv.num_blocks}; "
                          "reduce max_tokens or start the server with a larger --kv-cache-memory-bytes")
    if params.bad_words:
        params._bad_words_token_ids = _bad_words_ids(engine.tokenizer, params.bad_words)
    return params, prompt_ids
