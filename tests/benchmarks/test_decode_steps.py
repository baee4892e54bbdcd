"""benchmarks/decode_steps.py on a tiny model: one table row per batch size, whose timed
parts fit inside the step, the breakdown's phases, and the engine left with nothing running."""

from __future__ import annotations

from tests.benchmark_scripts import load_benchmark


def test_reports_each_batch(tiny_llama, capsys, monkeypatch):
    script = load_benchmark("decode_steps")
    from fw import LLM

    llm = LLM(str(tiny_llama), dtype="float32")
    for batch in (1, 3):
        figures = script.measure(llm, batch, steps=4, breakdown=True)
        assert figures["step"] > 0 and figures["stack"] > 0 and figures["head"] > 0
        # "engine" is the rest of each step: the timed parts must fit inside it
        assert figures["stack"] + figures["head"] < figures["step"] and 0 < figures["engine"] < figures["step"]
        for phase in ("prepare", "sample", "update", "output", "messages"):
            assert 0 < figures[phase] < figures["step"], phase
        assert not llm.engine.has_unfinished_requests()
        assert "forward" not in vars(llm.engine.loaded.model)  # the timers are removed again
        assert "prepare" not in vars(llm.engine.runner)
    assert script.main(["--model", str(tiny_llama), "--batch", "2", "--steps", "3"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| this | 2 |")]
    assert len(rows) == 1
