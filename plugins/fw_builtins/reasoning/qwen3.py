"""Qwen 3: ``<think>reasoning</think>answer``, where thinking can be switched off.

With ``enable_thinking=False`` (or ``/no_think``) the output has no think block and
is all content, so reasoning is recognised only when the output opens with
``<think>``. Models whose template puts ``<think>`` in the prompt (the 2507 "Thinking"
releases) should use ``deepseek_r1``: here a stream that does not open with the tag is
content from its first character, and a later ``</think>`` cannot turn it back into
reasoning.
"""

from __future__ import annotations

from fw_builtins.reasoning.think_tags import ThinkTagReasoningParser


class Qwen3ReasoningParser(ThinkTagReasoningParser):
    """``--reasoning-parser qwen3``."""

    implicit_start = False
