"""A built model's prepared weights as one flat file, and back, memory-mapped.

After loading, the layers hold their weights as the kernels want them: packed int4
blocks, 8-bit panels, dense panels (``post_load``), in parameters, buffers and plain
tensor attributes. ``capture`` lists all of them per module (parameters and buffers
always; other attributes when loading set or replaced them, against ``watch``'s record
taken before); ``write`` stores them, each aligned, with a JSON index; ``read`` maps the
file copy-on-write and puts every tensor back into a freshly built model of the same
shape, without copying a byte.

A model is capturable when what loading left behind is tensors, plain values (None,
numbers, strings), tuples and lists of them, and packed weights (``fw.layers.packed``:
a ``PackedWeight`` and its layouts, stored as their attributes and rebuilt as the same
classes): ``capture`` returns None for anything else (an opaque oneDNN tensor, another
object), and the model is simply prepared again next time.
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fw.layers.packed import PackedLayout, PackedWeight

ALIGN = 64
#: the objects a capture may hold: packed weights and their layouts
OBJECTS = (PackedWeight, PackedLayout)
_PLAIN = (type(None), bool, int, float, str)
_DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float32, torch.float16, torch.bfloat16, torch.int8,
                                                      torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool)}

Watch = dict[str, dict[str, int]]


def watch(model: nn.Module) -> Watch:
    """Which object each module's plain attributes hold before loading."""
    return {name: {k: id(v) for k, v in vars(module).items() if not k.startswith("_")}
            for name, module in model.named_modules()}


def capture(model: nn.Module, before: Watch) -> dict[str, dict[str, Any]] | None:
    """Per module: its parameters, buffers and the attributes loading set, or None if
    one of them cannot be stored."""
    state: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        entry: dict[str, Any] = {"params": {}, "buffers": {}, "attrs": {}}
        for kind, items in (("params", module._parameters), ("buffers", module._buffers)):
            for key, value in items.items():
                if value is not None:
                    entry[kind][key] = value.data
        known = before.get(name, {})
        for key, value in vars(module).items():
            if key.startswith("_") or known.get(key) == id(value):
                continue
            if not _storable(value):
                return None
            entry["attrs"][key] = value
        state[name] = entry
    return state


def _storable(value: Any, seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        return value.layout == torch.strided and value.device.type == "cpu" and str(value.dtype)[6:] in _DTYPES
    if isinstance(value, (tuple, list)):
        return all(_storable(v, seen) for v in value)
    if isinstance(value, OBJECTS):
        if id(value) in seen:
            return True
        seen.add(id(value))
        return all(_storable(v, seen) for v in vars(value).values())
    return isinstance(value, _PLAIN)


def write(state: dict[str, dict[str, Any]], folder: Path) -> int:
    """``state`` into ``folder``/tensors.bin + index.json; returns the bytes written."""
    tensors: list[torch.Tensor] = []
    seen: dict[tuple, int] = {}
    objects: list[dict] = []
    object_ids: dict[int, int] = {}

    def ref(t: torch.Tensor) -> int:
        key = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
        if key not in seen:
            seen[key] = len(tensors)
            tensors.append(t)
        return seen[key]

    def encode(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return {"tensor": ref(value)}
        if isinstance(value, (tuple, list)):
            return {"tuple" if isinstance(value, tuple) else "list": [encode(v) for v in value]}
        if isinstance(value, OBJECTS):
            if id(value) not in object_ids:  # shared objects stay shared
                object_ids[id(value)] = len(objects)
                entry = {"class": f"{type(value).__module__}:{type(value).__qualname__}"}
                objects.append(entry)
                entry["state"] = {k: encode(v) for k, v in vars(value).items()}
            return {"object": object_ids[id(value)]}
        return {"value": value}

    index = {name: {kind: {k: encode(v) for k, v in entry[kind].items()} for kind in entry}
             for name, entry in state.items()}
    layout, offset = [], 0
    with open(folder / "tensors.bin", "wb") as out:
        for tensor in tensors:
            data = tensor.detach().contiguous()
            nbytes = data.numel() * data.element_size()
            out.write(b"\0" * (-offset % ALIGN))
            offset += -offset % ALIGN
            if nbytes:
                out.write(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
            layout.append({"dtype": str(data.dtype)[6:], "shape": list(data.shape), "offset": offset, "nbytes": nbytes})
            offset += nbytes
    (folder / "index.json").write_text(json.dumps({"tensors": layout, "objects": objects, "modules": index}))
    return offset


def read(model: nn.Module, folder: Path) -> bool:
    """Put the tensors of ``folder`` into ``model``; False (model untouched) when the file
    does not fit the model's modules."""
    index = json.loads((folder / "index.json").read_text())
    modules = dict(model.named_modules())
    if set(index["modules"]) != set(modules):
        return False
    size = os.path.getsize(folder / "tensors.bin")
    whole = torch.empty(0, dtype=torch.uint8)
    if size:
        with open(folder / "tensors.bin", "rb") as handle:
            # Private (writes never reach the file), its page tables filled from the page
            # cache in one go: the first forward pass would fault on every page anyway,
            # one at a time.
            mapping = mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_POPULATE", 0),
                                prot=mmap.PROT_READ | mmap.PROT_WRITE)
        whole = torch.frombuffer(mapping, dtype=torch.uint8)  # keeps the mapping alive
    tensors = [whole[t["offset"]:t["offset"] + t["nbytes"]].view(_DTYPES[t["dtype"]]).view(t["shape"])
               for t in index["tensors"]]

    objects = [_instance(entry["class"]) for entry in index.get("objects", [])]

    def decode(spec: dict) -> Any:
        if "tensor" in spec:
            return tensors[spec["tensor"]]
        if "tuple" in spec:
            return tuple(decode(v) for v in spec["tuple"])
        if "list" in spec:
            return [decode(v) for v in spec["list"]]
        if "object" in spec:
            return objects[spec["object"]]
        return spec["value"]

    for obj, entry in zip(objects, index.get("objects", [])):
        obj.__dict__.update({k: decode(v) for k, v in entry["state"].items()})

    for name, entry in index["modules"].items():
        module = modules[name]
        if set(entry["params"]) != {k for k, v in module._parameters.items() if v is not None}:
            return False
    for name, entry in index["modules"].items():
        module = modules[name]
        for key, spec in entry["params"].items():
            module._parameters[key].data = decode(spec)
        for key, spec in entry["buffers"].items():
            module._buffers[key] = decode(spec)
        for key, spec in entry["attrs"].items():
            module.__dict__[key] = decode(spec)
    return True


def _instance(path: str) -> Any:
    """An empty instance of the packed-weight class ``module:qualname`` (its attributes
    are set from the file); any other class is refused."""
    import importlib

    module, _, qualname = path.partition(":")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, OBJECTS)):
        raise TypeError(f"{path} is not a packed weight")
    return cls.__new__(cls)
