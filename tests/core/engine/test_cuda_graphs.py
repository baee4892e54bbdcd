"""CUDA-graph bookkeeping, on the CPU: which sizes are captured (vLLM's meaning of
--cuda-graph-sizes and compilation_config's keys), when graphs are off, padding a step to
the next captured size, and the static buffers a replay reads. The capture is replaced
by a graph that reruns the recorded step eagerly over the same static tensors, which is
what a CUDA graph replay does; the real capture runs in benchmarks/gpu_serving.py."""

from __future__ import annotations

import pytest
import torch

from fw.attention.context import get_forward_context
from fw.engine.cuda_graphs import PAD_SLOT, DecodeGraphs, GraphPlan, capture_sizes, plan_graphs
from fw.engine.flat_batch import BatchBuilder
from fw.engine.request import Request
from fw.engine.sampling_params import SamplingParams

CUDA = torch.device("cuda")


def plan(**kw):
    options = dict(enforce_eager=False, cuda_graph_sizes=[], compilation=None, max_num_seqs=256)
    return plan_graphs(CUDA, **{**options, **kw})


def test_sizes_follow_vllm():
    assert capture_sizes([20]) == [1, 2, 4, 8, 16]
    assert capture_sizes([2]) == [1, 2]
    assert capture_sizes([3, 1, 64]) == [1, 3, 64]
    assert plan().sizes == [1, 2, 4] + list(range(8, 257, 8))  # min(2 * max_num_seqs, 512), cut at max_num_seqs
    assert plan(max_num_seqs=4).sizes == [1, 2, 4]
    assert plan(cuda_graph_sizes=[1, 5, 300]).sizes == [1, 5]
    assert plan(compilation={"cudagraph_capture_sizes": [2, 6]}, cuda_graph_sizes=[8]).sizes == [2, 6]
    assert plan(compilation={"max_cudagraph_capture_size": 16}).sizes == [1, 2, 4, 8, 16]
    assert plan(compilation={"cudagraph_num_of_warmups": 3}).warmups == 3


@pytest.mark.parametrize("kw, reason", [
    (dict(enforce_eager=True), "--enforce-eager"),
    (dict(compilation={"cudagraph_mode": "NONE"}), "turns CUDA graphs off"),
    (dict(compilation={"use_cudagraph": False}), "turns CUDA graphs off"),
])
def test_graphs_are_off_when_asked(kw, reason):
    off = plan(**kw)
    assert not off.enabled and reason in off.reason and off.padded(1) is None


def test_a_cpu_never_captures():
    off = plan_graphs(torch.device("cpu"), enforce_eager=False, cuda_graph_sizes=[8], compilation=None,
                      max_num_seqs=8)
    assert not off.enabled and "cpu" in off.reason


def test_padding_goes_to_the_next_captured_size():
    sizes = GraphPlan([1, 2, 4, 8])
    assert [sizes.padded(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, None]


class EagerGraph:
    """Replays the recorded step over the same tensors, into the same output tensor."""

    def __init__(self, step):
        self.step, self.output = step, step().clone()

    def replay(self):
        self.output.copy_(self.step())


def eager_capture(step):
    graph = EagerGraph(step)
    return graph, graph.output


def inputs_seen(input_ids, positions):
    """A stand-in model: per row, what attention would read of the step."""
    meta = get_forward_context().metadata
    n = input_ids.shape[0]
    return torch.stack([input_ids.float(), positions.float(), meta.slot_mapping.float(),
                        meta.seq_lens.float(), meta.block_table[:n, 0].float(), meta.block_table[:n, 1].float()], 1)


def test_a_replay_reads_the_steps_inputs_and_pads_the_rest():
    graphs = DecodeGraphs(inputs_seen, GraphPlan([1, 4]), torch.device("cpu"), max_seq_len=64, block_size=4,
                          capture=eager_capture)
    graphs.capture_all()
    assert sorted(graphs.graphs) == [1, 4]
    builder = BatchBuilder(4, torch.device("cpu"), max_num_seqs=4)
    requests = {f"r{i}": Request(f"r{i}", list(range(10 + i, 16 + 2 * i)), SamplingParams()) for i in range(3)}
    for r in requests.values():
        r.num_computed_tokens = r.num_tokens - 1
    blocks = {rid: [7 + i, 20 + i, 30 + i] for i, rid in enumerate(requests)}
    batch = builder.build({rid: 1 for rid in requests}, requests, blocks)
    assert graphs.takes(batch.metadata)
    out = graphs.run(batch.input_ids, batch.positions, batch.metadata)
    from fw.attention.context import forward_context
    with forward_context(batch.metadata):
        eager = inputs_seen(batch.input_ids, batch.positions)
    assert torch.equal(out, eager)  # the real rows: exactly the step's inputs
    padded = graphs.graphs[4][1][3]  # the fourth row of the size-4 graph: padding
    assert padded[2] == PAD_SLOT and padded[3] == 1
    # a prompt chunk, or more rows than the largest graph, runs eagerly
    chunk = builder.build({"r0": 2}, {"r0": Request("r0", [1, 2, 3], SamplingParams())}, {"r0": [1]})
    assert not graphs.takes(chunk.metadata)
