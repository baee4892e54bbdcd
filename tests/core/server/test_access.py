"""Who may call what, and what wraps the app: API keys, CORS, request ids, header limits,
root path, --middleware and the fw_asgi_middleware hook."""

from __future__ import annotations

import openai
import pytest

from fw import hookimpl
from fw.plugins import register_plugin
from tests.core.server.helpers import serve_config
from tests.core.server.sample_middleware import TagClass

HI = [{"role": "user", "content": "hi"}]


def test_api_key_guards_v1_only(start_server):
    live = start_server(api_key=["k1", "k2"])
    with live.http() as http:
        response = http.get("/v1/models")
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
        assert http.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.get("/v1/models", headers={"Authorization": "Basic k1"}).status_code == 401
        assert http.get("/v1/models", headers={"Authorization": "Bearer k2"}).status_code == 200
        for open_path in ("/health", "/version", "/metrics", "/docs", "/openapi.json"):
            assert http.get(open_path).status_code == 200, open_path
    with pytest.raises(openai.AuthenticationError):
        live.openai(api_key="wrong").chat.completions.create(model="fake-model", messages=HI)
    assert live.openai(api_key="k1").chat.completions.create(model="fake-model", messages=HI, max_tokens=1)


def test_api_key_guards_the_tokenizer_routes(start_server):
    live = start_server(api_key=["k"], enable_tokenizer_info_endpoint=True)
    key = {"Authorization": "Bearer k"}
    with live.http() as http:
        for method, path, body in (("POST", "/tokenize", {"prompt": "a"}), ("POST", "/detokenize", {"tokens": [5]}),
                                   ("GET", "/get_tokenizer_info", None)):
            refused = http.request(method, path, json=body)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key", path
            assert http.request(method, path, json=body, headers=key).status_code == 200, path


def test_tokenize_without_api_key_restores_open_tokenizer_routes(start_server):
    live = start_server(api_key=["k"], tokenize_without_api_key=True)
    with live.http() as http:
        assert http.post("/tokenize", json={"prompt": "a"}).status_code == 200
        assert http.post("/detokenize", json={"tokens": [5]}).status_code == 200
        assert http.get("/v1/models").status_code == 401


def test_api_key_from_the_environment(monkeypatch):
    from click.testing import CliRunner

    import fw_builtins.commands.serve as serve_module

    captured = []
    monkeypatch.setattr(serve_module, "run_server", lambda config: captured.append(config))
    result = CliRunner().invoke(serve_module.serve, [], env={"FW_API_KEY": "from-env"})
    assert result.exit_code == 0, result.output
    assert captured[0].frontend.api_key == ["from-env"]


def test_cors_preflight_and_headers(start_server):
    live = start_server(api_key=["k"], allowed_origins=["https://app.example"], allow_credentials=True)
    with live.http() as http:
        preflight = http.options("/v1/chat/completions", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200  # no key needed for a preflight
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        refused = http.options("/v1/models", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert refused.status_code == 400
        unauthorized = http.get("/v1/models", headers={"Origin": "https://app.example"})
        assert unauthorized.status_code == 401
        assert unauthorized.headers["access-control-allow-origin"] == "https://app.example"


def test_request_id_header(start_server):
    live = start_server(enable_request_id_headers=True)
    with live.http() as http:
        response = http.post("/v1/completions", json={"prompt": "a", "max_tokens": 1},
                             headers={"X-Request-Id": "abc123"})
        assert response.headers["x-request-id"] == "abc123"
        assert response.json()["id"] == "cmpl-abc123"
        assert live.engine.requests[-1][0] == "cmpl-abc123"
        generated = http.get("/health").headers["x-request-id"]
        assert len(generated) == 32
    plain = start_server()
    with plain.http() as http:
        assert "x-request-id" not in http.get("/health").headers


def test_request_id_in_body_wins(server):
    with server.http() as http:
        body = http.post("/v1/completions", json={"prompt": "a", "max_tokens": 1, "request_id": "mine"}).json()
    assert body["id"] == "cmpl-mine"


def test_header_count_limit(start_server):
    live = start_server(h11_max_header_count=20)
    with live.http() as http:
        assert http.get("/health").status_code == 200
        response = http.get("/health", headers={f"X-Extra-{i}": "1" for i in range(30)})
        assert response.status_code == 431 and response.json()["error"]["code"] == "too_many_headers"


def test_root_path(start_server):
    live = start_server(root_path="/api", api_key=["k"])
    assert live.url.endswith("/api")
    base = live.url.removesuffix("/api")
    import httpx

    with httpx.Client(base_url=base) as http:
        # as called by a proxy that strips the prefix; the key is still checked
        assert http.get("/v1/models").status_code == 401
        assert http.get("/v1/models", headers={"Authorization": "Bearer k"}).status_code == 200
        assert http.get("/openapi.json").json()["servers"] == [{"url": "/api"}]
        docs = http.get("/docs").text
        assert "/api/static/swagger-ui-bundle.js" in docs and "/api/openapi.json" in docs
        assert http.get("/static/swagger-ui-bundle.js").status_code == 200


def test_middleware_by_import_path(start_server):
    live = start_server(middleware=["tests.core.server.sample_middleware:TagClass",
                                    "tests.core.server.sample_middleware.tag_function"])
    with live.http() as http:
        response = http.get("/health")
    assert response.headers["x-tag-class"] == "yes" and response.headers["x-tag-function"] == "yes"


@pytest.mark.parametrize("path,message", [
    ("tests.core.server.sample_middleware:nothing_here", "cannot be imported"),
    ("tests.core.server.sample_middleware:not_middleware", "neither"),
    ("nomodule", "not an import path"),
])
def test_bad_middleware_fails_at_start(path, message):
    from fw.server.app import build_app
    from tests.core.server.fake_engine import FakeEngine

    with pytest.raises(ValueError, match=message):
        build_app(FakeEngine(), serve_config(middleware=[path]))


class HookPlugin:
    """A plugin wrapping the whole ASGI app through the fw_asgi_middleware hook."""

    seen_config = None

    @hookimpl
    def fw_asgi_middleware(self, app, config):
        HookPlugin.seen_config = config
        return TagClass(app)


def test_asgi_middleware_hook(start_server):
    unregister = register_plugin(HookPlugin(), "test-asgi-hook")
    try:
        live = start_server(api_key=["k"])
        with live.http() as http:
            response = http.get("/v1/models")
        assert response.status_code == 401 and response.headers["x-tag-class"] == "yes"
        assert HookPlugin.seen_config.frontend.api_key == ["k"]
    finally:
        unregister()
