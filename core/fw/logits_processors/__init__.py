"""Logits processors: a plugin kind that changes a step's logits for the requests that ask.

``interface`` is the contract a processor follows, ``loading`` turns names and import
paths into classes (``--logits-processors``, the ``fw.logits_processors`` entry-point
group, a request's ``logits_processors`` under ``--logits-processor-pattern``), and
``engine`` is what one engine holds: the processors' instances, the admission check of a
request's arguments and each request's per-processor state.
"""

from fw.logits_processors.interface import LogitsProcessor, LogitsProcessorContext

__all__ = ["LogitsProcessor", "LogitsProcessorContext"]
