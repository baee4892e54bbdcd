"""Rank 0's model: the engine calls it as any model, and every call runs on all ranks.

``TensorParallelModel`` stands where the engine expects a model. Its ``__call__`` and
``compute_logits`` first send the workers the call's inputs (the flattened batch, the
attention metadata of the step, the LoRA mapping, the KV cache's size), then run rank 0's
shard, whose collectives meet the workers'. Everything else (``modules()``, LoRA's layer
walk, KV sizing) reads rank 0's shard, so the engine, the runner, the scheduler and the
sampler do not know the model is split. It declares no decoder description: the fused
CPU decode has no all-reduce, so it never runs under tensor parallelism.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch import nn

from fw.attention.context import get_forward_context
from fw.distributed.group import TensorParallelGroup
from fw.distributed.messages import ForwardStep, LogitsStep, Stop
from fw.engine.kv_sizing import attention_layers
from fw.layers.linear import Linear
from fw.layers.lora import LoRABatch, LoRALinear

logger = logging.getLogger("fw.distributed")


class TensorParallelModel:
    #: no fused CPU decode under tensor parallelism (``fw.engine.fused_decode``)
    describe_decoder = None

    def __init__(self, module: nn.Module, group: TensorParallelGroup, check_workers: Callable[[], None]):
        self.module = module
        self.group = group
        #: raises ``FwError`` naming a worker that has ended (the executor's ``check_alive``)
        self.check_workers = check_workers
        self._attention = attention_layers(module)
        self._lora: list[LoRALinear | None] | None = None
        #: a call is under way; if it failed, the workers sit in a collective and
        #: cannot take a message
        self._in_call = False

    def __getattr__(self, name: str) -> Any:
        if name == "module":
            raise AttributeError(name)
        return getattr(self.module, name)

    def __call__(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        metadata = get_forward_context().metadata
        layer = self._attention[0]
        blocks = (layer.kv_cache.shape[1], layer.impl.kv_format.block_size(layer.kv_cache))
        self._send(ForwardStep.of(input_ids, positions, metadata, blocks, self._lora_batch()))
        hidden = self.module(input_ids, positions)
        self._in_call = False
        return hidden

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.contiguous()
        self._send(LogitsStep(tuple(hidden.shape), hidden.dtype))
        self.group.broadcast_tensor(hidden)
        logits = self.module.compute_logits(hidden)
        self._in_call = False
        return logits

    def _send(self, message: ForwardStep | LogitsStep) -> None:
        """Begin a call on every rank. A worker that has ended fails the step here, by
        name: gloo's send to a dead peer usually fails too, but now and then it waits
        forever (the control group never times out, see ``fw.distributed.group``)."""
        self._in_call = True
        self.check_workers()
        self.group.send(message)

    def _lora_batch(self) -> LoRABatch | None:
        """This step's LoRA mapping (LoRA layers are attached after the model is built)."""
        if self._lora is None:
            hooks = [m.lora for m in self.module.modules() if isinstance(m, Linear) and m.lora is not None]
            self._lora = hooks[:1] or [None]
        hook = self._lora[0]
        return None if hook is None else hook.step.batch

    def stop_workers(self) -> bool:
        """Tell the workers to leave their loop; False when they cannot hear it (a failed
        call left them in a collective, or one is gone): their processes are ended then."""
        if self._in_call:
            return False
        try:
            self.check_workers()
            self.group.send(Stop())
        except Exception as exc:  # noqa: BLE001 - a worker already gone; the executor ends the rest
            logger.warning("could not tell the tensor-parallel workers to stop: %s", exc)
            return False
        return True
