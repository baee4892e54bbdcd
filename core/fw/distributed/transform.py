"""Split a loaded model for one tensor-parallel rank (Megatron-style), as a transform.

What to split comes from the model's ``DecoderDescription`` (``describe_decoder()``): each
layer's q/k/v and gate/up projections become column-parallel, o and down row-parallel,
the attention layer serves the rank's heads; the embedding and the LM head (the model's
one ``LMHead``) become vocabulary-parallel. Norms (Gemma's output norms too), rotary
tables and everything else stay whole on every rank. The rank's KV cache then holds only
its KV heads. Mixture-of-experts layers are not split: such a model is refused.
"""

from __future__ import annotations

from torch import nn

from fw.distributed import layers
from fw.distributed.group import TensorParallelGroup
from fw.distributed.sharding import AttentionShard, attention_shard, even_split, vocab_split
from fw.errors import ConfigurationError
from fw.layers.embedding import LMHead
from fw.models.description import DecoderLayerDescription


def shard_model(model: nn.Module, group: TensorParallelGroup) -> None:
    """Cut ``model`` (loaded and packed) down to ``group.rank``'s part, in place."""
    size, rank = group.world_size, group.rank
    describe = getattr(model, "describe_decoder", None)
    description = describe() if describe is not None else None
    if description is None:
        raise ConfigurationError(f"{type(model).__name__} does not describe its decoder (describe_decoder), so fw "
                                 f"cannot split it across --tensor-parallel-size {size} ranks")
    if any(layer.moe is not None for layer in description.layers):
        raise ConfigurationError(f"{type(model).__name__} has mixture-of-experts layers, which tensor parallelism "
                                 f"does not split; serve it with --tensor-parallel-size 1")
    heads = [attention_shard(layer.attention.num_heads, layer.attention.num_kv_heads, size, rank)
             for layer in description.layers]
    names = {id(module): name for name, module in model.named_modules()}
    heads_of_lm = [module for module in model.modules() if isinstance(module, LMHead)]
    if len(heads_of_lm) != 1:
        raise ConfigurationError(f"{type(model).__name__} has {len(heads_of_lm)} LM heads; tensor parallelism "
                                 "splits models with exactly one")
    for layer, shard in zip(description.layers, heads):
        _shard_layer(layer, shard, group, names)
    embedding = description.embedding
    start, stop = vocab_split(embedding.vocab_size, size, rank)
    parallel = _cut(names[id(embedding)], lambda: layers.VocabParallelEmbedding(embedding, start, stop, group))
    _replace(model, names[id(embedding)], parallel)
    head = heads_of_lm[0]
    if head.tied_to is embedding:
        head.tied_to = parallel
    start, stop = vocab_split(head.vocab_size, size, rank)
    _cut(names[id(head)], lambda: layers.vocab_parallel_head(head, start, stop, group))


def _shard_layer(layer: DecoderLayerDescription, shard: AttentionShard, group: TensorParallelGroup,
                 names: dict[int, str]) -> None:
    attention = layer.attention
    size = attention.head_size
    full = [attention.num_heads * size, attention.num_kv_heads * size, attention.num_kv_heads * size]
    if list(layer.qkv.shard_sizes) != full:
        raise ConfigurationError(f"{names[id(layer.qkv)]}: its projections {layer.qkv.shard_sizes} do not match "
                                 f"{attention.num_heads} query and {attention.num_kv_heads} KV heads of {size}")
    q_rows = (shard.q_heads[0] * size, shard.q_heads[1] * size)
    kv_rows = (shard.kv_heads[0] * size, shard.kv_heads[1] * size)
    _cut(names[id(layer.qkv)], lambda: layers.column_parallel(layer.qkv, [[q_rows], [kv_rows], [kv_rows]]))
    _cut(names[id(layer.o)], lambda: layers.row_parallel(layer.o, q_rows, group))
    attention.set_heads(shard.num_heads, shard.num_kv_heads)
    gate, up = layer.gate_up.shard_sizes
    if gate != up:
        raise ConfigurationError(f"{names[id(layer.gate_up)]}: gate ({gate}) and up ({up}) differ in size")
    part = even_split(gate, group.world_size, group.rank, "MLP intermediate size")
    _cut(names[id(layer.gate_up)], lambda: layers.column_parallel(layer.gate_up, [[part], [part]]))
    _cut(names[id(layer.down)], lambda: layers.row_parallel(layer.down, part, group))


def _cut(name: str, cut):
    """Run one cut; a weight layout that cannot be cut there is refused by name."""
    try:
        return cut()
    except (NotImplementedError, ValueError) as exc:
        raise ConfigurationError(f"tensor parallelism cannot split {name}: {exc}") from exc


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)
