"""The pooling options' values: which runner and conversion a model gets (``--runner``,
``--convert`` and the older ``--task``), and ``--pooler-config``'s keys.

vLLM's meanings. A model runs either the ``generate`` runner (paged KV cache, sampler) or
the ``pooling`` runner (one output per prompt: an embedding, class probabilities, or the
hidden state of every token); ``auto`` picks by architecture. ``--convert embed`` turns a
generative model into an embedding model (last-token pooling, normalised), which also
implies the pooling runner. fw adds ``--enable-embeddings``: embeddings from the
generative model while it keeps generating (``fw.pooling.setup``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Runner = Literal["auto", "draft", "generate", "pooling"]
Convert = Literal["auto", "classify", "embed", "none", "reward"]
Task = Literal["auto", "classify", "draft", "embed", "embedding", "generate", "reward", "score", "transcription"]

#: --task (deprecated) -> the (--runner, --convert) it stands for
TASKS: dict[str, tuple[str, str]] = {
    "auto": ("auto", "auto"),
    "generate": ("generate", "auto"),
    "embed": ("pooling", "embed"),
    "embedding": ("pooling", "embed"),
    "classify": ("pooling", "classify"),
    "score": ("pooling", "classify"),
}

#: --pooler-config keys vLLM has and fw does not build, with the reason
REFUSED_KEYS = {
    "enable_chunked_processing": "fw embeds an input of up to the context length in one piece; longer ones "
                                 "are refused, or cut with truncate_prompt_tokens",
    "max_embed_len": "fw embeds an input of up to the context length in one piece; longer ones are refused, "
                     "or cut with truncate_prompt_tokens",
    "step_tag_id": "fw has no STEP pooling (process reward models)",
    "returned_token_ids": "fw has no STEP pooling (process reward models)",
    "logit_bias": "fw adds no bias to a classifier's logits",
}


class PoolerConfig(BaseModel):
    """``--pooler-config``: defaults of the pooling runner. Unset keys come from the model
    (a sentence-transformers folder's ``1_Pooling/config.json`` and ``Normalize`` module,
    else the architecture's own choice)."""

    model_config = ConfigDict(extra="forbid")

    #: a registered pooler: MEAN, CLS, LAST, ALL, or a plugin's (``fw plugins``)
    pooling_type: str | None = None
    #: L2-normalise embeddings
    normalize: bool | None = None
    #: Matryoshka models only: the embedding size requests get when they do not ask
    dimensions: int | None = Field(None, ge=1)
    #: classifiers: softmax (sigmoid for one label) over the logits
    activation: bool | None = None
    #: the older spelling of ``activation``
    softmax: bool | None = None

    def merged(self, other: "PoolerConfig") -> "PoolerConfig":
        """This config with ``other``'s set keys on top."""
        return self.model_copy(update=other.model_dump(exclude_none=True))


def parse_pooler_config(value: dict[str, Any] | None, flag: str) -> PoolerConfig | None:
    """The keys of one --pooler-config value; ValueError names the bad key."""
    if value is None:
        return None
    for key, reason in REFUSED_KEYS.items():
        if key in value and value[key] is not None:
            raise ValueError(f"key {key!r} is not supported: {reason}")
    try:
        config = PoolerConfig(**{k: v for k, v in value.items() if k not in REFUSED_KEYS})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        known = ", ".join(PoolerConfig.model_fields)
        if error["type"] == "extra_forbidden":
            raise ValueError(f"unknown key {key!r}; {flag} keys are {known}") from None
        raise ValueError(f"key {key!r}: {error['msg']}") from None
    if config.pooling_type is not None:
        config.pooling_type = config.pooling_type.upper()
    return config


def runner_and_convert(runner: str, convert: str, task: str | None) -> tuple[str, str]:
    """(runner, convert) after ``--task`` and the conversions that imply the pooling
    runner; ValueError when the options contradict each other."""
    if task is not None:
        task_runner, task_convert = TASKS[task]
        if runner not in ("auto", task_runner) and task_runner != "auto":
            raise ValueError(f"--task {task} means --runner {task_runner}, which contradicts --runner {runner}; "
                             "give one (--task is deprecated: use --runner and --convert)")
        if convert not in ("auto", task_convert) and task_convert != "auto":
            raise ValueError(f"--task {task} means --convert {task_convert}, which contradicts --convert {convert}; "
                             "give one (--task is deprecated: use --runner and --convert)")
        runner = task_runner if runner == "auto" else runner
        convert = task_convert if convert == "auto" else convert
    if convert in ("embed", "classify"):
        if runner == "generate":
            raise ValueError(f"--convert {convert} makes a pooling model; it needs --runner pooling (or auto), "
                             "not --runner generate")
        runner = "pooling"
    return runner, convert
