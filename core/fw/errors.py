"""The errors fw raises for things a user got wrong or the system cannot do right now.

One taxonomy: the server maps each class to an HTTP status and an OpenAI-style error
body in exactly one place (``fw.server.errors``); the CLI prints the message.
"""

from __future__ import annotations

from pathlib import Path


class FwError(Exception):
    """Base of every error a user may see; the message is written for them."""

    #: the request parameter it concerns, when there is one ("temperature", "messages")
    param: str | None = None

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param


class InvalidParameterError(FwError, ValueError):
    """A request parameter with a value fw will not accept (HTTP 400)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}" if not message.startswith(param) else message, param=param)


class ContextLengthError(InvalidParameterError):
    """Prompt plus requested output does not fit the model's context (HTTP 400)."""


class NotSupportedError(FwError):
    """A request asks for a feature fw has not built (HTTP 400, says so)."""


class ModelNotFoundError(FwError):
    """A request names a model this server does not serve (HTTP 404)."""


class NotFoundError(FwError):
    """A request names something (a stored response, by its id) that does not exist
    (HTTP 404)."""


class OverloadedError(FwError):
    """The waiting queue is full; try again later (HTTP 503 with Retry-After)."""

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(FwError):
    """Options that cannot work together or with this model (start-up only)."""


class ModelLoadError(FwError):
    """A model that cannot be loaded; the message names the file and what is wrong."""

    def __init__(self, path: "Path | str", problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class LoRAAdapterError(FwError, ValueError):
    """An adapter fw cannot serve; the message names the adapter and the reason (HTTP 400)."""

    param = "lora_path"

    def __init__(self, name: str, path: "str | Path", reason: str):
        super().__init__(f"LoRA adapter {name!r} ({path}): {reason}")
        self.adapter_name = name
        self.reason = reason


class EngineDeadError(FwError):
    """The engine loop stopped after an internal error; the server cannot serve (HTTP 500)."""
