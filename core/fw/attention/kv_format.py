"""How keys and values are stored in the paged KV cache (``--kv-cache-dtype``).

One tensor per attention layer, keys at ``[0]`` and values at ``[1]``, indexed by block
id in dimension 1 whatever the format, so the block pool, prefix caching, preemption,
LoRA, sleep mode and the speculative draft's cache never look inside a block:

* ``model`` (``auto``, ``bfloat16`` for a bfloat16 model): ``[2, num_blocks,
  block_size, kv_heads, head_size]`` in the model's dtype.
* ``int8`` and ``fp8_e4m3``: ``[2, num_blocks, kv_heads, block_size, head_size + 4]``
  bytes: a row is ``head_size`` one-byte codes followed by the row's float32 scale, so the
  scale of a token's head sits beside its codes in the same block, and a block's id finds
  both. Rows are head-major within a block: the kernels read one kv head's rows of a
  block as 17 whole cache lines (16 rows of 68 bytes at head_size 64); token-major rows
  of 68 bytes straddled lines that the other heads' reads fetched again, and read slower
  than the bf16 cache's twice larger ones. A value is ``code * scale``. int8 codes are
  ``round(x * 127 / amax)`` with ``scale = amax / 127`` (``amax`` the largest magnitude of
  that token's head); fp8 codes are ``x / scale`` rounded to e4m3 (saturating at +-448),
  with ``scale = amax / 448`` when scales are computed (``--calculate-kv-scales``) and
  1.0 otherwise. A token's stored row depends on that token's key or value only, never on
  the batch or the prefill chunk it came in, which keeps greedy decoding batch-invariant.

The storage dtype tells a cache's codes apart (the Triton kernels read it from there):
int8 caches are ``torch.int8`` and fp8 caches ``torch.uint8`` (the e4m3 bits; torch's
float8 dtypes lack the CPU indexing ops).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fw.errors import ConfigurationError

#: bytes of the float32 scale after a quantized row's codes
SCALE_BYTES = 4
#: the storage dtype of each quantized kind
_STORAGE = {"int8": torch.int8, "fp8_e4m3": torch.uint8}
#: the C kernels' number for each kind (kernels/fw_kernels/cpu/kv_quant.h)
KIND_CODES = {"model": 0, "int8": 1, "fp8_e4m3": 2}


@dataclass(frozen=True)
class KVCacheFormat:
    #: "model" (the model's dtype), "int8" or "fp8_e4m3"
    kind: str = "model"
    #: fp8: a scale per token and head (else 1.0); int8 always has them
    dynamic_scales: bool = False

    @classmethod
    def resolve(cls, kv_cache_dtype: str, calculate_kv_scales: bool, model_dtype: torch.dtype) -> "KVCacheFormat":
        """The format of ``--kv-cache-dtype`` for a model computing in ``model_dtype``."""
        if kv_cache_dtype == "auto":
            return cls()
        if kv_cache_dtype == "bfloat16":
            if model_dtype != torch.bfloat16:
                raise ConfigurationError(
                    f"--kv-cache-dtype bfloat16: the model computes in {str(model_dtype).removeprefix('torch.')} "
                    "and fw keeps an unquantized KV cache in the model's dtype; use auto, int8 or fp8")
            return cls()
        if kv_cache_dtype == "int8":
            return cls("int8", True)
        if kv_cache_dtype in ("fp8", "fp8_e4m3"):
            return cls("fp8_e4m3", calculate_kv_scales)
        raise ConfigurationError(f"--kv-cache-dtype {kv_cache_dtype}: not supported")

    @property
    def quantized(self) -> bool:
        return self.kind != "model"

    @property
    def code(self) -> int:
        return KIND_CODES[self.kind]

    def storage_dtype(self, model_dtype: torch.dtype) -> torch.dtype:
        return _STORAGE[self.kind] if self.quantized else model_dtype

    def row_size(self, head_size: int) -> int:
        """The last dimension of the cache tensor (elements of ``storage_dtype``)."""
        return head_size + SCALE_BYTES if self.quantized else head_size

    def shape(self, num_blocks: int, block_size: int, kv_heads: int, head_size: int) -> tuple[int, ...]:
        """The shape of one layer's cache tensor."""
        if self.quantized:
            return 2, num_blocks, kv_heads, block_size, self.row_size(head_size)
        return 2, num_blocks, block_size, kv_heads, head_size

    def block_size(self, cache: torch.Tensor) -> int:
        """The tokens per block of a cache tensor of this format."""
        return cache.shape[3] if self.quantized else cache.shape[2]

    def bytes_per_token(self, kv_heads: int, head_size: int, model_dtype: torch.dtype) -> int:
        """Keys and values of one token of one layer."""
        element = torch.empty((), dtype=self.storage_dtype(model_dtype)).element_size()
        return 2 * kv_heads * self.row_size(head_size) * element

    def describe(self) -> str:
        if self.kind == "int8":
            return "int8 with a scale per token and head"
        if self.kind == "fp8_e4m3":
            return "fp8 e4m3 with " + ("a scale per token and head" if self.dynamic_scales else "scale 1.0")
        return "the model's dtype"
