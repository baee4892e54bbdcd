"""Fixtures for the client commands: a fake OpenAI-compatible server and a port where
nothing listens."""

from __future__ import annotations

import socket

import pytest

from tests.plugins.commands.fake_server import RunningServer


@pytest.fixture(scope="session")
def _running_server():
    server = RunningServer()
    yield server
    server.stop()


@pytest.fixture
def fake_server(_running_server):
    """The fake server's state (``url``, ``requests``), with no requests recorded yet."""
    _running_server.state.requests.clear()
    return _running_server.state


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
