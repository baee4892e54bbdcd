"""What crosses the process boundary comes back equal, errors as fw's own classes."""

from __future__ import annotations

from fw.engine.core import messages as m
from fw.engine.outputs import CompletionOutput, Logprob, RequestMetrics, RequestOutput
from fw.engine.sampling_params import RequestOutputKind, SamplingParams
from fw.errors import ContextLengthError, OverloadedError
from fw.lora.request import LoRARequest
from fw.structured.params import StructuredOutputsParams


def test_a_request_round_trips():
    params = SamplingParams(temperature=None, max_tokens=None, logit_bias={3: 1.5}, stop=["x"],
                            structured_outputs=StructuredOutputsParams(json={"type": "object"}, source="guided_json"),
                            output_kind=RequestOutputKind.DELTA)
    message = m.AddRequest("r1", 0, [1, 2, 3], "hi", params, 1.5, priority=2,
                           lora_request=LoRARequest("sql", 1, "/a"), keep_special_ids=[5], reasoning_end_ids=[9])
    decoded = m.to_engine.decode(m.encoder.encode(message))
    assert decoded == message and decoded.params.structured_outputs.param_name() == "guided_json"


def test_outputs_and_errors_round_trip():
    output = RequestOutput("r1", None, [1, 2], [CompletionOutput(0, "hi", [5], -0.1, [{5: Logprob(-0.1, 1, "hi")}],
                                                                 "stop", "x")],
                           True, None, 1, RequestMetrics(1.0, 2.0))
    errors = {"r2": m.error_info(ContextLengthError("max_tokens", "too many")),
              "r3": m.error_info(OverloadedError("full", retry_after=3))}
    decoded = m.from_engine.decode(m.encoder.encode(m.Outputs(0, [output], errors)))
    assert decoded.outputs == [output]
    context, overloaded = m.error_from(decoded.errors["r2"]), m.error_from(decoded.errors["r3"])
    assert isinstance(context, ContextLengthError) and context.param == "max_tokens"
    assert context.message == "max_tokens: too many"
    assert isinstance(overloaded, OverloadedError) and overloaded.retry_after == 3
    assert isinstance(m.error_from(m.error_info(KeyError("boom"))), RuntimeError)  # an internal failure


def test_a_pooling_request_and_its_pooled_output_round_trip():
    import numpy as np

    from fw.engine.outputs import PoolingOutput, PoolingRequestOutput
    from fw.pooling.params import PoolingParams

    message = m.AddPoolingRequest("p1", 0, [1, 2, 3], None, PoolingParams("classify", activation=False), 1.5,
                                  priority=1, token_type_ids=[0, 0, 1])
    assert m.to_engine.decode(m.encoder.encode(message)) == message
    states = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    outputs = [PoolingRequestOutput("p1", PoolingOutput(states), [1, 2], prompt="hi", metrics=RequestMetrics(1.0)),
               PoolingRequestOutput("p2", None, [3])]
    decoded = m.from_engine.decode(m.encoder.encode(m.Outputs(0, pooled=[m.Pooled.of(o) for o in outputs])))
    first, second = (pooled.output() for pooled in decoded.pooled)
    assert first.outputs.data.dtype == np.float32
    np.testing.assert_array_equal(first.outputs.data, states)  # the bytes themselves: no rounding
    assert (first.prompt_token_ids, first.prompt, first.metrics) == ([1, 2], "hi", RequestMetrics(1.0))
    assert second.outputs is None and second.finished
