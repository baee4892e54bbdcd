"""Linear layers. ``MergedLinear`` stores several projections that read the same input
(q/k/v, gate/up) as one matrix, so a step runs one GEMM instead of three: on a CPU at
batch 1 the per-op overhead matters as much as the FLOPs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from fw.layers.packed import PackedWeight
from fw.layers.quantization import UNQUANTIZED, QuantizationMethod


@dataclass(frozen=True)
class LinearShard:
    """The part of a full ``[out, in]`` matrix a tensor-parallel rank's layer holds
    (``fw.distributed`` sets it), so what is fitted to the full matrix (a LoRA adapter)
    can be cut the same way."""

    #: the full matrix's input size
    in_features: int
    #: the full output size of each projection the layer stores (one for a plain Linear)
    shard_sizes: tuple[int, ...]
    #: column-parallel: per projection, the ranges of its output rows this rank holds
    rows: tuple[tuple[tuple[int, int], ...], ...] | None = None
    #: row-parallel: the input columns ``(start, stop)`` this rank holds
    columns: tuple[int, int] | None = None


class Linear(nn.Module):
    """``x @ W.T (+ bias)``. The quantization method registers the parameters a checkpoint
    fills; once they are loaded, ``post_load`` turns them into the ``PackedWeight`` every
    forward pass runs from."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = False,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 quant_method: QuantizationMethod | None = None, float_output: bool = False):
        super().__init__()
        self.in_features = in_features
        #: return float32 sums where the layout keeps them unrounded (fw's bf16 GEMM), for a
        #: model that keeps its activations in float32 (BERT's residual stream)
        self.float_output = float_output
        self.out_features = out_features
        self.quant_method = quant_method or UNQUANTIZED
        self.quant_method.create_weights(self, in_features, out_features, dtype, torch.device(device))
        self.bias = (nn.Parameter(torch.empty(out_features, dtype=dtype, device=device), requires_grad=False)
                     if bias else None)
        #: the weight the forward pass runs from, set by ``post_load``
        self.packed: PackedWeight | None = None
        #: optional LoRA wrapper hook: fn(x, base_output) -> output
        self.lora = None
        #: under tensor parallelism, which part of the full matrix this layer holds
        self.tp_shard: LinearShard | None = None
        #: a row-parallel shard's sum over the ranks (an all-reduce, set by fw.distributed)
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reduce is not None:
            return self._forward_partial(x)
        out = self.packed.matmul(x, self.bias, float_output=self.float_output)
        if self.lora is not None:
            out = self.lora(x, out)
        return out

    def load_weight(self, tensor, shard: int | None = None) -> None:
        """Fill the weight (of a merged layer: its shard ``shard``) from a checkpoint tensor
        or ``fw.layers.packed.QuantizedMatrix``; the quantization method decides how."""
        self.quant_method.load_weight(self, tensor, shard)

    def _forward_partial(self, x: torch.Tensor) -> torch.Tensor:
        """A row-parallel shard: its partial products (and its LoRA ones) are summed over
        the ranks in float32, the kernels' sums unrounded, and rounded once to x's dtype,
        as the whole layer's output is; partial sums rounded to bf16 first made a 135M
        model's greedy tokens drift from one rank's after ~10 tokens."""
        out = self.packed.matmul(x, self.bias, float_output=True)
        if self.lora is not None:
            out = self.lora(x, out)
        return self.reduce(out.float()).to(x.dtype)

    def post_load(self) -> None:
        """Pack the loaded parameters; their checkpoint-shaped data is dropped."""
        self.packed = self.quant_method.process_weights_after_loading(self)
        for name, param in self.named_parameters(recurse=False):
            if name != "bias":
                param.data = param.data.new_empty(0)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


class MergedLinear(Linear):
    """Several output projections of the same input stored as one matrix.

    ``shard_sizes`` gives each projection's output size, in order; a checkpoint tensor
    for projection ``i`` is loaded with ``load_shard(param, tensor, i)``. ``shard_names``
    are the projections' Hugging Face names (``("q_proj", "k_proj", "v_proj")``), which
    LoRA adapters target; the usual ``qkv_proj`` and ``gate_up_proj`` need none.
    """

    def __init__(self, in_features: int, shard_sizes: Sequence[int], *,
                 shard_names: Sequence[str] | None = None, **kwargs):
        self.shard_sizes = list(shard_sizes)
        if shard_names is not None and len(shard_names) != len(self.shard_sizes):
            raise ValueError(f"{len(shard_names)} shard names for {len(self.shard_sizes)} shards")
        self.shard_names = tuple(shard_names) if shard_names is not None else None
        super().__init__(in_features, sum(self.shard_sizes), **kwargs)

    def shard_slice(self, index: int) -> slice:
        start = sum(self.shard_sizes[:index])
        return slice(start, start + self.shard_sizes[index])

    def load_shard(self, param: nn.Parameter, tensor: torch.Tensor, index: int) -> None:
        if param is getattr(self, "weight", None):
            self.load_weight(tensor, index)
            return
        target = param.data[self.shard_slice(index)]
        if target.shape != tensor.shape:
            raise ValueError(f"shape mismatch for shard {index}: {tuple(target.shape)} vs {tuple(tensor.shape)}")
        target.copy_(tensor)

    def split(self, out: torch.Tensor) -> list[torch.Tensor]:
        return list(out.split(self.shard_sizes, dim=-1))
