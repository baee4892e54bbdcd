"""BERT and its close relatives RoBERTa and XLM-RoBERTa: post-norm encoders for the
pooling runner (``fw.pooling``).

One encoder serves the three: RoBERTa and XLM-R number positions from ``pad_token_id + 1``
and have one token type; BERT numbers them from 0 and has two (a pair's second text is
type 1). ``*Model`` checkpoints embed (sentence-transformers folders such as
all-MiniLM-L6-v2 are ``BertModel``); ``*ForSequenceClassification`` ones classify, and a
one-label classifier is a cross-encoder that scores text pairs. Every prompt is computed
whole in one step with bidirectional attention and no KV cache.

Weights are in the model dtype, the residual stream in float32: the projections take
their input in the weights' dtype and return float32 sums, and the norms and attention
stay in float32; only the MLP's wide middle (GELU's input and output) is in the weights'
dtype, as the projection after it reads it so anyway. In bfloat16 throughout,
all-MiniLM-L6-v2's embeddings were up to 7e-5 of cosine similarity from
sentence-transformers' float32 ones; this way, under 2.5e-5 (512 sentences).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from fw.layers.activation import activation
from fw.layers.embedding import VocabEmbedding
from fw.layers.encoder_attention import EncoderAttention
from fw.layers.linear import Linear, MergedLinear
from fw.layers.norm import LayerNorm
from fw.models.interface import ModelContext

#: checkpoint projection -> shard of the merged q/k/v projection
_QKV = {"query": 0, "key": 1, "value": 2}
#: checkpoint tensors an encoder does not use (MLM heads, buffers)
_UNUSED = ("embeddings.position_ids", "cls.", "lm_head.")


def _norm(config: Any, ctx: ModelContext) -> LayerNorm:
    return LayerNorm(config.hidden_size, config.layer_norm_eps, dtype=torch.float32, device=ctx.device)


def _linear(in_features: int, out_features: int, ctx: ModelContext) -> Linear:
    return Linear(in_features, out_features, bias=True, dtype=ctx.dtype, device=ctx.device,
                  quant_method=ctx.quantization, float_output=True)


def _project(linear: Linear, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``linear(x)`` for float32 ``x``: the input in the weights' dtype, the output float32."""
    return linear(x.to(dtype)).float()


class Embeddings(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext, position_offset: int):
        super().__init__()
        common = dict(dtype=ctx.dtype, device=ctx.device)
        self.position_offset = position_offset
        self.word_embeddings = VocabEmbedding(config.vocab_size, config.hidden_size, **common)
        self.position_embeddings = VocabEmbedding(config.max_position_embeddings, config.hidden_size, **common)
        self.token_type_embeddings = VocabEmbedding(max(config.type_vocab_size, 1), config.hidden_size, **common)
        self.LayerNorm = _norm(config, ctx)

    def forward(self, input_ids, positions, token_type_ids) -> torch.Tensor:
        hidden = self.word_embeddings(input_ids).float()
        hidden += self.position_embeddings(positions + self.position_offset)
        types = self.token_type_embeddings.weight
        # one token type (RoBERTa, XLM-R): a pair's segments are told apart by separators only
        hidden += types[0] if token_type_ids is None or len(types) == 1 else F.embedding(token_type_ids, types)
        return self.LayerNorm(hidden)


class SelfAttention(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        hidden, heads = config.hidden_size, config.num_attention_heads
        self.dtype = ctx.dtype
        self.qkv = MergedLinear(hidden, [hidden] * 3, bias=True, dtype=ctx.dtype, device=ctx.device,
                                quant_method=ctx.quantization, float_output=True)
        self.attn = EncoderAttention(heads, hidden // heads, (hidden // heads) ** -0.5)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.attn(*self.qkv.split(_project(self.qkv, hidden, self.dtype)))


class DenseNorm(nn.Module):
    """``LayerNorm(dense(x) + residual)``: BERT's post-norm ends of attention and MLP."""

    def __init__(self, in_features: int, config: Any, ctx: ModelContext):
        super().__init__()
        self.dtype = ctx.dtype
        self.dense = _linear(in_features, config.hidden_size, ctx)
        self.LayerNorm = _norm(config, ctx)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(_project(self.dense, x, self.dtype), residual)[0]


class Attention(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        self.self = SelfAttention(config, ctx)
        self.output = DenseNorm(config.hidden_size, config, ctx)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden), hidden)


class Intermediate(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        self.dtype = ctx.dtype
        # its output only feeds the next projection, which reads it in the weights' dtype
        self.dense = Linear(config.hidden_size, config.intermediate_size, bias=True, dtype=ctx.dtype,
                            device=ctx.device, quant_method=ctx.quantization)
        self.act = activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden.to(self.dtype)))


class Layer(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        self.attention = Attention(config, ctx)
        self.intermediate = Intermediate(config, ctx)
        self.output = DenseNorm(config.intermediate_size, config, ctx)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.attention(hidden)
        return self.output(self.intermediate(hidden), hidden)


class Encoder(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        self.layer = nn.ModuleList(Layer(config, ctx) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden)
        return hidden


class ClassificationHead(nn.Module):
    """``out(tanh(dense(x)))`` on the first token's hidden state: BERT's pooler and
    classifier, RoBERTa's classification head."""

    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        self.dtype = ctx.dtype
        self.dense = _linear(config.hidden_size, config.hidden_size, ctx)
        self.out_proj = _linear(config.hidden_size, config.num_labels, ctx)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return _project(self.out_proj, torch.tanh(_project(self.dense, pooled, self.dtype)), self.dtype)


class BertModel(nn.Module):
    """An encoder that embeds: the pooling runner's ``embed`` task (CLS pooling unless the
    model's sentence-transformers files or --pooler-config say otherwise)."""

    #: the tasks this architecture serves as it is (``fw.models.interface``)
    pooling_tasks: ClassVar[tuple[str, ...]] = ("embed",)
    default_pooling_type: ClassVar[str] = "CLS"
    uses_token_type_ids: ClassVar[bool] = True
    #: the checkpoint's prefix of the encoder's tensors in *ForSequenceClassification files
    prefix: ClassVar[str] = "bert."
    #: positions are numbered from pad_token_id + 1 (RoBERTa), else from 0
    roberta_positions: ClassVar[bool] = False
    #: the checkpoints fw's tests run this architecture on, each with the test file (docs/models.md)
    tested_with: ClassVar[tuple[tuple[str, str], ...]] = (
        ("tiny random, against transformers", "tests/plugins/models/test_bert.py"),)

    def __init__(self, config: Any, context: ModelContext):
        super().__init__()
        kind = getattr(config, "position_embedding_type", "absolute") or "absolute"
        if kind != "absolute":
            raise ValueError(f"position_embedding_type {kind!r} is not supported (only 'absolute')")
        self.config = config
        offset = (config.pad_token_id + 1) if self.roberta_positions else 0
        self.embeddings = Embeddings(config, context, offset)
        self.encoder = Encoder(config, context)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(self.embeddings(input_ids, positions, token_type_ids))

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        modules = dict(self.named_modules())
        loaded: set[str] = set()
        for name, tensor in weights:
            name = self._rename(name)
            if name is None:
                continue
            module_name, _, kind = name.rpartition(".")
            parent, _, leaf = module_name.rpartition(".")
            if leaf in _QKV and parent.endswith("attention.self"):
                target = f"{parent}.qkv"
                modules[target].load_shard(params[f"{target}.{kind}"], tensor, _QKV[leaf])
                loaded.add(f"{target}.{kind}")
                continue
            if name not in params:
                raise KeyError(f"checkpoint tensor {name!r} has no place in {type(self).__name__}")
            if params[name].shape != tensor.shape:
                raise ValueError(f"{name}: checkpoint shape {tuple(tensor.shape)} != model shape "
                                 f"{tuple(params[name].shape)}")
            params[name].data.copy_(tensor)
            loaded.add(name)
        return loaded

    def _rename(self, name: str) -> str | None:
        """The parameter a checkpoint tensor fills, or None for one the model does not use."""
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        name = name.removeprefix(self.prefix)
        if name.startswith(_UNUSED) or (name.startswith("pooler.") and not hasattr(self, "classifier")):
            return None
        return self._rename_head(name)

    def _rename_head(self, name: str) -> str:
        return name


class BertForSequenceClassification(BertModel):
    """An encoder with a classification head: the ``classify`` task; with one label it is
    a cross-encoder that scores text pairs (/score, /rerank)."""

    pooling_tasks = ("classify",)

    def __init__(self, config: Any, context: ModelContext):
        super().__init__(config, context)
        self.classifier = ClassificationHead(config, context)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits ``[prompts, num_labels]`` (float32) from the pooled hidden states."""
        return self.classifier(pooled.float())

    def _rename_head(self, name: str) -> str:
        # BERT: pooler.dense + classifier; fw keeps both in one head
        if name.startswith("pooler.dense."):
            return "classifier.dense." + name.removeprefix("pooler.dense.")
        if name.startswith("classifier.") and not name.startswith(("classifier.dense.", "classifier.out_proj.")):
            return "classifier.out_proj." + name.removeprefix("classifier.")
        return name


class RobertaModel(BertModel):
    prefix = "roberta."
    roberta_positions = True


class RobertaForSequenceClassification(BertForSequenceClassification):
    prefix = "roberta."
    roberta_positions = True


class XLMRobertaModel(RobertaModel):
    pass


class XLMRobertaForSequenceClassification(RobertaForSequenceClassification):
    pass
