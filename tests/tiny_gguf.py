"""Writing a tiny checkpoint (tests/checkpoints.py) as a GGUF file, as llama.cpp would.

Tensor names come from the ``gguf`` package's own HF->GGUF name map and the llama q/k
rows are permuted the way llama.cpp's converter does (and Gemma's norm weights stored plus
one, as it does too), so a GGUF loader that reads these files back into the original
tensors is checked against an independent description of the format, not against its own
tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import load_file

#: HF model_type -> GGUF architecture
ARCHS = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2, "qwen3": gguf.MODEL_ARCH.QWEN3,
         "gemma2": gguf.MODEL_ARCH.GEMMA2, "gemma3_text": gguf.MODEL_ARCH.GEMMA3, "phi3": gguf.MODEL_ARCH.PHI3}
#: types written as random blocks (gguf-py cannot quantize to them)
K_QUANTS = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "Q8_1")


def permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k row order: per head, the two rotary halves interleaved."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def make_tiny_gguf(path: Path, checkpoint: Path, *, tensor_type: str = "F32", seed: int = 0,
                   tensor_types: dict[str, str] | None = None) -> Path:
    """Write ``checkpoint`` (a tiny HF folder) to ``path`` as GGUF; returns ``path``.

    Matrices are stored as ``tensor_type`` (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
    a K-quant or IQ4_NL); 1-D tensors stay F32, as llama.cpp keeps them. gguf-py cannot
    quantize to K-quants or IQ4_NL, so for those the blocks are random bytes with sane
    scales (the values are then defined by the format alone, which is what a loader must
    reproduce).
    """
    config = json.loads((checkpoint / "config.json").read_text())
    arch = ARCHS[config["model_type"]]
    arch_name = gguf.MODEL_ARCH_NAMES[arch]
    writer = gguf.GGUFWriter(str(path), arch_name)
    _write_config(writer, config)
    _write_tokenizer(writer, checkpoint)
    names = gguf.get_tensor_name_map(arch, config["num_hidden_layers"])
    rng = np.random.default_rng(seed)
    for hf_name, tensor in sorted(load_file(checkpoint / "model.safetensors").items()):
        base, kind = hf_name.rsplit(".", 1)
        data = tensor.to(torch.float32).numpy()
        if arch_name == "llama" and base.endswith(("q_proj", "k_proj")):
            heads = config["num_attention_heads" if base.endswith("q_proj") else "num_key_value_heads"]
            data = permute(data, heads)
        if arch_name.startswith("gemma") and base.endswith("norm"):
            data = data + 1  # llama.cpp stores Gemma's (1 + w)
        name = f"{names.get_name(base)}.{kind}"
        qtype = gguf.GGMLQuantizationType[(tensor_types or {}).get(name, tensor_type if data.ndim == 2 else "F32")]
        writer.add_tensor(name, _encode(data, qtype, rng), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _encode(data: np.ndarray, qtype: gguf.GGMLQuantizationType, rng) -> np.ndarray:
    if qtype == gguf.GGMLQuantizationType.F32:
        return data
    if qtype.name not in K_QUANTS:
        return gguf.quants.quantize(data, qtype)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(data.shape[0], data.shape[1] // block_size, type_size), dtype=np.uint8)
    # Random bytes in a block's f16 super-block scales could be inf/nan; write small ones.
    # Q4_K/Q5_K start with d, dmin; IQ4_NL/IQ4_XS with d; Q2_K ends with d, dmin; Q3_K/Q6_K end with d.
    start, count = {"Q4_K": (0, 2), "Q5_K": (0, 2), "IQ4_NL": (0, 1), "IQ4_XS": (0, 1),
                    "Q2_K": (type_size - 4, 2)}.get(qtype.name, (type_size - 2, 1))
    blocks[..., start:start + 2 * count] = np.full(count, 0.01, np.float16).view(np.uint8)
    return blocks.reshape(data.shape[0], -1)


def _write_config(writer: gguf.GGUFWriter, config: dict) -> None:
    writer.add_name("tiny")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    rope = config["rope_parameters"]
    writer.add_rope_freq_base(rope["full_attention"]["rope_theta"] if "full_attention" in rope else rope["rope_theta"])
    if config["model_type"].startswith("gemma"):
        writer.add_sliding_window(config["sliding_window"])
        writer.add_sliding_window_pattern([kind == "sliding_attention" for kind in config["layer_types"]])
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            if config.get(key) is not None:
                getattr(writer, f"add_{key}")(config[key])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    writer.add_rope_dimension_count(int(head_dim * config.get("rope_parameters", {}).get("partial_rotary_factor", 1.0)))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)


def _write_tokenizer(writer: gguf.GGUFWriter, checkpoint: Path) -> None:
    tokenizer = json.loads((checkpoint / "tokenizer.json").read_text())
    specials = {t["id"]: t["content"] for t in tokenizer["added_tokens"]}
    vocab = tokenizer["model"]["vocab"] | {v: k for k, v in specials.items()}
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    ids = {token: index for index, token in enumerate(tokens)}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in specials else 1 for i in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(ids[config["bos_token"]])
    writer.add_eos_token_id(ids[config["eos_token"]])
    writer.add_pad_token_id(ids[config["pad_token"]])
    writer.add_unk_token_id(ids[config["unk_token"]])
    writer.add_add_bos_token(False)
    writer.add_chat_template((checkpoint / "chat_template.jinja").read_text())
