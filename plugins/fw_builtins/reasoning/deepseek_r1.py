"""DeepSeek R1 (and its distills): ``<think>reasoning</think>answer``.

R1's chat template ends the prompt with ``<think>``, so the output usually starts
inside the reasoning with no opening tag: everything up to ``</think>`` is reasoning,
with or without the tag. An output with no ``</think>`` at all is all reasoning.
"""

from __future__ import annotations

from fw_builtins.reasoning.think_tags import ThinkTagReasoningParser


class DeepSeekR1ReasoningParser(ThinkTagReasoningParser):
    """``--reasoning-parser deepseek_r1``."""

    implicit_start = True
