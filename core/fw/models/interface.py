"""What a model-architecture plugin provides, and what fw gives it.

A model class is registered under its Hugging Face architecture name and built as
``cls(hf_config, context)``. It must provide:

``forward(input_ids, positions) -> hidden_states``
    ``input_ids`` and ``positions`` are 1-D over the flattened batch (every scheduled
    sequence's new tokens one after another); returns ``[num_tokens, hidden_size]``.
    Attention layers (``fw.layers.attention.Attention``) hold their KV cache (the runner
    binds it) and find the batch layout in ``fw.attention.context`` by themselves.

``compute_logits(hidden_states) -> logits``
    Only the rows that are sampled are passed in (the runner selects them), so the LM
    head never runs on prompt positions nobody samples from.

``load_weights(weights) -> set[str]``
    ``weights`` yields ``(hf_checkpoint_name, tensor)``; returns the names of the
    parameters it filled so the loader can report missing ones. A quantized file's
    matrices come as ``fw.layers.packed.QuantizedMatrix``: pass them to the layer's
    ``load_weight`` (``fw.models.loading.load_checkpoint`` does all of this by name), or
    call ``.dequantize()`` for the file's values.

Optionally:

``describe_decoder() -> fw.models.description.DecoderDescription | None``
    For a pre-norm decoder stack (norm, attention, norm, gated MLP), the modules it is
    made of. From it fw builds the fused CPU decode step (``fw.engine.fused_decode``), so
    a model gets that fast path by describing itself.

Pooling models (the pooling runner, ``fw.pooling``) declare, as class attributes:

``pooling_tasks``
    The tasks the architecture serves as it is: ``("embed",)`` for an encoder such as
    ``BertModel``, ``("classify",)`` for one with a classification head, which then
    provides ``classify(pooled) -> logits`` (``[prompts, num_labels]``, float32).
``default_pooling_type``
    The pooler its embeddings use unless the model's files or ``--pooler-config`` say
    otherwise (``"CLS"`` for BERT; generative models converted to embed use ``"LAST"``).
``uses_token_type_ids``
    ``forward`` then also takes ``token_type_ids`` (1-D like ``input_ids``; the segment of
    each token of a text pair), when a request has them.

A model without ``compute_logits`` does not generate; one without ``fw.layers.attention``
layers has no KV cache, and each of its prompts is computed whole in one step (its
attention is ``fw.layers.encoder_attention.EncoderAttention``).

Layers from ``fw.layers`` (linear, norms, rotary embedding, attention, embeddings, and
the blocks built of them: ``self_attention``, ``mlp``, ``moe``, ``decoder``) take care of
dtype, quantization and LoRA, so a model plugin gets those without writing them;
``fw.models.causal_lm.CausalLM`` is the rest of the contract over such a stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ModelContext:
    """Everything a model needs from the engine when it is built."""

    dtype: torch.dtype
    device: torch.device
    #: the attention backend class every Attention layer instantiates
    attention_backend: type
    #: the quantization method object, or None for plain weights
    quantization: Any = None
    #: engine-level extras a plugin may read (e.g. LoRA settings)
    extra: dict[str, Any] = field(default_factory=dict)
