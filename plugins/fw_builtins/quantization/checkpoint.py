"""A checkpoint's ``quantization_config`` (config.json): read, checked, and its tensors
decoded for the loaders.

fw reads 4-bit GPTQ (``gptq``, ``gptq_v2``; symmetric or not; any group size; with or
without act-order) and AWQ (GEMM) checkpoints; any other method is refused with its
name. ``decoded`` turns each quantized layer's tensors (``qweight``, ``qzeros``,
``scales``, ``g_idx``) into its dense ``weight``, the same whatever method then runs it,
and records the layer's exact 4-bit grid where one exists (``int4_groups``) so that the
``int4`` method packs the checkpoint's own levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from fw.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from fw.model_loader.base import WeightLoader

#: quant_method -> the tensors of a layer that must all be there (GPTQ's g_idx may be absent)
TENSORS = {"gptq": ("qweight", "qzeros", "scales"), "awq": ("qweight", "qzeros", "scales")}
#: every per-layer tensor name the formats use
QUANTIZED_KINDS = {"qweight", "qzeros", "scales", "g_idx"}
#: the method fw serves these checkpoints with (their own 4-bit grid, packed)
METHOD = "int4"


@dataclass(frozen=True)
class CheckpointQuantization:
    """What ``quantization_config`` says, in fw's terms."""

    method: str  # "gptq" or "awq"
    group_size: int  # -1: one group over all inputs
    checkpoint_format: str  # gptq: "gptq" or "gptq_v2"; awq: "gemm"
    act_order: bool = False
    symmetric: bool = False


def read_quantization_config(config: Any, source: Path | str) -> CheckpointQuantization | None:
    """The checkpoint quantization ``config`` (a ``quantization_config`` dict, or None)
    describes; ModelLoadError naming ``source`` and the setting for what fw cannot load."""
    if config is None:
        return None
    if not isinstance(config, dict):
        config = config.to_dict() if hasattr(config, "to_dict") else vars(config)

    def refuse(problem: str) -> ModelLoadError:
        return ModelLoadError(source, f"quantization_config: {problem}")

    method = str(config.get("quant_method", "")).lower()
    if method not in TENSORS:
        raise refuse(f"method {method or 'missing'!r} is not one fw can load (it reads 4-bit gptq and awq "
                     "checkpoints); use an unquantized or GGUF version of the model")
    bits = config.get("bits", config.get("w_bit"))
    if bits != 4:
        raise refuse(f"{method} with {bits} bits; fw reads 4-bit {method} checkpoints only")
    group_size = config.get("group_size", config.get("q_group_size", -1))
    if not isinstance(group_size, int) or (group_size <= 0 and group_size != -1):
        raise refuse(f"group_size {group_size!r} is neither a positive number nor -1")
    if method == "gptq":
        fmt = str(config.get("checkpoint_format") or config.get("format") or "gptq").lower()
        if fmt not in ("gptq", "gptq_v2"):
            raise refuse(f"gptq checkpoint_format {fmt!r} is not one fw reads (gptq, gptq_v2)")
        return CheckpointQuantization("gptq", group_size, fmt, act_order=bool(config.get("desc_act", False)),
                                      symmetric=bool(config.get("sym", True)))
    version = str(config.get("version", "gemm")).lower()
    if version != "gemm":
        raise refuse(f"awq version {version!r} is not one fw reads (gemm)")
    if not config.get("zero_point", True):
        raise refuse("awq without zero points (zero_point: false) is not a format fw reads")
    return CheckpointQuantization("awq", group_size, "gemm")


def of_loader(loader: "WeightLoader") -> CheckpointQuantization | None:
    """The quantization of ``loader``'s checkpoint, from its config.json."""
    folder = loader.path if loader.path.is_dir() else loader.path.parent
    if not (folder / "config.json").is_file():
        return None
    return read_quantization_config(getattr(loader.hf_config(), "quantization_config", None), folder / "config.json")


def default_method(loader: "WeightLoader") -> str | None:
    """``int4`` for a GPTQ or AWQ checkpoint (its own 4-bit grid), None otherwise."""
    return METHOD if of_loader(loader) is not None else None


def decoded(loader: "WeightLoader", weights: Iterator[tuple[str, "torch.Tensor"]]
            ) -> Iterator[tuple[str, "torch.Tensor"]]:
    """``weights`` with each quantized layer's tensors replaced by its dense ``weight``;
    the exact grids go to ``loader.int4_grids`` by layer name."""
    spec = of_loader(loader)
    if spec is None:
        yield from weights
        return
    pending: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in weights:
        prefix, _, kind = name.rpartition(".")
        if kind not in QUANTIZED_KINDS:
            yield name, tensor
            continue
        parts = pending.setdefault(prefix, {})
        parts[kind] = tensor
        if all(k in parts for k in TENSORS[spec.method]) and (spec.method != "gptq" or "g_idx" in parts):
            yield prefix + ".weight", _dense(prefix, pending.pop(prefix), spec, loader)
    for prefix, parts in pending.items():  # GPTQ layers without g_idx, or incomplete ones
        missing = [k for k in TENSORS[spec.method] if k not in parts]
        if missing:
            raise ModelLoadError(loader.path, f"{spec.method} layer {prefix!r} lacks {', '.join(missing)}")
        yield prefix + ".weight", _dense(prefix, parts, spec, loader)


def _dense(prefix: str, parts: dict[str, "torch.Tensor"], spec: CheckpointQuantization,
           loader: "WeightLoader") -> "torch.Tensor":
    from fw_builtins.quantization.awq import unpack_awq
    from fw_builtins.quantization.gptq import FormatError, unpack_gptq
    from fw_builtins.quantization.int4_groups import int4_grid

    try:
        if spec.method == "gptq":
            groups = unpack_gptq(parts["qweight"], parts["qzeros"], parts["scales"], parts.get("g_idx"),
                                 checkpoint_format=spec.checkpoint_format, group_size=spec.group_size)
        else:
            groups = unpack_awq(parts["qweight"], parts["qzeros"], parts["scales"], group_size=spec.group_size)
    except FormatError as exc:
        raise ModelLoadError(loader.path, f"{spec.method} layer {prefix!r}: {exc}") from None
    grid = int4_grid(groups)
    if grid is not None:
        loader.int4_grids[prefix] = grid
    return groups.dequantize()
