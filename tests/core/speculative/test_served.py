"""`fw serve --speculative-config` through the engine-core process: the answer is the
model's own, and /metrics counts drafts, drafted and accepted tokens (vLLM's names) in
step with each other; the stats log line reports the acceptance rate."""

from __future__ import annotations

import json
import logging

from fw import LLM, SamplingParams
from fw.engine.protocol import EngineStats
from fw.server.stats_log import _log_speculation

from tests.core.engine.core.served import Served

PROMPT = "one two three four one two three four one two three four one two"


def test_speculative_serving_and_its_metrics(tiny_llama, tmp_path):
    expected = LLM(str(tiny_llama), dtype="float32").generate(
        PROMPT, SamplingParams(max_tokens=32, temperature=0, ignore_eos=True), use_tqdm=False)[0].outputs[0].text
    served = Served(tiny_llama, "--speculative-config", json.dumps({"method": "ngram", "num_speculative_tokens": 3}),
                    log=tmp_path / "serve.log")
    try:
        answer = served.complete(PROMPT, max_tokens=32, temperature=0, ignore_eos=True)
        drafts = served.metric("fw:spec_decode_num_drafts_total", engine="0")
        drafted = served.metric("fw:spec_decode_num_draft_tokens_total", engine="0")
        accepted = served.metric("fw:spec_decode_num_accepted_tokens_total", engine="0")
        by_position = [served.metric("fw:spec_decode_num_accepted_tokens_per_pos_total", engine="0", position=str(p))
                       for p in range(3)]
    finally:
        served.stop()
    assert served.outlived == []
    assert answer["choices"][0]["text"] == expected
    assert drafts > 0 and drafts <= drafted <= 3 * drafts
    assert sum(by_position) == accepted <= drafted
    assert by_position == sorted(by_position, reverse=True)  # a later position is accepted only after the earlier


def test_no_speculative_metrics_without_speculation():
    from types import SimpleNamespace

    from fw.server.metrics import EngineStatsCollector

    def names(stats):
        engine = SimpleNamespace(engine_stats=lambda: {0: stats, 1: None})
        return {family.name for family in EngineStatsCollector(engine, "m").collect()}

    assert not any("spec_decode" in name for name in names(EngineStats()))
    assert "fw:spec_decode_num_drafts" in names(EngineStats(spec_accepted_per_position=[0, 0]))


def test_the_stats_line_reports_the_acceptance_over_the_interval(caplog):
    stats = EngineStats(spec_num_drafts=10, spec_num_draft_tokens=30, spec_num_accepted_tokens=15,
                        spec_accepted_per_position=[8, 5, 2])
    with caplog.at_level(logging.INFO, logger="fw.server.stats"):
        last = _log_speculation(stats, (4, 12, 3, [2, 1, 0]), elapsed=2.0)
    assert last == (10, 30, 15, [8, 5, 2])
    [line] = [r.getMessage() for r in caplog.records]
    # over the interval: 6 drafts, 18 drafted, 12 accepted
    assert "mean acceptance length 3.00" in line and "accepted 12 of 18 drafted tokens (66.7%)" in line
    assert "by position 1.000, 0.667, 0.333" in line and "accepted throughput 6.0 tok/s" in line

