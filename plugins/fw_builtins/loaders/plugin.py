"""Registers the built-in weight loaders (``--load-format``).

Targets are strings, so registering imports neither torch nor any file-format library;
a loader's module is imported when its format is used or ``auto`` asks it.
``auto`` tries safetensors, then pt, then gguf (``auto_priority`` on each class).
"""

from fw import hookimpl

_LOADERS = "fw_builtins.loaders"


@hookimpl
def fw_register_load_formats(register):
    register("safetensors", f"{_LOADERS}.safetensors_loader:SafetensorsLoader")
    register("pt", f"{_LOADERS}.pt_loader:PtLoader")
    register("gguf", f"{_LOADERS}.gguf_loader:GGUFLoader")
    register("dummy", f"{_LOADERS}.dummy_loader:DummyLoader")
