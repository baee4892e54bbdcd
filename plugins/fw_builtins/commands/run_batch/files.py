"""Reading the batch and writing its results: local paths, or http(s) URLs (GET to read,
PUT to write), as OpenAI-style batch jobs keep their files in object stores.

Problems that end the command are ``BatchFileError`` with a one-line message; the checks
that can be made before the (slow) engine load are in ``check_output``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import httpx

#: per-operation limit for the GET and the PUT (connecting, each read, each write)
HTTP_TIMEOUT = httpx.Timeout(60.0)


class BatchFileError(ValueError):
    """The input cannot be read or the output cannot be written."""


def is_url(location: str) -> bool:
    return location.lower().startswith(("http://", "https://"))


def read_input(location: str) -> bytes:
    if is_url(location):
        try:
            response = httpx.get(location, follow_redirects=True, timeout=HTTP_TIMEOUT)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise BatchFileError(f"cannot read the input file {location}: {_describe(exc)}") from None
        return response.content
    try:
        return Path(location).read_bytes()
    except OSError as exc:
        raise BatchFileError(f"cannot read the input file {location}: {exc.strerror}") from None


def request_lines(data: bytes) -> list[tuple[int, bytes]]:
    """The request lines of a batch file with their line numbers (from 1): every line
    that is not blank (a UTF-8 byte order mark at the start is dropped). A line that is
    not valid UTF-8 is kept; it fails on its own as invalid JSON."""
    lines = data.removeprefix(b"\xef\xbb\xbf").splitlines()
    return [(number, line) for number, line in enumerate(lines, 1) if line.strip()]


def check_output(location: str, tmp_dir: str | None) -> None:
    """Fail now, not after the batch has run, when the output has nowhere to go."""
    if tmp_dir is not None and not Path(tmp_dir).is_dir():
        raise BatchFileError(f"--output-tmp-dir: no such folder {tmp_dir!r}")
    if not is_url(location):
        parent = Path(location).absolute().parent
        if not parent.is_dir():
            raise BatchFileError(f"cannot write the output file {location}: no such folder {str(parent)!r}")


def write_output(location: str, data: bytes, tmp_dir: str | None) -> None:
    if not is_url(location):
        _write_local(Path(location), data)
    elif tmp_dir is None:
        _upload(location, data)
    else:
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="fw-batch-", suffix=".jsonl",
                                         delete=False) as file:
            file.write(data)
        try:
            with open(file.name, "rb") as content:
                _upload(location, content)
        except BatchFileError as exc:
            raise BatchFileError(f"{exc} (the output is kept in {file.name})") from None
        os.unlink(file.name)


def _write_local(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename it, so a reader never sees half a file."""
    try:
        with tempfile.NamedTemporaryFile(dir=path.absolute().parent, prefix=f".{path.name}.",
                                         delete=False) as file:
            file.write(data)
        os.replace(file.name, path)
    except OSError as exc:
        raise BatchFileError(f"cannot write the output file {path}: {exc.strerror}") from None


def _upload(url: str, content) -> None:
    try:
        response = httpx.put(url, content=content, timeout=HTTP_TIMEOUT,
                             headers={"Content-Type": "application/jsonl"})
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise BatchFileError(f"cannot upload the output file to {url}: {_describe(exc)}") from None


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} {exc.response.reason_phrase}".rstrip()
    return str(exc) or type(exc).__name__
