"""``--log-config-file``: Python logging configured from a dictConfig JSON file, for fw's
loggers and uvicorn's alike (uvicorn is handed the same dictionary)."""

from __future__ import annotations

import json
import logging.config
from pathlib import Path
from typing import Any


def read_log_config(path: str | None) -> dict[str, Any] | None:
    """The file's dictConfig mapping; ValueError naming the option when it is unusable."""
    if path is None:
        return None
    try:
        config = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"--log-config-file: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--log-config-file: {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(config, dict) or "version" not in config:
        raise ValueError(f"--log-config-file: {path} must hold a logging.config.dictConfig mapping "
                         '(with "version": 1)')
    return config


def apply_log_config(config: dict[str, Any]) -> None:
    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ValueError(f"--log-config-file: the logging configuration does not apply: {exc}") from None
