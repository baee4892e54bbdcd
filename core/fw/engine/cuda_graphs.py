"""CUDA graphs for decode steps: which batch sizes are captured, padding a step to the
next captured size, and the static input buffers the graphs read.

A decode step of a small model on a GPU is bound by launching its ~hundreds of kernels,
not by the GPU: a captured graph replays them in one launch. fw captures *full* graphs of
pure decode steps (vLLM's ``cudagraph_mode=FULL_DECODE_ONLY``): every sequence decodes
one token, so a step is described by its row count alone, and a step of ``n`` rows runs
the graph of the smallest captured size ``>= n``, its extra rows padding (slot -1, which
the KV write skips; a context of one token; their outputs dropped). Prompt chunks,
steps above the largest size, LoRA and token types run eagerly.

Sizes follow vLLM's ``--cuda-graph-sizes``: none given, one size up to
``min(2 * max_num_seqs, 512)``; one value ``N``: 1, 2, 4 and every multiple of 8 up to
``N``; several values: those. ``-O '{"cudagraph_capture_sizes": [...]}'`` overrides them.
Sizes above ``max_num_seqs`` are dropped (a decode step has at most that many rows).
``--enforce-eager`` or ``cudagraph_mode`` ``NONE`` turns graphs off; they are never used
on a CPU (``plan_graphs`` says why in ``GraphPlan.reason``).

The capture itself needs CUDA (``torch.cuda.CUDAGraph``); ``DecodeGraphs`` takes the
graph type as a parameter so its padding, buffers and replay are tested on the CPU with
a graph that replays eagerly.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from fw.attention.context import forward_context
from fw.attention.metadata import AttentionMetadata

logger = logging.getLogger("fw.engine")

#: the cache slot of a padding row (the KV write skips it)
PAD_SLOT = -1


def default_sizes(max_num_seqs: int) -> list[int]:
    return capture_sizes([min(2 * max_num_seqs, 512)])


def capture_sizes(cuda_graph_sizes: list[int]) -> list[int]:
    """vLLM's expansion of ``--cuda-graph-sizes``: one value N is 1, 2, 4 and the
    multiples of 8 up to N; several are taken as they are."""
    if len(cuda_graph_sizes) == 1:
        top = cuda_graph_sizes[0]
        return sorted({s for s in (1, 2, 4) if s <= top} | set(range(8, top + 1, 8)))
    return sorted(set(cuda_graph_sizes))


@dataclass
class GraphPlan:
    #: captured batch sizes, ascending (empty: graphs are off)
    sizes: list[int] = field(default_factory=list)
    #: why graphs are off, when they are
    reason: str | None = None
    #: eager runs of each size before its capture (compilation_config's cudagraph_num_of_warmups)
    warmups: int = 1

    @property
    def enabled(self) -> bool:
        return bool(self.sizes)

    def padded(self, rows: int) -> int | None:
        """The captured size a step of ``rows`` rows runs as, or None (eager)."""
        index = bisect.bisect_left(self.sizes, rows)
        return self.sizes[index] if index < len(self.sizes) else None


def plan_graphs(device: torch.device, *, enforce_eager: bool, cuda_graph_sizes: list[int],
                compilation: dict[str, Any] | None, max_num_seqs: int) -> GraphPlan:
    """Which decode batch sizes to capture on ``device`` (none, with the reason, when off).
    ``compilation``: the validated ``--compilation-config`` (``fw.config.vllm_engine``)."""
    compilation = compilation or {}
    warmups = int(compilation.get("cudagraph_num_of_warmups", 1))
    if enforce_eager:
        return GraphPlan(reason="--enforce-eager", warmups=warmups)
    if str(compilation.get("cudagraph_mode", "FULL_DECODE_ONLY")).upper() == "NONE" \
            or compilation.get("use_cudagraph") is False:
        return GraphPlan(reason="--compilation-config turns CUDA graphs off", warmups=warmups)
    if device.type != "cuda":
        return GraphPlan(reason=f"no CUDA graphs on {device.type}", warmups=warmups)
    if compilation.get("cudagraph_capture_sizes"):
        sizes = sorted(set(compilation["cudagraph_capture_sizes"]))
    elif cuda_graph_sizes:
        sizes = capture_sizes(cuda_graph_sizes)
    else:
        sizes = default_sizes(max_num_seqs)
    top = compilation.get("max_cudagraph_capture_size")
    sizes = [s for s in sizes if s <= max_num_seqs and (top is None or s <= top)]
    if not sizes:
        return GraphPlan(reason=f"no capture size is at most --max-num-seqs ({max_num_seqs})", warmups=warmups)
    return GraphPlan(sizes, warmups=warmups)


def plan_for(config, scheduler_config, device: torch.device) -> GraphPlan:
    """``plan_graphs`` from an ``EngineConfig`` (``scheduler_config``: its scheduler
    settings as the engine completed them); ``-O<n>`` gives the level alone."""
    compilation = config.vllm.compilation_config
    if not isinstance(compilation, dict):
        compilation = {} if compilation is None else {"level": compilation}
    return plan_graphs(device, enforce_eager=config.model.enforce_eager,
                       cuda_graph_sizes=scheduler_config.cuda_graph_sizes, compilation=compilation,
                       max_num_seqs=scheduler_config.max_num_seqs)


class DecodeGraphs:
    """The captured decode steps of one model, and the static buffers they read.

    ``forward(input_ids, positions)`` is the model's forward (run under the step's
    attention metadata); ``graph_type`` makes a graph (``torch.cuda.CUDAGraph`` on CUDA;
    tests pass one that replays eagerly) used as ``with torch.cuda.graph(g)`` would:
    ``graph_type.capture(graph, fn)`` records ``fn`` and ``graph.replay()`` reruns it.
    """

    def __init__(self, forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], plan: GraphPlan,
                 device: torch.device, *, max_seq_len: int, block_size: int, capture: Callable | None = None):
        self.forward, self.plan, self.device = forward, plan, device
        self.max_seq_len = max_seq_len
        top = plan.sizes[-1]
        width = -(-max_seq_len // block_size)
        self.input_ids = torch.zeros(top, dtype=torch.int64, device=device)
        self.positions = torch.zeros(top, dtype=torch.int64, device=device)
        self.slot_mapping = torch.full((top,), PAD_SLOT, dtype=torch.int64, device=device)
        self.seq_lens = torch.ones(top, dtype=torch.int32, device=device)
        self.query_start_loc = torch.arange(top + 1, dtype=torch.int32, device=device)
        self.block_table = torch.zeros(top, width, dtype=torch.int32, device=device)
        self._capture = capture or _cuda_capture
        #: size -> (graph, its output rows)
        self.graphs: dict[int, tuple[Any, torch.Tensor]] = {}

    def metadata(self, size: int) -> AttentionMetadata:
        """The attention metadata a captured step of ``size`` rows reads: views of the
        static buffers; the context bound is the model's (kernels size their grid by it)."""
        return AttentionMetadata(
            num_tokens=size, num_seqs=size, max_query_len=1, max_seq_len=self.max_seq_len,
            query_start_loc=self.query_start_loc[:size + 1], seq_lens=self.seq_lens[:size],
            block_table=self.block_table[:size], slot_mapping=self.slot_mapping[:size],
            query_start_loc_host=list(range(size + 1)), seq_lens_host=[self.max_seq_len] * size)

    def capture_all(self) -> None:
        """Capture every planned size, the largest first (smaller graphs share its pool)."""
        for size in reversed(self.plan.sizes):
            meta = self.metadata(size)

            def step(size=size, meta=meta) -> torch.Tensor:
                with forward_context(meta):
                    return self.forward(self.input_ids[:size], self.positions[:size])

            for _ in range(self.plan.warmups):
                step()
            self.graphs[size] = self._capture(step)

    def takes(self, metadata: AttentionMetadata, *, eager_only: bool = False) -> bool:
        return (not eager_only and bool(self.graphs) and metadata.is_pure_decode
                and metadata.num_tokens == metadata.num_seqs and self.plan.padded(metadata.num_tokens) is not None
                and metadata.block_table.shape[1] <= self.block_table.shape[1])

    def run(self, input_ids: torch.Tensor, positions: torch.Tensor, metadata: AttentionMetadata) -> torch.Tensor:
        """The hidden states of a pure decode step of ``n`` rows: its inputs copied into
        the static buffers, rows ``n`` to the captured size set to padding, the graph
        replayed, its first ``n`` output rows."""
        rows = metadata.num_tokens
        size = self.plan.padded(rows)
        self.input_ids[:rows].copy_(input_ids, non_blocking=True)
        self.positions[:rows].copy_(positions, non_blocking=True)
        self.slot_mapping[:rows].copy_(metadata.slot_mapping, non_blocking=True)
        self.seq_lens[:rows].copy_(metadata.seq_lens, non_blocking=True)
        width = metadata.block_table.shape[1]
        self.block_table[:rows, :width].copy_(metadata.block_table, non_blocking=True)
        if size > rows:  # padding rows: write nothing, read one token of block 0
            self.slot_mapping[rows:size].fill_(PAD_SLOT)
            self.seq_lens[rows:size].fill_(1)
            self.block_table[rows:size, 0].fill_(0)
        graph, output = self.graphs[size]
        graph.replay()
        return output[:rows]


def _cuda_capture(step: Callable[[], torch.Tensor]):
    """Record ``step`` into a CUDA graph; (graph, its output tensor)."""
    graph = torch.cuda.CUDAGraph()
    torch.cuda.synchronize()
    with torch.cuda.graph(graph, pool=_POOL.get("pool")):
        output = step()
    _POOL.setdefault("pool", graph.pool())
    return graph, output


#: the memory pool the graphs of one process share (the largest, captured first, makes it)
_POOL: dict[str, Any] = {}
