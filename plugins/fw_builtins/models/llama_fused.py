"""The Llama family's one-call decode path (``fw_kernels.cpu.decoder``).

Decode steps on the CPU (every sequence decoding one token) run the whole decoder stack in
one C call instead of some 600 torch operations and module calls, when the model is in
the shape that call handles: projections packed by fw's kernels (int4 blocks of a
quantized GGUF file up to 8 tokens, their int8 panels or dense bf16 panels for any count), SiLU-gated MLPs,
the torch attention backend, no LoRA. Anything else, and every step with a prompt chunk,
takes the layer-by-layer forward; both run the same kernels in the same order, so they
give identical results.
"""

from __future__ import annotations

import torch

from fw.attention.context import get_forward_context
from fw.layers.activation import silu_and_mul
from fw_builtins.attention.torch_backend import TorchAttentionBackend
from fw_kernels import cpu


def fused_decode(model, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor | None:
    """The final hidden states of this step from the fused path, or None where it does not apply."""
    metadata = get_forward_context().metadata
    if not metadata.is_pure_decode:
        return None
    decoder = _decoder(model)
    if decoder is None or (decoder.max_rows is not None and input_ids.shape[0] > decoder.max_rows):
        return None
    return decoder(model.model.embed_tokens(input_ids), positions, metadata.slot_mapping, metadata.block_table,
                   metadata.seq_lens, metadata.max_seq_len)


def _decoder(model):
    """The model's FusedDecoder, built on first use; rebuilt if its KV caches were rebound;
    None (remembered) if the model does not fit it."""
    layers = model.model.layers
    cache = layers[0].self_attn.attn.kv_cache
    key = None if cache is None else cache.data_ptr()
    built = model.__dict__.get("_fused_decoder")
    if built is not None and built[0] == key:
        return built[1]
    decoder = _build(model) if cache is not None else None
    model.__dict__["_fused_decoder"] = (key, decoder)
    return decoder


def _projection(linear):
    from fw_kernels.cpu.decoder import Projection

    if linear.lora is not None:
        return None
    projection = Projection(int4=getattr(linear, "int4_blocks", None), int8=getattr(linear, "int8_panels", None),
                            dense=getattr(linear, "dense_panels", None), bias=linear.bias)
    return projection if projection.max_rows() != 0 else None


def _build(model):
    from fw_kernels.cpu.decoder import DecoderLayer, DecoderShape, FusedDecoder

    decoder_layers = model.model.layers
    first = decoder_layers[0]
    dtype = first.input_layernorm.weight.dtype
    if not cpu.supports(first.input_layernorm.weight):
        return None
    layers = []
    for layer in decoder_layers:
        attention, mlp = layer.self_attn, layer.mlp
        projections = [_projection(p) for p in (attention.qkv_proj, attention.o_proj, mlp.gate_up_proj,
                                                 mlp.down_proj)]
        cache = attention.attn.kv_cache
        if (any(p is None for p in projections) or mlp.act is not silu_and_mul
                or not isinstance(attention.attn.impl, TorchAttentionBackend)
                or cache is None or not cache.is_contiguous() or cache.dtype != dtype):
            return None
        qkv, o, gate_up, down = projections
        layers.append(DecoderLayer(
            input_norm=layer.input_layernorm.weight, post_norm=layer.post_attention_layernorm.weight,
            qkv=qkv, o=o, gate_up=gate_up, down=down, kv_cache=cache,
            q_norm=None if attention.q_norm is None else attention.q_norm.weight,
            k_norm=None if attention.k_norm is None else attention.k_norm.weight,
        ))
    attention, impl, rotary = first.self_attn, first.self_attn.attn.impl, first.self_attn.rotary
    shape = DecoderShape(
        hidden=first.input_layernorm.weight.shape[0], heads=attention.num_heads, kv_heads=attention.num_kv_heads,
        head_size=attention.head_dim, intermediate=first.mlp.down_proj.in_features,
        rotary_dim=rotary.rotary_dim, eps=first.input_layernorm.eps, scale=impl.scale,
        cos_sin=rotary.cos_sin_cache, final_norm=model.model.norm.weight,
        sliding_window=impl.sliding_window, soft_cap=impl.logits_soft_cap,
    )
    if rotary.cos_sin_cache.dtype != torch.float32 or not rotary.cos_sin_cache.is_contiguous():
        return None
    return FusedDecoder(layers, shape)
