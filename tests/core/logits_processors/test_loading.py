"""Names to logits-processor classes: registered names (the hook), import paths in both
spellings, the fw.logits_processors entry-point group, and vLLM's rule for a request's own
processors under --logits-processor-pattern. No engine, no model."""

from __future__ import annotations

from importlib import metadata

import pytest
from fw import hookimpl
from fw.engine.sampling_params import SamplingParams
from fw.errors import InvalidParameterError
from fw.logits_processors import LogitsProcessor, LogitsProcessorContext, loading
from fw.logits_processors.engine import (
    EngineLogitsProcessors,
    check_options,
    check_without_processors,
)
from fw.plugins import register_plugin

BUILTIN = "fw_builtins.logits_processors.target_token:TargetTokenLogitsProcessor"
CONTEXT = LogitsProcessorContext(vocab_size=100, device="cpu")


class Recorder(LogitsProcessor):
    """Every request uses it; reads the ``note`` argument."""

    xargs = ("note",)

    def new_request(self, params, prompt_ids):
        return (params.extra_args or {}).get("note", "")

    def apply(self, logits, rows, states, output_ids):
        pass


def test_fw_register_logits_processors_names_resolve_to_their_classes():
    """A plugin's fw_register_logits_processors registration is a name --logits-processors takes."""

    class Plugin:
        @staticmethod
        @hookimpl
        def fw_register_logits_processors(register):
            register("recorder", Recorder, aliases=("rec",))

    unregister = register_plugin(Plugin, "test-logits-processors")
    try:
        assert loading.resolve("recorder") is Recorder
        assert loading.resolve("rec") is Recorder
        assert [cls for _, cls in loading.server_classes(["recorder"])] == [Recorder]
    finally:
        unregister()


def test_the_builtin_is_registered_and_import_paths_resolve_in_both_spellings():
    cls = loading.resolve("target_token")
    assert cls is loading.resolve("dummy")
    assert loading.resolve(BUILTIN) is cls
    assert loading.resolve(BUILTIN.replace(":", ".")) is cls  # vLLM's fully qualified name


@pytest.mark.parametrize("name, reason", [
    ("no_such_processor", "unknown logits processor 'no_such_processor'; available: "),
    ("no_such_module.Thing", "cannot be loaded"),
    ("fw.errors:InvalidParameterError", "is not a logits processor"),
])
def test_a_name_that_loads_nothing_is_refused_naming_the_flag(name, reason):
    with pytest.raises(ValueError) as info:
        check_options([name], None)
    assert str(info.value).startswith("--logits-processors: ") and reason in str(info.value)
    assert "\n" not in str(info.value)


def test_a_pattern_that_is_no_regex_is_refused_naming_the_flag():
    with pytest.raises(ValueError, match="^--logits-processor-pattern: not a regular expression"):
        check_options(None, "(")


def test_installed_entry_points_are_enabled_without_being_named(monkeypatch):
    point = metadata.EntryPoint("recorder", f"{__name__}:Recorder", loading.ENTRY_POINT_GROUP)
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [point] if kw.get("group") == loading.ENTRY_POINT_GROUP else real(**kw))
    processors = EngineLogitsProcessors.build(CONTEXT, None, None)
    assert processors is not None and [type(p) for p in processors.enabled] == [Recorder]
    states = processors.states(SamplingParams(extra_args={"note": "hi"}), [1, 2])
    assert [(type(p), s) for p, s in states] == [(Recorder, "hi")]


def test_an_engine_without_processors_costs_nothing_and_refuses_their_arguments():
    assert EngineLogitsProcessors.build(CONTEXT, None, None) is None
    check_without_processors(SamplingParams())
    with pytest.raises(InvalidParameterError) as info:
        check_without_processors(SamplingParams(extra_args={"target_token": 3}))
    assert info.value.param == "vllm_xargs" and "no logits processor is enabled" in str(info.value)


def test_request_processors_follow_vllms_pattern_rule():
    params = SamplingParams(logits_processors=[BUILTIN])
    with pytest.raises(InvalidParameterError) as info:
        check_without_processors(params)
    assert info.value.param == "logits_processors" and "--logits-processor-pattern" in str(info.value)
    allowed = EngineLogitsProcessors.build(CONTEXT, None, r"fw_builtins\.logits_processors\.")
    allowed.validate(params)
    other = SamplingParams(logits_processors=["fw_builtins.other:Thing"])
    with pytest.raises(InvalidParameterError, match="is not allowed by this server") as info:
        allowed.validate(other)
    assert info.value.param == "logits_processors"


def test_arguments_are_checked_by_the_processors_that_may_apply():
    processors = EngineLogitsProcessors.build(CONTEXT, ["target_token"], None)
    processors.validate(SamplingParams(extra_args={"target_token": 99}))
    for bad in (100, -1, "7", True, 1.5):
        with pytest.raises(InvalidParameterError, match="target_token must be a token id in 0..99") as info:
            processors.validate(SamplingParams(extra_args={"target_token": bad}))
        assert info.value.param == "vllm_xargs"
    with pytest.raises(InvalidParameterError, match="no logits processor reads 'target'; the keys read are "
                                                    "target_token"):
        processors.validate(SamplingParams(extra_args={"target": 3}))
    assert processors.states(SamplingParams(), [1]) == []  # a request without arguments does not use it


class Second(Recorder):
    """Appends to the note, so the order two processors apply in shows."""

    xargs = ()


def test_several_processors_apply_in_one_order_whatever_the_request_names():
    """A row that uses several processors gets them in the engine's order (enabled ones,
    then named ones as first built), so its result does not depend on what else ran or
    on the order it lists them in; two names of one class are one processor."""
    processors = EngineLogitsProcessors.build(CONTEXT, [f"{__name__}:Recorder"], __name__)
    first = processors.for_request(SamplingParams(logits_processors=[f"{__name__}:Second", f"{__name__}.Recorder"]))
    again = processors.for_request(SamplingParams(logits_processors=[f"{__name__}.Second", f"{__name__}:Recorder"]))
    assert [type(p) for p in first] == [Recorder, Second]
    assert [id(p) for p in first] == [id(p) for p in again]
