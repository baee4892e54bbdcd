"""SpeculativeConfig: speculative decoding, as vLLM's ``--speculative-config``.

``--speculative-config '{"method": "ngram", "num_speculative_tokens": 4}'`` or the same
keys dotted (``--speculative-config.method ngram``). The older single flags of vLLM
(``--speculative-model``, ``--num-speculative-tokens``, ``--ngram-prompt-lookup-max``,
``--ngram-prompt-lookup-min``, ``--speculative-disable-by-batch-size``,
``--speculative-model-quantization``, ``--speculative-max-model-len``,
``--speculative-draft-tensor-parallel-size``) fill the same settings; a key given both
ways with different values is refused. A proposer is a plugin (``fw_register_proposers``); ``method`` names it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fw import plugins
from fw.config.base import ConfigGroup, option


class SpeculativeSettings(BaseModel):
    """The keys of --speculative-config (vLLM's names)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    #: the proposer: ngram (prompt lookup), suffix (suffix decoding), draft_model, or a plugin's
    method: str | None = None
    num_speculative_tokens: int = Field(4, ge=1, le=32)
    #: n-gram lengths tried, longest first, when looking the context's end up in the prompt
    prompt_lookup_max: int = Field(5, ge=1)
    prompt_lookup_min: int = Field(1, ge=1)
    #: the draft model (a folder or .gguf; method draft_model)
    model: str | None = None
    draft_tensor_parallel_size: int = Field(1, ge=1)
    #: no speculation in a step with more running requests than this
    disable_by_batch_size: int | None = Field(None, ge=1)
    #: suffix decoding: the longest suffix matched, the cached requests, the speculation
    #: length per matched token, and the least probability of a proposed continuation
    suffix_decoding_max_tree_depth: int = Field(24, ge=1)
    suffix_decoding_max_cached_requests: int = Field(10000, ge=0)
    suffix_decoding_max_spec_factor: float = Field(1.0, gt=0)
    suffix_decoding_min_token_prob: float = Field(0.1, ge=0, le=1)
    quantization: str | None = None
    max_model_len: int | None = Field(None, ge=1)

    @field_validator("draft_tensor_parallel_size")
    @classmethod
    def _one_rank(cls, value: int) -> int:
        if value != 1:
            raise ValueError("draft_tensor_parallel_size: fw runs the draft model on one rank (1)")
        return value

    @model_validator(mode="after")
    def _complete(self) -> SpeculativeSettings:
        if self.method is None:
            self.method = "draft_model" if self.model else "ngram"
        if self.method in ("eagle", "eagle3", "medusa", "mlp_speculator", "mtp", "deepseek_mtp"):
            raise ValueError(f"method {self.method!r}: fw has no {self.method} heads; use ngram, suffix or draft_model")
        if self.method == "draft_model" and not self.model:
            raise ValueError("method draft_model needs model (the draft model's path)")
        if self.prompt_lookup_min > self.prompt_lookup_max:
            raise ValueError(f"prompt_lookup_min ({self.prompt_lookup_min}) exceeds prompt_lookup_max "
                             f"({self.prompt_lookup_max})")
        return self


class SpeculativeConfig(ConfigGroup):
    group_title = "SpeculativeConfig"
    group_help = "Speculative decoding: guessed tokens checked by the model in one step."

    speculative_config: dict[str, Any] | None = option(
        None,
        'Speculative decoding, e.g. {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 5}. '
        "Keys (vLLM's): method (ngram, suffix, draft_model, or a plugin's), num_speculative_tokens, "
        "prompt_lookup_max, prompt_lookup_min, model (the draft), draft_tensor_parallel_size (1), "
        "disable_by_batch_size, suffix_decoding_max_tree_depth, suffix_decoding_max_cached_requests, "
        "suffix_decoding_max_spec_factor, suffix_decoding_min_token_prob. JSON, or dotted keys.",
        json=True)
    speculative_model: str | None = option(
        None, 'The draft model (vLLM\'s older flag; "[ngram]" means n-gram lookup). Same as '
              "--speculative-config.model.")
    num_speculative_tokens: int | None = option(
        None, "Tokens proposed per step (older flag of --speculative-config.num_speculative_tokens).", ge=1)
    ngram_prompt_lookup_max: int | None = option(
        None, "Older flag of --speculative-config.prompt_lookup_max.", ge=1)
    ngram_prompt_lookup_min: int | None = option(
        None, "Older flag of --speculative-config.prompt_lookup_min.", ge=1)
    speculative_model_quantization: str | None = option(
        None, "Older flag of --speculative-config.quantization (the draft model's).")
    speculative_draft_tensor_parallel_size: int | None = option(
        None, "Older flag of --speculative-config.draft_tensor_parallel_size.", short="-spec-draft-tp", ge=1)
    speculative_max_model_len: int | None = option(
        None, "Older flag of --speculative-config.max_model_len (the draft model's).", ge=1)
    speculative_disable_by_batch_size: int | None = option(
        None, "Older flag of --speculative-config.disable_by_batch_size.", ge=1)
    spec_decoding_acceptance_method: Literal["rejection_sampler", "typical_acceptance_sampler"] = option(
        "rejection_sampler", "How sampled proposals are accepted: rejection sampling keeps the model's "
                             "distribution exactly.",
        unsupported={"typical_acceptance_sampler": "fw accepts sampled proposals by rejection sampling only, "
                                                   "which keeps the model's distribution exactly"})
    typical_acceptance_sampler_posterior_threshold: float | None = option(
        None, "For typical_acceptance_sampler.",
        unsupported="fw has no typical acceptance sampler (rejection sampling keeps the model's distribution)")
    typical_acceptance_sampler_posterior_alpha: float | None = option(
        None, "For typical_acceptance_sampler.",
        unsupported="fw has no typical acceptance sampler (rejection sampling keeps the model's distribution)")
    disable_logprobs_during_spec_decoding: bool | None = option(
        None, "vLLM's switch to skip logprobs while speculating.",
        unsupported={True: "fw returns the model's own logprobs while speculating; leave it unset"})
    num_lookahead_slots: int = option(
        0, "KV slots per sequence beyond its tokens (vLLM's testing switch); fw reserves them for "
           "speculation itself.",
        unsupported="fw reserves the slots speculation needs itself; use --speculative-config")

    @model_validator(mode="after")
    def _settings_valid(self) -> SpeculativeConfig:
        self.settings()  # a bad key or value fails at start-up
        return self

    def settings(self) -> SpeculativeSettings | None:
        """The speculative decoding asked for, from every spelling; None: none."""
        values = dict(self.speculative_config or {})
        older = {"model": self.speculative_model, "num_speculative_tokens": self.num_speculative_tokens,
                 "prompt_lookup_max": self.ngram_prompt_lookup_max, "prompt_lookup_min": self.ngram_prompt_lookup_min,
                 "disable_by_batch_size": self.speculative_disable_by_batch_size,
                 "quantization": self.speculative_model_quantization,
                 "draft_tensor_parallel_size": self.speculative_draft_tensor_parallel_size,
                 "max_model_len": self.speculative_max_model_len}
        for key, value in older.items():
            if value is None:
                continue
            if key in values and values[key] != value:
                raise ValueError(f"--speculative-config's {key} {values[key]!r} disagrees with the older flag's "
                                 f"{value!r}; give it once")
            values[key] = value
        if values.get("model") == "[ngram]":
            values.pop("model")
            values.setdefault("method", "ngram")
        if not values:
            return None
        unknown = sorted(set(values) - set(SpeculativeSettings.model_fields))
        if unknown:
            raise ValueError(f"--speculative-config: unknown key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(SpeculativeSettings.model_fields)}")
        try:
            settings = SpeculativeSettings(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ValueError(f"--speculative-config{'.' + where if where else ''}: "
                             f"{error['msg'].removeprefix('Value error, ')}") from None
        proposers = plugins.registry("proposer")
        if settings.method not in proposers:
            raise ValueError(f"--speculative-config method {settings.method!r} is not a proposer; "
                             f"known: {', '.join(proposers.names())}")
        return settings
