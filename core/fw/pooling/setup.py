"""What a model does for the pooling runner: which runner it gets, its pooling tasks, and
their defaults, from (in order of precedence) ``--pooler-config``, the model's
sentence-transformers files, and the architecture.

vLLM's rules: ``--runner auto`` is pooling for an architecture that pools and does not
generate (``BertModel``, ``*ForSequenceClassification``), else generate; under the pooling
runner ``--convert auto`` keeps a pooling architecture as it is and turns a generative one
into an embedding model (last-token pooling, normalised). fw's ``--enable-embeddings``
gives a generative model the ``embed`` task beside generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fw.config import ModelConfig
from fw.errors import ConfigurationError
from fw.pooling.sentence_transformers import read_sentence_transformers


@dataclass
class PoolingSetup:
    """The pooling side of a model, as plain data (it travels to the API server inside
    ``ModelInfo``)."""

    #: pooling tasks served (``fw.pooling.params.TASKS``): embed and/or classify, and encode
    tasks: list[str]
    #: task -> the registered pooler it uses
    poolers: dict[str, str]
    hidden_size: int
    #: "pooling", or "generate" for a generative model with --enable-embeddings
    runner: str = "pooling"
    #: defaults of requests that leave them unset
    normalize: bool = True
    activation: bool = True
    dimensions: int | None = None
    #: Matryoshka models may be asked for fewer dimensions (any, or one of the listed)
    matryoshka: bool = False
    matryoshka_dimensions: list[int] | None = None
    #: classifiers: the class labels by index (a one-label classifier is a cross-encoder)
    labels: list[str] = field(default_factory=list)
    #: encoders compute each prompt whole in one step (bidirectional attention, no KV cache)
    whole_prompts: bool = False
    #: the sentence-transformers max_seq_length, which caps the context length
    max_seq_length: int | None = None

    @property
    def num_labels(self) -> int:
        return len(self.labels)


def resolve_runner(model_cls: type, config: ModelConfig) -> str:
    """``generate`` or ``pooling`` for this architecture and these options."""
    runner, _ = config.runner_and_convert()
    pools, generates = bool(getattr(model_cls, "pooling_tasks", ())), hasattr(model_cls, "compute_logits")
    if runner == "auto":
        runner = "pooling" if pools and not generates else "generate"
    if runner == "generate" and not generates:
        raise ConfigurationError(f"{model_cls.__name__} does not generate text: it is served by the pooling runner "
                                 "(--runner pooling, or auto)")
    return runner


def _tasks(model_cls: type, config: ModelConfig, runner: str) -> list[str]:
    arch = model_cls.__name__
    native = list(getattr(model_cls, "pooling_tasks", ()))
    if runner == "generate":
        return ["embed"] if config.enable_embeddings else []
    convert = config.runner_and_convert()[1]
    if convert == "auto":
        convert = "none" if native else "embed"
    if convert == "none":
        if not native:
            raise ConfigurationError(f"{arch} has no pooling head; --convert embed makes an embedding model of it")
        return native
    if convert == "classify" and "classify" not in native:
        raise ConfigurationError(f"--convert classify: {arch} has no classification head (fw classifies with the "
                                 "head a *ForSequenceClassification checkpoint carries)")
    return [convert]


def resolve_pooling(model_cls: type, hf_config: Any, config: ModelConfig, path: Path) -> PoolingSetup | None:
    """The model's pooling setup, or None when it only generates; ConfigurationError for
    options that cannot apply to it."""
    runner = resolve_runner(model_cls, config)
    tasks = _tasks(model_cls, config, runner)
    if not tasks:
        return None
    encoder = not hasattr(model_cls, "compute_logits")
    default_pooler = getattr(model_cls, "default_pooling_type", None) or ("CLS" if encoder else "LAST")
    files = read_sentence_transformers(Path(path))
    options = config.pooler()
    embed_pooler = options.pooling_type or (files.pooling_type if files else None) or default_pooler
    poolers = {"embed": embed_pooler, "classify": options.pooling_type or default_pooler, "encode": "ALL"}
    normalize = options.normalize if options.normalize is not None else (files.normalize if files else True)
    activation = next((v for v in (options.activation, options.softmax) if v is not None), True)
    dims = getattr(hf_config, "matryoshka_dimensions", None)
    setup = PoolingSetup(
        tasks=[*tasks, "encode"], poolers={t: poolers[t] for t in (*tasks, "encode")},
        hidden_size=hf_config.hidden_size, runner=runner, normalize=normalize, activation=activation,
        matryoshka=bool(getattr(hf_config, "is_matryoshka", False) or dims),
        matryoshka_dimensions=list(dims) if dims else None, whole_prompts=encoder,
        labels=_labels(hf_config) if "classify" in tasks else [],
        max_seq_length=files.max_seq_length if files else None)
    if options.dimensions is not None:
        problem = dimensions_problem(setup, options.dimensions)
        if problem:
            raise ConfigurationError(f"--pooler-config dimensions: {problem}")
        setup.dimensions = options.dimensions
    return setup


def _labels(hf_config: Any) -> list[str]:
    count = int(getattr(hf_config, "num_labels", 0) or 0)
    names = getattr(hf_config, "id2label", None) or {}
    return [str(names.get(i, names.get(str(i), f"LABEL_{i}"))) for i in range(count)]


def dimensions_problem(setup: PoolingSetup, dimensions: int) -> str | None:
    """Why a model cannot give embeddings of ``dimensions``, or None if it can."""
    if not setup.matryoshka:
        return ("this model does not support Matryoshka representations (its config has no is_matryoshka or "
                "matryoshka_dimensions), so its embeddings cannot be shortened")
    if setup.matryoshka_dimensions and dimensions not in setup.matryoshka_dimensions:
        return f"this model supports dimensions {setup.matryoshka_dimensions}, not {dimensions}"
    if dimensions > setup.hidden_size:
        return f"this model's embeddings have {setup.hidden_size} dimensions; {dimensions} is more"
    return None
