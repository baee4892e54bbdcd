"""``--load-format gguf``: a single ``.gguf`` file (llama.cpp's format).

Config, tokenizer and chat template come from the file's metadata (gguf_metadata.py);
tensors are renamed to Hugging Face checkpoint names, so a model plugin loads them like
any other checkpoint. Quantized matrices come as ``gguf_blocks.GGUFMatrix`` (a
``fw.layers.packed.QuantizedMatrix``): the ``gguf`` quantization method keeps their
levels, any other dequantizes them to exactly the file's values; F32/F16/BF16 tensors come
as tensors. llama.cpp stores the q/k projections of llama models with rows permuted for
its rotary layout, and Gemma's norm weights plus one; both are undone here, as
transformers does.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fw.model_loader.base import WeightLoader
from fw.errors import ModelLoadError

from fw_builtins.loaders.progress import progress

if TYPE_CHECKING:
    import torch

    from fw_builtins.loaders.gguf_reader import GGUFFile, TensorInfo

# GGUF's standard tensor names (ggml docs/gguf.md) -> Hugging Face checkpoint names.
GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
BLOCK_NAMES = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
    "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
_GEMMA_NAMES = {**BLOCK_NAMES, "post_attention_norm": "post_attention_layernorm",
                "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm"}
#: GGUF architecture -> its block names where they differ from llama's
ARCH_BLOCK_NAMES = {
    "gemma2": _GEMMA_NAMES, "gemma3": _GEMMA_NAMES,
    # Phi-3 keeps q/k/v and gate/up merged, as its checkpoints do
    "phi3": {**BLOCK_NAMES, "attn_qkv": "self_attn.qkv_proj", "ffn_up": "mlp.gate_up_proj"},
}
#: GGUF architectures whose norm weights llama.cpp stores plus one
NORMS_PLUS_ONE = ("gemma2", "gemma3")


class GGUFLoader(WeightLoader):
    name = "gguf"
    auto_priority = 10

    def __init__(self, path, load_config, model_config):
        super().__init__(path, load_config, model_config)
        if not self.path.is_file():
            raise ModelLoadError(self.path, "is not a file; --load-format gguf takes a .gguf file")

    @classmethod
    def architectures(cls) -> frozenset[str]:
        from fw_builtins.loaders.gguf_metadata import ARCHITECTURES

        return frozenset(ARCHITECTURES.values())

    @classmethod
    def can_load(cls, path: Path) -> bool:
        if not path.is_file():
            return False
        if path.suffix == ".gguf":
            return True
        try:
            with open(path, "rb") as handle:
                return handle.read(4) == b"GGUF"
        except OSError:
            return False

    @cached_property
    def file(self) -> "GGUFFile":
        """The parsed header; read on first use, so a cached tokenizer never opens the file."""
        from fw_builtins.loaders.gguf_reader import GGUFFile

        return GGUFFile(self.path)

    def hf_config(self):
        from fw_builtins.loaders.gguf_metadata import hf_config

        return hf_config(self.file)

    def tokenizer(self):
        from fw_builtins.loaders.gguf_metadata import load_gguf_tokenizer

        override = self.model_config.tokenizer
        if override is None:
            return load_gguf_tokenizer(self.path, self.__dict__.get("file"))  # the header, if already read
        if Path(override).is_file():
            return load_gguf_tokenizer(Path(override))
        from fw.model_loader.tokenizer import load_hf_tokenizer

        return load_hf_tokenizer(override, trust_remote_code=self.model_config.trust_remote_code)

    def generation_config(self) -> dict:
        """GGUF metadata holds no sampling defaults."""
        return {}

    def default_quantization(self) -> str | None:
        """``gguf`` when most layer weights are stored quantized: the file's own levels are
        served (``fw_builtins.quantization.gguf``) instead of being inflated to bf16."""
        from gguf import GGMLQuantizationType as T

        layer_weights = [t for t in self.file.tensors if t.name.startswith("blk.") and len(t.shape) >= 2]
        quantized = sum(1 for t in layer_weights if t.type not in (T.F32, T.F16, T.BF16))
        return "gguf" if layer_weights and quantized * 2 > len(layer_weights) else None

    def iter_weights(self) -> Iterator[tuple[str, "torch.Tensor"]]:
        from fw_builtins.loaders.gguf_blocks import readable

        arch = self.file.metadata.get("general.architecture")
        unreadable = sorted({f"{info.name!r} ({info.type.name})" for info in self.file.tensors
                             if not readable(info.type)})
        if unreadable:
            raise ModelLoadError(self.path, f"holds tensors of a type fw cannot read: {', '.join(unreadable[:3])}"
                                            f"{' and more' if len(unreadable) > 3 else ''}")
        permuted = self._permuted_heads()
        tensors = [(info, self.hf_name(info.name)) for info in self.file.tensors]
        for info, name in progress(tensors, total=len(tensors), desc="Loading GGUF weights",
                                   enabled=self.load_config.use_tqdm_on_load):
            tensor = self.read(info)
            heads = next((n for part, n in permuted.items() if f".{part}." in name), None)
            if heads is not None:
                tensor = unpermute(tensor, heads)
            if arch in NORMS_PLUS_ONE and name.endswith("norm.weight"):
                tensor = tensor - 1
            yield name, tensor

    def _permuted_heads(self) -> dict[str, int]:
        """llama.cpp permutes q/k rows only for the llama architecture."""
        from fw_builtins.loaders.gguf_metadata import config_dict

        config = config_dict(self.file)
        if config["model_type"] != "llama":
            return {}
        return {"self_attn.q_proj": config["num_attention_heads"], "self_attn.k_proj": config["num_key_value_heads"]}

    def hf_name(self, gguf_name: str) -> str:
        base, _, kind = gguf_name.rpartition(".")
        if base.startswith("blk.") and base.count(".") >= 2:
            _, layer, part = base.split(".", 2)
            names = ARCH_BLOCK_NAMES.get(self.file.metadata.get("general.architecture"), BLOCK_NAMES)
            mapped = names.get(part)
            name = f"model.layers.{layer}.{mapped}.{kind}"
        else:
            mapped = GLOBAL_NAMES.get(base)
            name = f"{mapped}.{kind}"
        if mapped is None or kind not in ("weight", "bias"):
            raise ModelLoadError(self.path, f"holds tensor {gguf_name!r}, which fw's GGUF loader does not know")
        return name

    def read(self, info: "TensorInfo"):
        """A quantized matrix as a ``GGUFMatrix`` (its levels, or exactly its values, on
        demand); anything else as the tensor ``dequantize`` gives."""
        from gguf import GGMLQuantizationType as T

        from fw_builtins.loaders.gguf_blocks import GGUFMatrix

        if len(info.shape) == 2 and info.type not in (T.F32, T.F16, T.BF16):
            return GGUFMatrix(self.file.raw(info).reshape(info.torch_shape[0], -1), info.type, info.torch_shape)
        return self.dequantize(info)

    def dequantize(self, info: "TensorInfo") -> "torch.Tensor":
        """The tensor in PyTorch layout: float32, or float16/bfloat16 for F16/BF16 tensors."""
        import numpy as np
        import torch
        from gguf import GGMLQuantizationType as T
        from gguf.quants import dequantize

        from fw_builtins.loaders.gguf_dequant import dequantize_blocks

        raw = self.file.raw(info)
        shape = info.torch_shape
        fast = dequantize_blocks(raw, info.type)
        if fast is not None:
            return torch.from_numpy(fast.reshape(shape))
        if info.type == T.F16:
            return torch.from_numpy(raw.view(np.float16).reshape(shape).copy())
        if info.type == T.BF16:
            return torch.from_numpy(raw.view(np.int16).reshape(shape).copy()).view(torch.bfloat16)
        try:
            values = dequantize(raw.reshape(*shape[:-1], -1), info.type)
        except NotImplementedError:
            raise ModelLoadError(self.path, f"tensor {info.name!r} has type {info.type.name}, "
                                            "which fw cannot dequantize") from None
        values = values.reshape(shape)
        if not values.flags.writeable:  # F32 data is a view of the read-only memory map
            values = values.copy()
        return torch.from_numpy(values)


def unpermute(tensor, heads: int):
    """Undo llama.cpp's q/k row order: per head, GGUF interleaves the two rotary halves.
    A quantized matrix is reordered by whole rows (its blocks), exactly."""
    import torch

    from fw.layers.packed import QuantizedMatrix

    rows = tensor.shape[0]
    if isinstance(tensor, QuantizedMatrix):
        order = torch.arange(rows).reshape(heads, rows // heads // 2, 2).transpose(1, 2).reshape(-1)
        return tensor.select_rows(order)
    return tensor.reshape(heads, rows // heads // 2, 2, *tensor.shape[1:]).transpose(1, 2).reshape(tensor.shape)
