"""The fused CPU step, built from a model's ``DecoderDescription``.

A step on the CPU runs the whole decoder stack in one C call (``fw_kernels.cpu.decoder``)
instead of some 600 torch operations and module calls. It runs the same kernels in the
same order as the layer-by-layer forward, so both give identical results. Prompt chunks
go through it too: the attention kernel takes every token as a sequence of its own
(``AttentionMetadata.token_rows``), as the CPU attention backend does layer by layer; the
Python of a 64-token prompt's layer-by-layer forward was ~18 % of its time. The runner
takes it for steps of up to ``max_rows`` tokens; everything it cannot run takes the
model's own forward.

It applies when every part of the description is something the C decoder computes:
projections whose packed weights it reads (``PackedWeight.decoder_projection``) without
LoRA, RMSNorms (one epsilon and one weight offset for all), SiLU or GELU-tanh gating, neox
rotary tables in float32, mixtures of experts whose experts it reads, an attention
backend that declares ``fused_cpu_decode``, contiguous KV caches in the model dtype, and
one attention scale, soft cap and head layout for every layer (windows and rotary tables
may differ by layer). Otherwise ``build`` says why and returns None.
"""

from __future__ import annotations

import logging

import torch

from fw.attention.metadata import AttentionMetadata
from fw.layers.activation import FUSED_GATES
from fw.models.description import DecoderDescription, DecoderLayerDescription
from fw_kernels import cpu

logger = logging.getLogger("fw.engine")


class NotFusable(Exception):
    """Why a description cannot run as one fused call."""


class FusedDecodeStep:
    def __init__(self, description: DecoderDescription, decoder):
        self.embedding = description.embedding
        self.decoder = decoder
        #: the most tokens a step may have (None: any)
        self.max_rows = decoder.max_rows

    def takes(self, metadata: AttentionMetadata) -> bool:
        return self.max_rows is None or metadata.num_tokens <= self.max_rows

    def __call__(self, input_ids: torch.Tensor, positions: torch.Tensor, metadata: AttentionMetadata) -> torch.Tensor:
        """The final-normed hidden states of the step's tokens; KV caches are written."""
        block_table, seq_lens, max_len = metadata.token_rows()
        return self.decoder(self.embedding(input_ids), positions, metadata.slot_mapping, block_table, seq_lens,
                            max_len, prefetch_kv=metadata.is_pure_decode)


def build(model) -> FusedDecodeStep | None:
    """The model's fused decode step, or None (logged at debug level with the reason)."""
    describe = getattr(model, "describe_decoder", None)
    if describe is None:
        return None
    description = describe()
    if description is None or not cpu.available():
        return None
    try:
        return FusedDecodeStep(description, _decoder(description))
    except NotFusable as reason:
        logger.debug("the fused CPU decode does not apply: %s", reason)
        return None


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise NotFusable(reason)


def _projection(linear, name: str):
    _require(linear.lora is None, f"{name} has a LoRA adapter hook")
    _require(linear.packed is not None, f"{name} is not packed")
    views = linear.packed.decoder_projection(linear.bias)
    _require(views is not None, f"{name}'s weight layout ({linear.packed}) is not one the fused decoder reads")
    return views


def _norm(norm, dtype: torch.dtype, what: str) -> torch.Tensor | None:
    if norm is None:
        return None
    _require(cpu.supports(norm.weight) and norm.weight.dtype == dtype, f"the {what} weight is not a CPU tensor in "
                                                                       "the model dtype")
    return norm.weight


def _layer(layer: DecoderLayerDescription, dtype: torch.dtype):
    from fw_kernels.cpu.decoder import DecoderLayer

    attention = layer.attention
    _require(getattr(attention.impl, "fused_cpu_decode", False),
             f"the {type(attention.impl).__name__} attention backend does not declare fused_cpu_decode")
    cache = attention.kv_cache
    _require(cache is not None and cache.is_contiguous()
             and cache.dtype == attention.impl.kv_format.storage_dtype(dtype),
             "the KV cache is not bound, not contiguous or not in its format's dtype")
    q_size, kv_size = attention.num_heads * attention.head_size, attention.num_kv_heads * attention.head_size
    _require(list(layer.qkv.shard_sizes) == [q_size, kv_size, kv_size], "qkv's shards do not match the heads")
    rotary = layer.rotary
    _require(rotary.cos_sin_cache.dtype == torch.float32 and rotary.cos_sin_cache.is_contiguous(),
             "the rotary table is not contiguous float32")
    mlp = {}
    if layer.moe is not None:
        moe = layer.moe.fused()
        _require(moe is not None and moe.dtype == dtype, "the mixture of experts is not one fw's MoE kernel runs")
        mlp["moe"] = moe
    else:
        _require(len(layer.gate_up.shard_sizes) == 2 and layer.gate_up.shard_sizes[0] == layer.gate_up.shard_sizes[1],
                 "gate_up is not two equal shards")
        mlp.update(gate_up=_projection(layer.gate_up, "gate_up"), down=_projection(layer.down, "down"))
    return DecoderLayer(
        input_norm=_norm(layer.input_norm, dtype, "input norm"),
        post_norm=_norm(layer.post_attention_norm, dtype, "post-attention norm"),
        qkv=_projection(layer.qkv, "qkv"), o=_projection(layer.o, "o"), kv_cache=cache, cos_sin=rotary.cos_sin_cache,
        q_norm=_norm(layer.q_norm, dtype, "q norm"), k_norm=_norm(layer.k_norm, dtype, "k norm"),
        attn_out_norm=_norm(layer.attention_output_norm, dtype, "attention output norm"),
        mlp_out_norm=_norm(layer.mlp_output_norm, dtype, "MLP output norm"),
        sliding_window=attention.impl.sliding_window, **mlp,
    )


def _norms(layer: DecoderLayerDescription) -> list:
    return [n for n in (layer.input_norm, layer.post_attention_norm, layer.q_norm, layer.k_norm,
                        layer.attention_output_norm, layer.mlp_output_norm) if n is not None]


def _settings(layer: DecoderLayerDescription) -> tuple:
    """What the C decoder holds once for all layers."""
    impl, attention = layer.attention.impl, layer.attention
    return (impl.scale, impl.logits_soft_cap, impl.kv_format, layer.rotary.rotary_dim, attention.num_heads, attention.num_kv_heads,
            attention.head_size, layer.activation, layer.input_norm.weight.shape[0])


def _decoder(description: DecoderDescription):
    from fw_kernels.cpu.decoder import DecoderShape, FusedDecoder

    first = description.layers[0]
    dtype = first.input_norm.weight.dtype
    _require(cpu.supports(first.input_norm.weight), "the model is not a float32/bfloat16 CPU model")
    settings = {_settings(layer) for layer in description.layers}
    _require(len(settings) == 1, "the layers differ in their attention, rotary, activation or size settings")
    gate = FUSED_GATES.get(first.activation)
    _require(gate is not None, f"the {first.activation!r} activation is not fused")
    norms = [n for layer in description.layers for n in _norms(layer)] + [description.final_norm]
    _require(len({n.eps for n in norms}) == 1, "the norms differ in epsilon")
    _require(len({n.offset for n in norms}) == 1, "the norms differ in their weight offset")
    dense = {layer.down.in_features for layer in description.layers if layer.moe is None}
    _require(len(dense) <= 1, "the dense MLPs differ in size")
    _require(description.final_norm.weight.dtype == dtype, "the final norm is not in the model dtype")
    layers = [_layer(layer, dtype) for layer in description.layers]
    attention, impl = first.attention, first.attention.impl
    shape = DecoderShape(
        hidden=first.input_norm.weight.shape[0], heads=attention.num_heads, kv_heads=attention.num_kv_heads,
        head_size=attention.head_size, intermediate=dense.pop() if dense else 0, rotary_dim=first.rotary.rotary_dim,
        eps=first.input_norm.eps, scale=impl.scale, final_norm=description.final_norm.weight,
        soft_cap=impl.logits_soft_cap, activation=gate, norm_offset=first.input_norm.offset,
        kv_kind=impl.kv_format.code, kv_dynamic=impl.kv_format.dynamic_scales,
    )
    return FusedDecoder(layers, shape)
