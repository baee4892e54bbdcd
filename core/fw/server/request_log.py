"""--enable-log-requests / --enable-log-outputs / --max-log-len."""

from __future__ import annotations

import logging
from typing import Any

from fw.engine.sampling_params import SamplingParams

logger = logging.getLogger("fw.server.requests")


class RequestLogger:
    def __init__(self, *, enabled: bool, log_outputs: bool, max_len: int | None):
        self.enabled = enabled
        self.log_outputs = enabled and log_outputs
        self.max_len = max_len

    def _cut(self, value: Any) -> Any:
        if value is None or self.max_len is None:
            return value
        return value[: self.max_len]

    def request(self, request_id: str, prompt: str | None, prompt_ids: list[int], params: SamplingParams) -> None:
        if self.enabled:
            logger.info("request %s: prompt %r, prompt_token_ids %s, params %s",
                        request_id, self._cut(prompt), self._cut(prompt_ids), params)

    def output(self, request_id: str, texts: dict[int, str], finish_reasons: dict[int, str | None]) -> None:
        if self.log_outputs:
            for index in sorted(texts):
                logger.info("output %s[%d]: %r (finish_reason %s)", request_id, index,
                            self._cut(texts[index]), finish_reasons.get(index))
