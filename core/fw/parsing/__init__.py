"""The tool-call and reasoning parser contract, shared by built-in and plugin parsers.

Parsers work on text alone: nothing here imports torch or transformers.
"""

from fw.parsing.messages import (
    DeltaMessage,
    ParsedMessage,
    ParserContractError,
    ReasoningDelta,
    ToolCall,
    ToolCallDelta,
    merge_deltas,
)
from fw.parsing.pipeline import OutputParser
from fw.parsing.reasoning_parser import ReasoningParser
from fw.parsing.tool_parser import ToolParser

__all__ = [
    "DeltaMessage",
    "OutputParser",
    "ParsedMessage",
    "ParserContractError",
    "ReasoningDelta",
    "ReasoningParser",
    "ToolCall",
    "ToolCallDelta",
    "ToolParser",
    "merge_deltas",
]
