"""POST /v1/load_lora_adapter and /v1/unload_lora_adapter bodies (vLLM's field names)."""

from __future__ import annotations

from pydantic import Field

from fw.server.protocol.common import RequestModel


class LoadLoRAAdapterRequest(RequestModel):
    lora_name: str = Field(..., min_length=1, description="The name requests will give as `model`.")
    lora_path: str = Field(..., min_length=1, description=(
        "The adapter's folder on the server's machine, as PEFT saves it (adapter_config.json and "
        "adapter_model.safetensors)."))


class UnloadLoRAAdapterRequest(RequestModel):
    lora_name: str = Field(..., min_length=1, description="The adapter to unload.")
