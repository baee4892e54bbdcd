"""GPTQ and AWQ checkpoints made in the test, from a tiny random checkpoint.

The packers here follow the formats as AutoGPTQ/GPTQModel and AutoAWQ write them (see
fw_builtins/quantization/gptq.py and awq.py for the layouts), written independently of
fw's unpackers and word by word, so that a test compares two readings of the format.
Each linear layer is quantized per group (min-max, or symmetric for GPTQ's sym), and
the dense weights the quantized ones stand for are returned beside the folder: they are
the reference a decoder must reproduce.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def quantize_groups(weight: torch.Tensor, g_idx: torch.Tensor, groups: int, *, symmetric: bool,
                    v1_zeros: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(levels [out, in], zeros [groups, out], float16 scales [groups, out]) such that
    w ~ (levels - zeros) * scales. GPTQ v1 zero points are 1..16 (stored as z - 1)."""
    w = weight.double().numpy()
    out_features, _ = w.shape
    levels = np.zeros(w.shape, dtype=np.int64)
    zeros = np.zeros((groups, out_features), dtype=np.int64)
    scales = np.zeros((groups, out_features), dtype=np.float16)
    for g in range(groups):
        columns = np.nonzero(g_idx.numpy() == g)[0]
        block = w[:, columns]
        if symmetric:
            scale = (np.abs(block).max(1) * 2 / 15).astype(np.float16)
            zero = np.full(out_features, 8)
        else:
            low, high = np.minimum(block.min(1), 0), np.maximum(block.max(1), 0)
            scale = ((high - low) / 15).astype(np.float16)
            zero = np.round(-low / scale.astype(np.float64)).astype(np.int64)
            zero = np.clip(zero, 1 if v1_zeros else 0, 16 if v1_zeros else 15)
        scale = np.where(scale == 0, np.float16(1e-3), scale)
        q = np.round(block / scale.astype(np.float64)[:, None]) + zero[:, None]
        levels[:, columns] = np.clip(q, 0, 15)
        zeros[g], scales[g] = zero, scale
    return levels, zeros, scales


def dequantize(levels, zeros, scales, g_idx) -> torch.Tensor:
    g = g_idx.numpy()
    return torch.from_numpy((levels - zeros[g].T) * scales[g].T.astype(np.float64)).float()


def _word(nibbles) -> np.int32:
    value = 0
    for j, nibble in enumerate(nibbles):
        value |= (int(nibble) & 15) << (4 * j)
    return np.array(value, dtype=np.uint32).view(np.int32)


def pack_gptq(levels, zeros, *, v1_zeros: bool) -> tuple[np.ndarray, np.ndarray]:
    """qweight [in / 8, out] (8 inputs per word), qzeros [groups, out / 8] (8 outputs)."""
    out_features, in_features = levels.shape
    qweight = np.zeros((in_features // 8, out_features), dtype=np.int32)
    for r in range(in_features // 8):
        for c in range(out_features):
            qweight[r, c] = _word(levels[c, 8 * r: 8 * r + 8])
    stored = zeros - 1 if v1_zeros else zeros
    qzeros = np.zeros((zeros.shape[0], out_features // 8), dtype=np.int32)
    for g in range(zeros.shape[0]):
        for c in range(out_features // 8):
            qzeros[g, c] = _word(stored[g, 8 * c: 8 * c + 8])
    return qweight, qzeros


def pack_awq(levels, zeros) -> tuple[np.ndarray, np.ndarray]:
    """qweight [in, out / 8], qzeros [groups, out / 8]: nibble j holds output 8c + ORDER[j]."""
    out_features, in_features = levels.shape
    qweight = np.zeros((in_features, out_features // 8), dtype=np.int32)
    for i in range(in_features):
        for c in range(out_features // 8):
            qweight[i, c] = _word([levels[8 * c + k, i] for k in AWQ_ORDER])
    qzeros = np.zeros((zeros.shape[0], out_features // 8), dtype=np.int32)
    for g in range(zeros.shape[0]):
        for c in range(out_features // 8):
            qzeros[g, c] = _word([zeros[g, 8 * c + k] for k in AWQ_ORDER])
    return qweight, qzeros


def make_quantized_checkpoint(folder: Path, source: Path, method: str, *, group_size: int = 32,
                              symmetric: bool = False, act_order: bool = False, v2: bool = False,
                              seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    """Copy ``source`` to ``folder`` with its linear layers in ``method`` ("gptq" or "awq")
    format; returns the folder and the dense weights the quantized layers stand for."""
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    shutil.copytree(source, folder)
    tensors = load_file(folder / "model.safetensors")
    generator = torch.Generator().manual_seed(seed)
    reference: dict[str, torch.Tensor] = {}
    v1 = method == "gptq" and not v2
    for name in [n for n in tensors if n.rsplit(".", 2)[-2] in LINEAR and n.endswith(".weight")]:
        weight = tensors.pop(name)
        prefix = name.removesuffix(".weight")
        in_features = weight.shape[1]
        size = in_features if group_size == -1 else group_size
        groups = in_features // size
        g_idx = torch.arange(in_features) // size
        if act_order:
            g_idx = g_idx[torch.randperm(in_features, generator=generator)]
        levels, zeros, scales = quantize_groups(weight, g_idx, groups, symmetric=symmetric, v1_zeros=v1)
        reference[prefix] = dequantize(levels, zeros, scales, g_idx)
        if method == "gptq":
            qweight, qzeros = pack_gptq(levels, zeros, v1_zeros=v1)
            tensors[f"{prefix}.g_idx"] = g_idx.to(torch.int32)
        else:
            qweight, qzeros = pack_awq(levels, zeros)
        tensors[f"{prefix}.qweight"] = torch.from_numpy(qweight)
        tensors[f"{prefix}.qzeros"] = torch.from_numpy(qzeros)
        tensors[f"{prefix}.scales"] = torch.from_numpy(scales)
    save_file(tensors, folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    if method == "gptq":
        config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": group_size,
                                         "desc_act": act_order, "sym": symmetric,
                                         "checkpoint_format": "gptq_v2" if v2 else "gptq"}
    else:
        config["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": group_size,
                                         "version": "gemm", "zero_point": True}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder, reference


def dense_twin(folder: Path, quantized: Path, reference: dict[str, torch.Tensor]) -> Path:
    """A plain checkpoint of the dense weights ``reference`` (for transformers)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(quantized, folder)
    tensors = {k: v for k, v in load_file(folder / "model.safetensors").items()
               if k.rpartition(".")[2] not in ("qweight", "qzeros", "scales", "g_idx")}
    tensors.update({f"{prefix}.weight": weight for prefix, weight in reference.items()})
    save_file(tensors, folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    del config["quantization_config"]
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder
