"""POST /v1/load_lora_adapter and /v1/unload_lora_adapter: adapters added and removed
while the server runs.

Changing what a server serves is the operator's decision, not any client's, so these
routes exist only when the environment variable ``FW_ALLOW_RUNTIME_LORA_UPDATING`` is
``1`` (or true/yes/on) at start-up, the switch vLLM also uses (under its own prefix);
otherwise they answer 404 like any unknown path. They also need ``--enable-lora``,
which sizes the LoRA slots when the engine starts, and read adapters only from inside
--lora-path-roots (``fw.lora.paths``).
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from fw.errors import InvalidParameterError, ModelNotFoundError, NotSupportedError
from fw.lora.paths import check_adapter_path
from fw.lora.request import LoRARequest
from fw.server.context import ServerContext, get_context
from fw.server.json_body import StrictJSONRoute
from fw.server.protocol.lora import LoadLoRAAdapterRequest, UnloadLoRAAdapterRequest
from fw.server.routers import json_errors

RUNTIME_LORA_ENV = "FW_ALLOW_RUNTIME_LORA_UPDATING"

router = APIRouter(tags=["LoRA"], route_class=StrictJSONRoute)

_ERRORS = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    **json_errors(400, 401, 404, 413, 500),
}


def runtime_updates_allowed() -> bool:
    return os.environ.get(RUNTIME_LORA_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _require_lora(ctx: ServerContext) -> None:
    if not ctx.config.lora.enable_lora:
        raise NotSupportedError("LoRA is not enabled on this server; start it with --enable-lora to load "
                                "adapters", param="lora_name")


def _already_loaded(lora: LoRARequest) -> InvalidParameterError:
    return InvalidParameterError("lora_name", f"a LoRA adapter named {lora.lora_name!r} is already loaded; "
                                              "unload it first")


@router.post("/v1/load_lora_adapter", response_class=PlainTextResponse, responses=_ERRORS)
async def load_lora_adapter(body: LoadLoRAAdapterRequest,
                            ctx: ServerContext = Depends(get_context)) -> PlainTextResponse:
    """Load a PEFT adapter from a folder inside --lora-path-roots; requests may then name
    it as their ``model``. Its files are read and checked now, so an adapter the model
    cannot take is a 400 naming the reason. Enabled by FW_ALLOW_RUNTIME_LORA_UPDATING=1."""
    _require_lora(ctx)
    check_adapter_path(body.lora_path, ctx.config.lora.runtime_roots)
    loaded = ctx.engine.list_loras()
    existing = next((lora for lora in loaded if lora.lora_name == body.lora_name), None)
    if existing is not None:
        raise _already_loaded(existing)
    # fw finds adapters by name; the id is only echoed, so the next free one will do
    lora = LoRARequest(body.lora_name, max((lora.lora_int_id for lora in loaded), default=0) + 1, body.lora_path)
    if not await ctx.engine.add_lora(lora):
        raise _already_loaded(lora)  # a concurrent load of the same folder won
    return PlainTextResponse(f"LoRA adapter {lora.lora_name!r} loaded from {lora.lora_path}")


@router.post("/v1/unload_lora_adapter", response_class=PlainTextResponse, responses=_ERRORS)
async def unload_lora_adapter(body: UnloadLoRAAdapterRequest,
                              ctx: ServerContext = Depends(get_context)) -> PlainTextResponse:
    """Unload an adapter: new requests for it get 404 at once, requests already running
    with it finish normally. Enabled by FW_ALLOW_RUNTIME_LORA_UPDATING=1."""
    _require_lora(ctx)
    if not await ctx.engine.remove_lora(body.lora_name):
        loaded = ", ".join(repr(lora.lora_name) for lora in ctx.engine.list_loras()) or "none"
        raise ModelNotFoundError(f"no LoRA adapter named {body.lora_name!r} is loaded (loaded: {loaded})",
                                 param="lora_name")
    return PlainTextResponse(f"LoRA adapter {body.lora_name!r} unloaded")
