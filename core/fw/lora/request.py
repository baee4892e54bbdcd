"""LoRARequest: which adapter a request runs with (vLLM's constructor and field names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoRARequest:
    """An adapter by name, a positive integer id, and the folder of its PEFT files.

    fw identifies a loaded adapter by ``lora_name`` (what API requests put in ``model``);
    ``lora_int_id`` is kept for vLLM compatibility and echoed back, fw does not rely on
    it being unique.
    """

    lora_name: str
    lora_int_id: int
    lora_path: str = ""
    #: the base model the adapter belongs to (``parent`` in /v1/models); None = the served model
    base_model_name: str | None = None

    def __post_init__(self) -> None:
        if not self.lora_name:
            raise ValueError("LoRARequest: lora_name must not be empty")
        if isinstance(self.lora_int_id, bool) or not isinstance(self.lora_int_id, int) or self.lora_int_id < 1:
            raise ValueError(f"LoRARequest {self.lora_name!r}: lora_int_id must be an integer >= 1, "
                             f"got {self.lora_int_id!r}")
        object.__setattr__(self, "lora_path", str(self.lora_path))

    @property
    def adapter_id(self) -> int:
        return self.lora_int_id

    @property
    def name(self) -> str:
        return self.lora_name

    @property
    def path(self) -> str:
        return self.lora_path
