"""--max-num-partial-prefills, --max-long-partial-prefills, --long-prefill-token-threshold
and --scheduler-cls on fw's scheduler (a fake runner: see test_scheduler.py)."""

from __future__ import annotations

import pytest

from fw.config import ConfigError, EngineConfig, SchedulerConfig
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.scheduler import Scheduler, scheduler_class
from tests.core.engine.test_scheduler import make_request, run_step


def scheduler(**options) -> Scheduler:
    config = SchedulerConfig(max_num_batched_tokens=64, max_num_seqs=8, **options)
    return Scheduler(config, KVCacheManager(128, 4), max_model_len=256, max_loras=0)


def test_prompts_prefill_together_without_a_limit():
    s = scheduler()
    for i in range(3):
        s.add_request(make_request(f"r{i}", 10))
    assert run_step(s).num_scheduled_tokens == {"r0": 10, "r1": 10, "r2": 10}


def test_max_num_partial_prefills_limits_prompts_per_step():
    s = scheduler(max_num_partial_prefills=1)
    for i in range(3):
        s.add_request(make_request(f"r{i}", 10))
    assert run_step(s).num_scheduled_tokens == {"r0": 10}
    assert run_step(s).num_scheduled_tokens == {"r0": 1, "r1": 10}  # decodes are not limited


def test_long_prompts_advance_by_the_threshold_and_share_steps():
    s = scheduler(long_prefill_token_threshold=4)
    s.add_request(make_request("short", 3))
    s.add_request(make_request("long", 10))
    steps = [run_step(s).num_scheduled_tokens for _ in range(3)]
    assert steps == [{"short": 3, "long": 4}, {"short": 1, "long": 4}, {"short": 1, "long": 2}]


def test_short_prompts_go_ahead_of_long_ones_beyond_the_long_limit():
    s = scheduler(long_prefill_token_threshold=5, max_num_partial_prefills=2, max_long_partial_prefills=1)
    for name, size in (("long1", 12), ("long2", 12), ("short", 3)):
        s.add_request(make_request(name, size))
    assert run_step(s).num_scheduled_tokens == {"long1": 5, "short": 3}
    assert [r.request_id for r in s.waiting] == ["long2"]


def test_every_long_prompt_counts_toward_the_long_limit():
    s = scheduler(long_prefill_token_threshold=5, max_num_partial_prefills=3, max_long_partial_prefills=2)
    for name, size in (("long1", 12), ("long2", 12), ("long3", 12), ("short", 3)):
        s.add_request(make_request(name, size))
    assert run_step(s).num_scheduled_tokens == {"long1": 5, "long2": 5, "short": 3}


@pytest.mark.parametrize("options, message", [
    ({"max_num_partial_prefills": 1, "max_long_partial_prefills": 2, "long_prefill_token_threshold": 4},
     "must not exceed"),
    ({"max_long_partial_prefills": 1}, "give that threshold too"),
    ({"long_prefill_token_threshold": 8, "enable_chunked_prefill": False}, "needs chunked prefill"),
])
def test_inconsistent_limits_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        EngineConfig.from_options(**options)


class CountingScheduler(Scheduler):
    steps = 0

    def schedule(self):
        CountingScheduler.steps += 1
        return super().schedule()


def test_scheduler_cls_is_used(tiny_llama):
    from fw import LLM, SamplingParams

    llm = LLM(str(tiny_llama), dtype="float32", kv_cache_memory_bytes=2**22,
              scheduler_cls="tests.core.engine.test_scheduler_limits.CountingScheduler")
    assert type(llm.engine.scheduler) is CountingScheduler
    llm.generate(["hi"], SamplingParams(max_tokens=3, ignore_eos=True), use_tqdm=False)
    assert CountingScheduler.steps >= 3


def test_scheduler_cls_in_a_package_not_yet_imported(tmp_path, monkeypatch):
    """The class is the last dotted part, whatever the depth of its package."""
    package = tmp_path / "fw_test_schedulers" / "policies"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "fair.py").write_text("from fw.engine.scheduler import Scheduler\n\n\nclass Fair(Scheduler):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = scheduler_class("fw_test_schedulers.policies.fair.Fair")
    assert cls.__name__ == "Fair" and issubclass(cls, Scheduler)


@pytest.mark.parametrize("path, message", [
    ("tests.core.engine.nothing.Here", "cannot import"),
    ("fw.engine.request:Request", "not a subclass of fw.engine.scheduler.Scheduler"),
])
def test_bad_scheduler_cls(path, message):
    with pytest.raises(ValueError, match=f"--scheduler-cls: .*{message}"):
        scheduler_class(path)
