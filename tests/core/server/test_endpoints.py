"""The non-generation endpoints: models, health, version, tokenizer, docs."""

from __future__ import annotations

import pytest

from fw.version import __version__
from tests.core.server.fake_engine import FakeEngine

HI = [{"role": "user", "content": "hi"}]


def test_models_lists_every_served_name(start_server):
    live = start_server(FakeEngine(served_names=("main", "alias"), max_model_len=99))
    models = live.openai().models.list().data
    assert [m.id for m in models] == ["main", "alias"]
    card = models[0]
    assert card.owned_by == "fw" and card.object == "model"
    extra = card.model_extra
    assert extra["root"] == "main" and extra["parent"] is None and extra["max_model_len"] == 99


def test_health_and_version(server):
    with server.http() as http:
        health = http.get("/health")
        assert health.status_code == 200 and health.content == b""
        assert http.get("/version").json() == {"version": __version__}


def test_tokenize_prompt_and_messages(server):
    tok = server.engine.tokenizer
    with server.http() as http:
        body = http.post("/tokenize", json={"prompt": "hey", "return_token_strs": True}).json()
        assert body["tokens"] == tok.encode("hey") and body["count"] == 4 and body["max_model_len"] == 256
        assert body["token_strs"] == ["<s>", "h", "e", "y"]
        body = http.post("/tokenize", json={"prompt": "hey", "add_special_tokens": False}).json()
        assert body["count"] == 3 and body["token_strs"] is None
        body = http.post("/tokenize", json={"messages": HI}).json()
        assert body["tokens"] == tok.encode("<|user|>hi\n<|assistant|>", add_special_tokens=False)
        body = http.post("/tokenize", json={"messages": HI, "add_generation_prompt": False}).json()
        assert body["count"] == len("<|user|>hi\n")
        assert http.post("/tokenize", json={"prompt": "a", "messages": HI}).status_code == 400
        assert http.post("/tokenize", json={}).status_code == 400
        assert http.post("/tokenize", json={"prompt": "a", "model": "other"}).status_code == 404


def test_detokenize(server):
    ids = server.engine.tokenizer.encode("round trip", add_special_tokens=False)
    with server.http() as http:
        assert http.post("/detokenize", json={"tokens": ids}).json() == {"prompt": "round trip"}
        bad = http.post("/detokenize", json={"tokens": [10**7]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"


def test_tokenizer_info_is_opt_in(start_server):
    with start_server().http() as http:
        assert http.get("/get_tokenizer_info").status_code == 404
    with start_server(enable_tokenizer_info_endpoint=True).http() as http:
        info = http.get("/get_tokenizer_info").json()
    assert info["eos_token"] == "</s>" and "<|assistant|>" in info["chat_template"]
    assert info["vocab_size"] == 259


def test_openapi_and_offline_docs(server):
    with server.http() as http:
        schema = http.get("/openapi.json").json()
        for path in ("/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize", "/health"):
            assert path in schema["paths"]
        page = http.get("/docs").text
        assert "cdn." not in page and "https://" not in page
        assert '/static/swagger-ui-bundle.js' in page and '/static/swagger-ui.css' in page
        script = http.get("/static/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 100_000
        assert http.get("/static/swagger-ui.css").status_code == 200
        redoc = http.get("/redoc").text
        assert "/static/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc


def test_docs_can_be_disabled(start_server):
    with start_server(disable_fastapi_docs=True).http() as http:
        for path in ("/docs", "/redoc", "/openapi.json", "/static/swagger-ui.css"):
            assert http.get(path).status_code == 404, path
        assert http.get("/health").status_code == 200


@pytest.mark.parametrize("path", ["/v1/models", "/metrics", "/health"])
def test_get_endpoints_answer(server, path):
    with server.http() as http:
        assert http.get(path).status_code == 200
