"""Structured-output backend names at the server: a request's guided_decoding_backend is
checked (400 naming it), and an unknown --guided-decoding-backend stops `fw serve` before
the model loads."""

from __future__ import annotations

import pytest

from tests.conftest import run_fw

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("extra", [{"guided_choice": ["a", "b"]}, {}])
def test_an_unknown_request_backend_is_a_400(server, extra):
    with server.http() as http:
        response = http.post("/v1/chat/completions", json={"model": "fake-model", "messages": HI,
                                                           "guided_decoding_backend": "outlines", **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "guided_decoding_backend" and "available: guidance, xgrammar" in error["message"]


def test_a_known_request_backend_reaches_the_engine(server):
    server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=2,
                                            extra_body={"guided_choice": ["a"], "guided_decoding_backend": "llguidance"})
    params = server.engine.requests[-1][2]
    assert params.structured_outputs.backend == "guidance"


def test_an_unknown_server_backend_fails_at_start_up(tmp_path):
    result = run_fw("serve", str(tmp_path / "no-model"), "--guided-decoding-backend", "outlines", timeout=60)
    assert result.returncode != 0
    assert "unknown structured-output backend 'outlines'; available: guidance, xgrammar" in result.stderr
    assert "Traceback" not in result.stderr
