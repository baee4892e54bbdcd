"""Tensor parallelism: one model split across ranks over ``torch.distributed``.

Megatron-style, applied as a transform over a built and loaded model (as gpt-fast does),
so model plugins write no parallel code: a model that describes its decoder
(``fw.models.description``) gets it.

* ``sharding``: which heads, rows and vocabulary entries each rank holds (arithmetic only);
* ``transform`` + ``layers``: cut the packed weights (``PackedWeight.rows/columns``),
  rebuild attention for the rank's heads, add the all-reduces and the logits gather;
* ``group``: the process groups (gloo on a CPU, NCCL on CUDA) and the messages on them;
* ``proxy`` (rank 0, in the engine's process) and ``worker`` (every other rank): rank 0
  schedules, and each forward pass or logits call it makes runs on every rank;
* ``startup``: rendezvous, loading in waves, the ready check; ``executors``: the ranks as
  processes on this machine (``mp``) or Ray actors (``ray``); ``launch``: the entry points
  for the engine (rank 0) and for ``fw serve --headless`` worker nodes.
"""
