"""The runner's persistent step inputs: token ids, positions, slot mapping, query starts,
sequence lengths and block tables, written in place each step.

Building these as fresh tensors every step (a ``torch.tensor`` from a list, numpy arrays
per request, a block table padded row by row) cost a decode step at concurrency 1 more
than the scheduler, the sampler and detokenization together. Here each lives in one
host array allocated once (grown, by doubling, when a step needs more rows) and a
step's inputs are views of their first rows. Block tables are incremental: a table row
remembers whose blocks it holds and how many, so a decoding request only writes the
block it gained, if any. On a device other than the CPU each buffer has a device twin of
the same shape, filled by one non-blocking copy per buffer from pinned host memory; the
twins keep their addresses while no step outgrows them, which CUDA graphs rely on
(``fw.engine.cuda_graphs``).
"""

from __future__ import annotations

import numpy as np
import torch

#: name -> (dtype, per-token (True) or per-sequence (False)); sequences get one more row
#: for query_start_loc
_BUFFERS = {"input_ids": (torch.int64, True), "positions": (torch.int64, True),
            "slot_mapping": (torch.int64, True), "query_start_loc": (torch.int32, False),
            "seq_lens": (torch.int32, False)}


class InputBuffers:
    def __init__(self, device: torch.device, *, tokens: int = 256, seqs: int = 64, blocks_per_seq: int = 16):
        self.device = device
        self._pin = device.type == "cuda"
        self.host: dict[str, torch.Tensor] = {}
        self.numpy: dict[str, np.ndarray] = {}
        self.on_device: dict[str, torch.Tensor] = {}
        self._tokens, self._seqs, self._width = 0, 0, 0
        #: the last step's host-to-device copies (CUDA): the host buffers are not written
        #: again before they are done, even by a step that never waits for the device
        self._copied = None
        #: per block-table row: (its owner, the block list written, how many of it); an
        #: owner is (request id, j), j > 0 for the further rows of a request decoded as
        #: rows (``fw.engine.flat_batch.rows_as_sequences``)
        self._row_owner: list[tuple[tuple[str, int] | None, list[int] | None, int]] = []
        self._ensure(tokens, seqs, blocks_per_seq)

    # -- capacity ----------------------------------------------------------------------

    def _ensure(self, tokens: int, seqs: int, width: int) -> None:
        """Room for a step of ``tokens`` rows, ``seqs`` sequences and ``width`` blocks per
        table row; growing reallocates (a new address: captured graphs must not outgrow)."""
        if tokens > self._tokens or seqs + 1 > self._seqs:
            self._tokens = max(self._tokens, _pow2(tokens))
            self._seqs = max(self._seqs, _pow2(seqs + 1))
            for name, (dtype, per_token) in _BUFFERS.items():
                self._allocate(name, (self._tokens if per_token else self._seqs,), dtype)
        if width > self._width or seqs > len(self._row_owner):
            self._width = max(self._width, _pow2(width))
            rows = max(len(self._row_owner), _pow2(seqs))
            self._allocate("block_table", (rows, self._width), torch.int32)
            self._row_owner = [(None, None, 0)] * rows  # the new table holds nothing yet

    def _allocate(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        host = torch.zeros(shape, dtype=dtype, pin_memory=self._pin)
        self.host[name], self.numpy[name] = host, host.numpy()
        self.on_device[name] = host if self.device.type == "cpu" else torch.zeros(shape, dtype=dtype,
                                                                                   device=self.device)

    def reserve(self, tokens: int, seqs: int, width: int) -> None:
        """Make room before a step is written (the step's totals are known up front)."""
        if self._copied is not None:
            self._copied.synchronize()
            self._copied = None
        self._ensure(tokens, seqs, width)

    # -- block tables ------------------------------------------------------------------

    def write_table_row(self, row: int, owner: tuple[str, int], blocks: list[int]) -> None:
        """Row ``row`` of the block table holds ``blocks``; only what changed is written.
        ``blocks`` is the KV cache manager's own list of the request's block ids: it only
        grows while the request holds its blocks, and a request that lost them (finished,
        preempted) gets a new list, so the same owner with the same list object means the
        row's first ``written`` entries are still right."""
        held, held_blocks, written = self._row_owner[row]
        if held != owner or held_blocks is not blocks or written > len(blocks):
            written = 0
        if written < len(blocks):
            self.numpy["block_table"][row, written:len(blocks)] = blocks[written:]
            self._row_owner[row] = (owner, blocks, len(blocks))

    def forget(self, request_id: str) -> None:
        """A request finished or was preempted: the rows it held are stale."""
        for row, (owner, _, _) in enumerate(self._row_owner):
            if owner is not None and owner[0] == request_id:
                self._row_owner[row] = (None, None, 0)

    # -- a step's views ----------------------------------------------------------------

    def views(self, num_tokens: int, num_seqs: int) -> dict[str, torch.Tensor]:
        """The step's inputs on the device: the first rows of each buffer (copied there
        first when the device is not the CPU)."""
        sizes = {"input_ids": num_tokens, "positions": num_tokens, "slot_mapping": num_tokens,
                 "query_start_loc": num_seqs + 1, "seq_lens": num_seqs, "block_table": num_seqs}
        if self.device.type == "cpu":
            return {name: self.host[name][:size] for name, size in sizes.items()}
        out = {}
        for name, size in sizes.items():
            target = self.on_device[name][:size]
            target.copy_(self.host[name][:size], non_blocking=True)
            out[name] = target
        if self.device.type == "cuda":
            self._copied = torch.cuda.Event()
            self._copied.record()
        return out


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()
