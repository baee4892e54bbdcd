"""What crosses between the API server's engine client and an engine core process.

Small msgspec structs, encoded as msgpack (fw's dataclasses, SamplingParams and
RequestOutput among them, encode as they are). Every message is one ZeroMQ frame whose
first field names its kind, so one decoder reads any message of a direction.

Client -> engine core: ``AddRequest``, ``AddPoolingRequest``, ``Abort``, ``Utility`` (LoRA
operations and the like, answered by ``UtilityResult``), ``Shutdown``.
Engine core -> client: ``Outputs`` (a step's outputs, pooled outputs as ``Pooled`` with
their float32 bytes, errors of refused or failed requests, and the engine's stats),
``UtilityResult``.
Engine core -> launcher (the start-up handshake): ``Phase``, ``Ready``, ``StartupFailed``;
the launcher answers ``Ready`` with ``Connect`` (where to send outputs).
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from fw.engine.outputs import PoolingOutput, PoolingRequestOutput, RequestMetrics, RequestOutput
from fw.engine.protocol import EngineStats, ModelInfo
from fw.engine.sampling_params import SamplingParams
from fw.lora.request import LoRARequest
from fw.pooling.params import PoolingParams


class AddRequest(msgspec.Struct, tag=True, array_like=True):
    request_id: str
    #: the client (API server) whose output socket receives this request's outputs
    client: int
    prompt_token_ids: list[int] | None
    prompt: str | None
    params: SamplingParams
    arrival_time: float
    priority: int = 0
    lora_request: LoRARequest | None = None
    keep_special_ids: list[int] = []
    reasoning_end_ids: list[int] | None = None


class AddPoolingRequest(msgspec.Struct, tag=True, array_like=True):
    request_id: str
    client: int
    prompt_token_ids: list[int] | None
    prompt: str | None
    params: PoolingParams
    arrival_time: float
    priority: int = 0
    token_type_ids: list[int] | None = None


class Abort(msgspec.Struct, tag=True, array_like=True):
    request_ids: list[str]


class Utility(msgspec.Struct, tag=True, array_like=True):
    """A call of an engine method that is not a request (``add_lora``, ``remove_lora``,
    ``list_loras``); its answer comes back as a ``UtilityResult`` with the same ``call_id``."""

    call_id: int
    client: int
    method: str
    args: list[Any] = []


class Shutdown(msgspec.Struct, tag=True, array_like=True):
    pass


class ErrorInfo(msgspec.Struct, array_like=True):
    """An fw error (``fw.errors``) by its class name, message and parameter."""

    kind: str
    message: str
    param: str | None = None
    retry_after: int | None = None


class Pooled(msgspec.Struct, array_like=True):
    """A ``PoolingRequestOutput`` on the wire: its array as float32 bytes and a shape
    (None: it ended unpooled), so neither side converts numbers one by one."""

    request_id: str
    prompt_token_ids: list[int]
    prompt: str | None
    data: bytes | None
    shape: list[int]
    metrics: RequestMetrics | None = None

    @classmethod
    def of(cls, output: PoolingRequestOutput) -> "Pooled":
        array = None if output.outputs is None else output.outputs.data
        return cls(output.request_id, output.prompt_token_ids, output.prompt,
                   None if array is None else array.astype("<f4", copy=False).tobytes(),
                   [] if array is None else list(array.shape), output.metrics)

    def output(self) -> PoolingRequestOutput:
        data = None
        if self.data is not None:
            import numpy as np

            data = PoolingOutput(np.frombuffer(self.data, dtype="<f4").reshape(self.shape))
        return PoolingRequestOutput(self.request_id, data, self.prompt_token_ids, prompt=self.prompt,
                                    metrics=self.metrics)


class Outputs(msgspec.Struct, tag=True, array_like=True):
    engine: int
    outputs: list[RequestOutput] = []
    #: request id -> why the engine refused it or ended it early
    errors: dict[str, ErrorInfo] = {}
    stats: EngineStats | None = None
    pooled: list[Pooled] = []


class UtilityResult(msgspec.Struct, tag=True, array_like=True):
    call_id: int
    engine: int
    result: Any = None
    error: ErrorInfo | None = None


class Phase(msgspec.Struct, tag=True, array_like=True):
    """A start-up phase an engine core has begun (loading, KV sizing, warm-up)."""

    engine: int
    name: str


class Ready(msgspec.Struct, tag=True, array_like=True):
    engine: int
    #: where the engine core receives client messages
    input_address: str
    pid: int
    hostname: str
    model_info: ModelInfo
    stats: EngineStats
    #: the adapters registered at start-up
    loras: list[LoRARequest] = []


class StartupFailed(msgspec.Struct, tag=True, array_like=True):
    engine: int
    error: ErrorInfo


class Connect(msgspec.Struct, tag=True, array_like=True):
    """The launcher's answer to ``Ready``: the output address of every client, in client order."""

    output_addresses: list[str]


ToEngine = Union[AddRequest, AddPoolingRequest, Abort, Utility, Shutdown]
FromEngine = Union[Outputs, UtilityResult]
Handshake = Union[Phase, Ready, StartupFailed]

encoder = msgspec.msgpack.Encoder()
to_engine = msgspec.msgpack.Decoder(ToEngine)
from_engine = msgspec.msgpack.Decoder(FromEngine)
handshake = msgspec.msgpack.Decoder(Handshake)
connect = msgspec.msgpack.Decoder(Connect)


def error_info(exc: BaseException) -> ErrorInfo:
    from fw.errors import FwError

    if isinstance(exc, FwError):
        return ErrorInfo(type(exc).__name__, exc.message, exc.param, getattr(exc, "retry_after", None))
    return ErrorInfo("EngineError", f"{type(exc).__name__}: {exc}")


def error_from(info: ErrorInfo) -> Exception:
    """The error an ``ErrorInfo`` stands for: fw's class of that name with its message and
    parameter, or a RuntimeError (an internal failure) for anything else."""
    from fw import errors

    cls = getattr(errors, info.kind, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.FwError)):
        return RuntimeError(info.message)
    exc = cls.__new__(cls)
    Exception.__init__(exc, info.message)
    exc.message, exc.param = info.message, info.param
    if info.retry_after is not None:
        exc.retry_after = info.retry_after
    return exc
