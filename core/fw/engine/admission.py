"""The one admission step every request passes, whoever submits it (the offline ``LLM``,
the API server, run-batch): every rule a request must meet is checked here and nowhere
else, and what it left unset is filled from the sampling defaults
(``fw.engine.generation_config``: the model's generation config, ``--generation-config``,
``--override-generation-config``), else fw's. A refusal names the parameter (``InvalidParameterError``), and the server maps
that name to its API's spelling. Pooling requests (``PoolingParams``) pass
``admit_pooling``: the model must serve their task, and what they leave unset is the
model's pooling default (``fw.pooling.setup``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fw.engine.constraints import check_admissible
from fw.engine.protocol import PromptInput
from fw.engine.sampling_params import SamplingParams
from fw.errors import ContextLengthError, InvalidParameterError, NotSupportedError, OverloadedError
from fw.logits_processors.engine import check_without_processors
from fw.pooling.params import PoolingParams
from fw.pooling.setup import PoolingSetup, dimensions_problem

#: what a sampling field left unset (None) means when the model sets no default
FW_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}


NO_TOKENIZER = "the engine runs without a tokenizer (--skip-tokenizer-init)"

#: how many requests may wait per running slot (--max-num-seqs) before new ones get 503
WAITING_PER_SEQ = 8
ASLEEP = "the engine is asleep (sleep mode); POST /wake_up first"


def check_room(engine: Any, sleeping: bool) -> None:
    """Refuse new work for now (OverloadedError: HTTP 503, retry) while the engine sleeps
    or its waiting queue is full, so that a flood waits in clients, not in the engine."""
    if sleeping:
        raise OverloadedError(ASLEEP)
    limit = engine.scheduler_config.max_num_seqs * WAITING_PER_SEQ
    if engine.scheduler.num_waiting >= limit:
        raise OverloadedError(f"the waiting queue is full ({limit} requests); retry shortly")


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


def output_budget(max_len: int, prompt_len: int, max_tokens: int | None, cap: int | None) -> int:
    """How many tokens a request may generate: ``max_tokens``, or what the context leaves
    when it is unset (None); either way at most ``cap`` (the model's ``max_new_tokens``).
    A prompt that fills the context, or a ``max_tokens`` past it, is a ``ContextLengthError``
    naming both numbers. Beam search (``fw.entrypoints.beam_search_state``) sizes its
    search with it too, since its own engine requests are one token each."""
    if prompt_len >= max_len:
        raise ContextLengthError(
            "prompt", f"this model's maximum context length is {max_len} tokens, but the prompt has "
                      f"{prompt_len} tokens, which leaves no room to generate; shorten it (or set "
                      "truncate_prompt_tokens)")
    room = max_len - prompt_len
    budget = room if max_tokens is None else max_tokens
    if cap is not None:
        budget = min(budget, cap)
    if budget > room:
        raise ContextLengthError(
            "max_tokens", f"this model's maximum context length is {max_len} tokens, but "
                          f"{prompt_len + budget} were requested ({prompt_len} in the prompt, "
                          f"{budget} for the output); ask for at most {room} tokens or shorten "
                          "the prompt")
    return budget


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _check_ids(name: str, ids: Any, vocab: int) -> None:
    bad = next((t for t in ids if not 0 <= t < vocab), None)
    if bad is not None:
        raise InvalidParameterError(name, f"token id {bad} is outside the vocabulary (0..{vocab - 1})")


@dataclass
class Admission:
    """The engine's limits and the model's defaults, and the rules built on them."""

    max_model_len: int
    vocab_size: int
    max_num_seqs: int
    #: --max-logprobs (-1: no cap)
    max_logprobs: int
    num_kv_blocks: int
    block_size: int
    #: None under --skip-tokenizer-init (then text, stop strings, bad words and grammars are refused)
    tokenizer: Any
    #: the sampling defaults (``fw.engine.generation_config``), SamplingParams' names;
    #: ``max_tokens`` among them caps every request (vLLM's server-wide max_new_tokens)
    defaults: dict[str, Any]
    #: compiles a structured-output constraint, raising for an invalid one
    compile_constraint: Any = None
    #: a constraint's allowed first tokens (bool [vocab]), to refuse contradictions
    first_tokens: Any = None
    eos_token_ids: tuple[int, ...] = ()
    #: "generate" or "pooling" (a pooling model generates nothing)
    runner: str = "generate"
    #: the model's pooling tasks and defaults (None: it pools nothing)
    pooling: PoolingSetup | None = None
    #: the engine's logits processors (``fw.logits_processors.engine``), None without any
    logits_processors: Any = None

    def admit(self, prompt: str | None, prompt_ids: list[int],
              params: SamplingParams) -> tuple[str | None, list[int], SamplingParams]:
        """The request as it will run: (prompt text, prompt ids, resolved params); raises
        ``InvalidParameterError`` / ``ContextLengthError`` naming the parameter."""
        if self.runner == "pooling":
            raise NotSupportedError("this model runs the pooling runner: it embeds or classifies, it does not "
                                    "generate text (a generative model runs the generate runner)", param="prompt")
        if self.tokenizer is None:
            for name in ("stop", "bad_words", "structured_outputs"):
                if getattr(params, name):
                    raise InvalidParameterError(name, f"{NO_TOKENIZER}: it needs text; use stop_token_ids, "
                                                      "allowed_token_ids or logit_bias")
        if params.n > self.max_num_seqs:
            raise InvalidParameterError("n", f"at most {self.max_num_seqs} samples per request (--max-num-seqs), "
                                             f"got {params.n}")
        if params.truncate_prompt_tokens is not None and len(prompt_ids) > params.truncate_prompt_tokens:
            prompt, prompt_ids = None, prompt_ids[-params.truncate_prompt_tokens:]
        if not prompt_ids:
            raise InvalidParameterError("prompt", "the prompt is empty")
        _check_ids("prompt", prompt_ids, self.vocab_size)
        params = self._with_defaults(params, len(prompt_ids))
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(params, name)
            cap = self.max_logprobs
            if value is not None and cap != -1 and (value == -1 or value > cap):
                raise InvalidParameterError(name, f"at most {cap} logprobs may be requested (--max-logprobs), "
                                                  f"got {value}")
        for name in ("allowed_token_ids", "stop_token_ids"):
            _check_ids(name, getattr(params, name) or [], self.vocab_size)
        _check_ids("logit_bias", params.logit_bias or {}, self.vocab_size)
        if params.structured_outputs is not None and self.compile_constraint is not None:
            self.compile_constraint(params.structured_outputs)  # an invalid constraint fails here
        needed = _cdiv(len(prompt_ids) + params.max_tokens, self.block_size)
        if needed > self.num_kv_blocks:
            raise InvalidParameterError(
                "max_tokens", f"the request needs {needed} KV-cache blocks but the cache has {self.num_kv_blocks}; "
                              "reduce max_tokens or start the server with a larger --kv-cache-memory-bytes")
        if params.bad_words:
            params._bad_words_token_ids = _bad_words_ids(self.tokenizer, params.bad_words)
        if self.logits_processors is None:
            check_without_processors(params)
        else:
            self.logits_processors.validate(params)
        check_admissible(params, self.eos_token_ids, self.first_tokens)
        return prompt, prompt_ids, params

    def _with_defaults(self, params: SamplingParams, prompt_len: int) -> SamplingParams:
        """A copy with every unset sampling field filled and ``max_tokens`` checked against
        the context (``output_budget``)."""
        changes = {name: self.defaults.get(name, default) for name, default in FW_DEFAULTS.items()
                   if getattr(params, name) is None}
        max_tokens = output_budget(self.max_model_len, prompt_len, params.max_tokens, self.defaults.get("max_tokens"))
        if max_tokens != params.max_tokens:
            changes["max_tokens"] = max_tokens
        return params.clone(**changes)

    def admit_pooling(self, prompt: str | None, prompt_ids: list[int], params: PoolingParams,
                      token_type_ids: list[int] | None = None):
        """A pooling request as it will run: (prompt text, prompt ids, resolved params,
        token types); raises naming the parameter."""
        setup = self.pooling
        if setup is None or params.task not in setup.tasks:
            served = f"its pooling tasks are {', '.join(setup.tasks)}" if setup else (
                "it runs the generate runner (serve it with --enable-embeddings, or --runner pooling)")
            raise NotSupportedError(f"this model does not serve the {params.task!r} task: {served}", param="task")
        limit = self.max_model_len if params.truncate_prompt_tokens == -1 else params.truncate_prompt_tokens
        if limit is not None and len(prompt_ids) > limit:
            prompt, prompt_ids = None, prompt_ids[-limit:]
            token_type_ids = token_type_ids[-limit:] if token_type_ids else token_type_ids
        if not prompt_ids:
            raise InvalidParameterError("prompt", "the input is empty")
        if len(prompt_ids) > self.max_model_len:
            raise ContextLengthError(
                "prompt", f"this model's maximum context length is {self.max_model_len} tokens, but the input has "
                          f"{len(prompt_ids)} tokens; shorten it (or set truncate_prompt_tokens)")
        _check_ids("prompt", prompt_ids, self.vocab_size)
        if token_type_ids is not None and len(token_type_ids) != len(prompt_ids):
            raise InvalidParameterError("token_type_ids", f"{len(token_type_ids)} token types for "
                                                          f"{len(prompt_ids)} tokens")
        if params.dimensions is not None:
            problem = "only embeddings can be shortened" if params.task != "embed" else \
                dimensions_problem(setup, params.dimensions)
            if problem:
                raise InvalidParameterError("dimensions", problem)
        if not setup.whole_prompts and _cdiv(len(prompt_ids), self.block_size) > self.num_kv_blocks:
            raise InvalidParameterError(
                "prompt", f"the input needs {_cdiv(len(prompt_ids), self.block_size)} KV-cache blocks but the cache "
                          f"has {self.num_kv_blocks}; start the server with a larger --kv-cache-memory-bytes")
        embed = params.task == "embed"
        resolved = params.clone(
            dimensions=params.dimensions if params.dimensions is not None else (setup.dimensions if embed else None),
            normalize=params.normalize if params.normalize is not None else (setup.normalize and embed),
            activation=params.activation if params.activation is not None else setup.activation)
        return prompt, prompt_ids, resolved, token_type_ids
