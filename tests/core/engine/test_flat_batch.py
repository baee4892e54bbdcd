"""The runner's step inputs, written into persistent buffers: each step's ids, positions,
slots, query starts, sequence lengths and block tables are what attention's contract
(``fw.attention.metadata``) defines for the scheduled sequences, step after step, while
requests grow blocks, change places, are preempted and come back with other blocks; and
no step builds new buffers."""

from __future__ import annotations

import torch

from fw.engine.flat_batch import BatchBuilder
from fw.engine.request import Request
from fw.engine.sampling_params import SamplingParams

BS = 4


def request(request_id: str, prompt_len: int, computed: int) -> Request:
    r = Request(request_id, [100 + i for i in range(prompt_len)], SamplingParams(max_tokens=50))
    r.num_computed_tokens = computed
    return r


def check(batch, scheduled: dict[str, int], requests: dict[str, Request], blocks: dict[str, list[int]],
          proposals: dict[str, list[int]] | None = None) -> None:
    """The batch holds what the contract says, computed here from the definitions."""
    proposals = proposals or {}
    ids, positions, slots, starts, lens = [], [], [], [0], []
    for rid, n in scheduled.items():
        r = requests[rid]
        start, proposed = r.num_computed_tokens, proposals.get(rid, [])
        ids += r.all_token_ids[start:start + n - len(proposed)] + proposed
        for pos in range(start, start + n):
            positions.append(pos)
            slots.append(blocks[rid][pos // BS] * BS + pos % BS)
        starts.append(starts[-1] + n)
        lens.append(start + n)
    meta = batch.metadata
    assert batch.input_ids.tolist() == ids
    assert batch.positions.tolist() == positions
    assert meta.slot_mapping.tolist() == slots
    if meta.num_seqs == len(scheduled):
        assert meta.query_start_loc.tolist() == starts == meta.query_start_loc_host
        assert meta.seq_lens.tolist() == lens == meta.seq_lens_host
        for i, rid in enumerate(scheduled):
            assert meta.block_table[i, :len(blocks[rid])].tolist() == blocks[rid]
    assert meta.max_seq_len == max(meta.seq_lens_host)


def test_mixed_steps_follow_the_contract_as_requests_grow_move_and_lose_their_blocks():
    builder = BatchBuilder(BS, torch.device("cpu"), max_num_seqs=2)
    a, b = request("a", 10, 6), request("b", 3, 0)
    requests = {"a": a, "b": b}
    blocks = {"a": [7, 2, 9], "b": [4]}
    scheduled = {"a": 4, "b": 3}  # two prompt chunks
    batch = builder.build(scheduled, requests, blocks)
    check(batch, scheduled, requests, blocks)
    assert [r.request_id for r in batch.sample_requests] == ["a", "b"] and batch.sample_rows == [3, 6]
    table = batch.metadata.block_table
    for step in range(6):  # both decode, in alternating order; a gains a block on the way
        for r, n in ((a, 4 if step == 0 else 1), (b, 3 if step == 0 else 1)):
            r.num_computed_tokens += n
            r.append_token(500 + step)
        if a.num_tokens > len(blocks["a"]) * BS:
            blocks["a"].append(11)
        if b.num_tokens > len(blocks["b"]) * BS:
            blocks["b"].append(12 + step)
        scheduled = {"a": 1, "b": 1} if step % 2 else {"b": 1, "a": 1}
        batch = builder.build(scheduled, requests, blocks)
        check(batch, scheduled, requests, blocks)
        assert batch.samples_every_row
        assert batch.metadata.block_table.data_ptr() == table.data_ptr()  # the same buffer
    # b is preempted and comes back with other blocks of the same count: a new list
    builder.forget("b")
    blocks["b"] = list(range(30, 30 + len(blocks["b"])))
    batch = builder.build({"b": 1}, requests, blocks)
    check(batch, {"b": 1}, requests, blocks)
    # without forget too: the manager hands a returning request a new list object
    blocks["a"] = list(range(40, 40 + len(blocks["a"])))
    batch = builder.build({"a": 1}, requests, blocks)
    check(batch, {"a": 1}, requests, blocks)


def test_a_step_larger_than_the_buffers_grows_them():
    builder = BatchBuilder(BS, torch.device("cpu"), max_num_seqs=1)
    requests = {f"r{i}": request(f"r{i}", 300, 0) for i in range(3)}
    blocks = {rid: list(range(i * 80, i * 80 + 75)) for i, rid in enumerate(requests)}
    scheduled = {rid: 300 for rid in requests}
    check(builder.build(scheduled, requests, blocks), scheduled, requests, blocks)


def test_speculating_requests_decode_as_rows():
    builder = BatchBuilder(BS, torch.device("cpu"), max_num_seqs=2)
    a, b = request("a", 5, 4), request("b", 6, 5)
    requests, blocks = {"a": a, "b": b}, {"a": [3, 8], "b": [5, 6]}
    scheduled, proposals = {"a": 3, "b": 1}, {"a": [61, 62]}
    batch = builder.build(scheduled, requests, blocks, proposals)
    check(batch, scheduled, requests, blocks, proposals)
    meta = batch.metadata
    # each row a sequence of its own, its context ending at its own position
    assert meta.num_seqs == 4 and meta.is_pure_decode
    assert meta.seq_lens.tolist() == [5, 6, 7, 6]
    for row, rid in enumerate(["a", "a", "a", "b"]):
        assert meta.block_table[row, :2].tolist() == blocks[rid]
    assert batch.sample_rows == [0, 1, 2, 3]
