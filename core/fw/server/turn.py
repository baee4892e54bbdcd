"""One assistant turn of a chat run, parsed as it arrives: the half of the Responses and
Messages views that does not depend on the API's shape.

Both APIs answer with one choice. ``Turn.deltas()`` yields what the output parser has
decided so far (reasoning, content, tool-call pieces), the same way for a streamed and
a non-streamed answer, so the two cannot disagree; afterwards the turn knows its finish
reason and its usage, cache hits and reasoning tokens included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

from fw.parsing.messages import DeltaMessage
from fw.server.accumulate import Accumulator, Choice
from fw.server.chat_parsing import feed_parser
from fw.server.chat_pipeline import ChatRun
from fw.server.context import ServerContext


@dataclass
class TurnUsage:
    input_tokens: int
    #: prompt tokens read from the prefix cache (part of input_tokens)
    cached_tokens: int
    #: prompt tokens this request wrote to the prefix cache for later requests to read:
    #: its full KV blocks beyond the cached ones (0 with --no-enable-prefix-caching)
    cache_write_tokens: int
    output_tokens: int
    #: output tokens of the text the reasoning parser split off (part of output_tokens)
    reasoning_tokens: int


class Turn:
    def __init__(self, run: ChatRun, ctx: ServerContext, *, parallel_tool_calls: bool = True):
        self.run = run
        self.tokenizer = ctx.tokenizer
        cache = ctx.config.cache
        self.cache_block = cache.block_size if cache.enable_prefix_caching else 0
        self.parser = run.parsers[0]
        self.parallel = parallel_tool_calls
        self.acc = Accumulator([run.rendered.prompt.token_ids], 1)
        self.reasoning = ""
        self.called = False

    @property
    def choice(self) -> Choice:
        return self.acc.choices[0]

    async def deltas(self) -> AsyncIterator[DeltaMessage]:
        async for index, out in self.run.outputs:
            for _, delta in self.acc.add(index, out):
                final = delta.finish_reason is not None
                if not delta.text and not final:
                    continue
                parsed = (feed_parser(self.parser, delta.text, final) if self.parser is not None
                          else DeltaMessage(content=delta.text or None))
                if not self.parallel:  # one call at most: later ones are dropped
                    parsed.tool_calls = [c for c in parsed.tool_calls if c.index == 0]
                self.called = self.called or bool(parsed.tool_calls)
                self.reasoning += parsed.reasoning or ""
                if parsed:
                    yield parsed

    def usage(self) -> TurnUsage:
        usage = self.acc.usage(details=True)
        return self._usage(usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens,
                           usage.completion_tokens)

    def start_usage(self) -> TurnUsage:
        """The prompt's counts before any output is read (the engine's first output has
        the cache hits)."""
        first = self.run.outputs.firsts[0]
        return self._usage(len(self.run.rendered.prompt.token_ids), first.num_cached_tokens, 0)

    def _usage(self, prompt: int, cached: int, output: int) -> TurnUsage:
        block = self.cache_block
        written = max(0, prompt // block * block - cached) if block else 0
        reasoning = len(self.tokenizer.encode(self.reasoning, add_special_tokens=False)) if self.reasoning else 0
        return TurnUsage(input_tokens=prompt, cached_tokens=cached, cache_write_tokens=written,
                         output_tokens=output, reasoning_tokens=min(reasoning, output))
