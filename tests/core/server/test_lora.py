"""LoRA adapters through the server, over the fake engine: /v1/models, routing by the
``model`` field (adapters win a name clash), tokenizer routes, and the run-time
load/unload routes (behind FW_ALLOW_RUNTIME_LORA_UPDATING, needing --enable-lora)."""

from __future__ import annotations

import pytest

from fw.lora.request import LoRARequest
from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import metric, sse_events

SQL = LoRARequest("sql", 1, "/adapters/sql")
CHAT = LoRARequest("chat", 2, "/adapters/chat", base_model_name="other-base")
HI = [{"role": "user", "content": "hi"}]


def engine(**kwargs) -> FakeEngine:
    return FakeEngine(served_names=("base", "alias"), loras=(SQL, CHAT), **kwargs)


def complete(http, model: str | None, **body):
    return http.post("/v1/completions", json={"prompt": "hello", "max_tokens": 8, **body,
                                              **({"model": model} if model else {})})


def test_models_lists_the_base_names_then_the_adapters(start_server):
    live = start_server(engine(max_model_len=99))
    cards = {m.id: m.model_extra for m in live.openai().models.list().data}
    assert list(cards) == ["base", "alias", "sql", "chat"]
    assert cards["base"]["parent"] is None and cards["base"]["root"] == "base"
    assert cards["sql"]["parent"] == "base" and cards["sql"]["root"] == "sql"
    assert cards["chat"]["parent"] == "other-base" and cards["chat"]["max_model_len"] == 99
    assert "/" not in live.http().get("/v1/models").text  # no folder of the server's


def test_expose_model_paths_lists_the_folders(start_server):
    live = start_server(engine(), expose_model_paths=True)
    cards = {m.id: m.model_extra for m in live.openai().models.list().data}
    assert cards["base"]["root"] == cards["alias"]["root"] == "/models/fake"
    assert cards["sql"]["root"] == "/adapters/sql" and cards["chat"]["root"] == "/adapters/chat"


def test_a_request_naming_an_adapter_runs_with_it(start_server):
    live = start_server(engine())
    with live.http() as http:
        base = complete(http, "alias").json()
        adapted = complete(http, "sql").json()
        default = complete(http, None).json()
    ids = [rid for rid, _, _ in live.engine.requests]
    assert [live.engine.lora_requests[rid] for rid in ids] == [None, SQL, None]
    assert (base["model"], adapted["model"], default["model"]) == ("base", "sql", "base")
    assert adapted["choices"][0]["text"] != base["choices"][0]["text"] == default["choices"][0]["text"]
    # metrics keep the base model's name as their label, as vLLM's do
    assert metric(live, "fw:request_success_total", model_name="base", finished_reason="length") == 3


def test_chat_with_an_adapter_streams_its_name(start_server):
    live = start_server(engine())
    with live.http() as http:
        response = http.post("/v1/chat/completions", json={"model": "chat", "messages": HI, "max_tokens": 4,
                                                            "stream": True})
    chunks = [e for e in sse_events(response) if e != "[DONE]"]
    assert chunks and {c["model"] for c in chunks} == {"chat"}
    assert live.engine.lora_requests[live.engine.requests[0][0]] == CHAT


def test_an_adapter_named_like_a_served_name_wins(start_server):
    shadow = LoRARequest("alias", 3, "/adapters/alias")
    live = start_server(FakeEngine(served_names=("base", "alias"), loras=(shadow,)))
    with live.http() as http:
        assert complete(http, "alias").json()["model"] == "alias"
        complete(http, "base")
        models = http.get("/v1/models").json()["data"]
    assert [live.engine.lora_requests[rid] for rid, _, _ in live.engine.requests] == [shadow, None]
    assert [(m["id"], m["parent"]) for m in models] == [("base", None), ("alias", "base")]


def test_an_unknown_model_names_the_adapters_too(start_server):
    live = start_server(engine())
    with live.http() as http:
        response = complete(http, "nope")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert error["message"] == ("the model 'nope' does not exist; this server serves 'base', 'alias' and "
                                "the LoRA adapters 'sql', 'chat'")


def test_tokenizer_routes_accept_adapter_names(start_server):
    live = start_server(engine())
    with live.http() as http:
        tokens = http.post("/tokenize", json={"model": "sql", "prompt": "hey"}).json()["tokens"]
        assert tokens == live.engine.tokenizer.encode("hey")
        assert http.post("/detokenize", json={"model": "chat", "tokens": tokens}).json()["prompt"] == "<s>hey"
        assert http.post("/tokenize", json={"model": "nope", "prompt": "hey"}).status_code == 404


# -- run-time loading ---------------------------------------------------------------------


@pytest.fixture
def runtime_updates(monkeypatch):
    monkeypatch.setenv("FW_ALLOW_RUNTIME_LORA_UPDATING", "1")


def load(http, name: str, path):
    return http.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)})


def adapter_folder(path):
    """A folder that looks like an adapter to the server's path check (the fake engine
    reads nothing in it)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text("{}")
    return path


def unload(http, name: str):
    return http.post("/v1/unload_lora_adapter", json={"lora_name": name})


def test_load_and_unload_routes_are_absent_unless_allowed(start_server, monkeypatch, tmp_path):
    monkeypatch.delenv("FW_ALLOW_RUNTIME_LORA_UPDATING", raising=False)
    live = start_server(engine(), enable_lora=True)
    with live.http() as http:
        assert load(http, "new", tmp_path).status_code == 404
        assert unload(http, "sql").status_code == 404
        assert "/v1/load_lora_adapter" not in http.get("/openapi.json").json()["paths"]


def test_loading_needs_enable_lora(start_server, runtime_updates, tmp_path):
    live = start_server(engine())
    with live.http() as http:
        for response in (load(http, "new", tmp_path), unload(http, "sql")):
            assert response.status_code == 400
            error = response.json()["error"]
            assert error["code"] == "not_supported" and error["param"] == "lora_name"
            assert "start it with --enable-lora" in error["message"]


def test_load_use_and_unload_at_run_time(start_server, runtime_updates, tmp_path):
    folder = adapter_folder(tmp_path / "new")
    live = start_server(engine(), enable_lora=True, lora_path_roots=[str(tmp_path)])
    with live.http() as http:
        response = load(http, "new", folder)
        assert response.status_code == 200 and response.text == f"LoRA adapter 'new' loaded from {folder}"
        assert live.engine.loras["new"] == LoRARequest("new", 3, str(folder))
        card = http.get("/v1/models").json()["data"][-1]
        assert (card["id"], card["root"], card["parent"]) == ("new", "new", "base")
        assert complete(http, "new").json()["model"] == "new"
        assert live.engine.lora_requests[live.engine.requests[-1][0]].lora_name == "new"
        response = unload(http, "new")
        assert response.status_code == 200 and response.text == "LoRA adapter 'new' unloaded"
        assert "new" not in [m["id"] for m in http.get("/v1/models").json()["data"]]
        assert complete(http, "new").status_code == 404


def test_load_and_unload_errors(start_server, runtime_updates, tmp_path):
    adapter_folder(tmp_path / "a")
    live = start_server(engine(), enable_lora=True, lora_path_roots=[str(tmp_path)])
    with live.http() as http:
        taken = load(http, "sql", tmp_path / "a")
        assert taken.status_code == 400 and taken.json()["error"]["param"] == "lora_name"
        assert taken.json()["error"]["message"] == (
            "lora_name: a LoRA adapter named 'sql' is already loaded; unload it first")
        missing = load(http, "gone", tmp_path / "nowhere")
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "lora_path"
        assert missing.json()["error"]["message"] == outside(tmp_path / "nowhere")
        unknown = unload(http, "gone")
        assert unknown.status_code == 404
        assert unknown.json()["error"] == {
            "message": "no LoRA adapter named 'gone' is loaded (loaded: 'sql', 'chat')",
            "type": "invalid_request_error", "param": "lora_name", "code": "model_not_found"}
        incomplete = http.post("/v1/load_lora_adapter", json={"lora_name": "x"})
        assert incomplete.status_code == 400 and incomplete.json()["error"]["param"] == "lora_path"
        assert load(http, "", tmp_path).status_code == 400
    assert list(live.engine.loras) == ["sql", "chat"]


def outside(path) -> str:
    return (f"lora_path: no LoRA adapter this server may load at {str(path)!r}: run-time loads read only "
            "adapter folders inside --lora-path-roots (or the folders of --lora-modules)")


def test_paths_outside_the_roots_all_get_one_answer(start_server, runtime_updates, tmp_path):
    """Whatever the path names (a folder, a file, nothing, a folder fw may not read, a
    home directory), the answer is the same: the loader maps nothing."""
    root = tmp_path / "adapters"
    adapter_folder(root / "ok")
    (root / "plain").mkdir()
    (root / "file").write_text("x")
    (root / "leak").symlink_to(adapter_folder(tmp_path / "secret"))  # inside, pointing out
    (root / "escape").symlink_to(tmp_path)
    live = start_server(engine(), enable_lora=True, lora_path_roots=[str(root)])
    probes = ["/etc", "/etc/passwd", "/nonexistent", "/proc/1/root", "~", "~nobody", "~nosuchuser", "ok",
              "adapters/ok", str(root / "plain"), str(root / "file"), str(root / "missing"),
              str(root / "leak"), str(tmp_path / "secret"), str(root / "escape" / "adapters" / "ok" / ".." / ".."),
              str(root) + "/../adapters-x", "/etc/\x00"]
    with live.http() as http:
        for path in probes:
            response = load(http, "new", path)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"] == {"message": outside(path), "type": "invalid_request_error",
                                                "param": "lora_path", "code": "invalid_value"}, path
        assert load(http, "new", root / "escape" / "adapters" / "ok").status_code == 200  # inside after all
    assert list(live.engine.loras) == ["sql", "chat", "new"]


def test_the_folders_of_lora_modules_are_the_default_roots(start_server, runtime_updates, tmp_path):
    adapter_folder(tmp_path / "sql" / "v2")
    adapter_folder(tmp_path / "other")
    live = start_server(engine(), enable_lora=True, lora_modules=[f"sql={tmp_path / 'sql'}"])
    with live.http() as http:
        assert load(http, "v2", tmp_path / "sql" / "v2").status_code == 200
        assert load(http, "other", tmp_path / "other").json()["error"]["message"] == outside(tmp_path / "other")
    bare = start_server(engine(), enable_lora=True)
    with bare.http() as http:
        assert load(http, "other", tmp_path / "other").json()["error"]["message"] == outside(tmp_path / "other")


def test_roots_must_be_absolute():
    from fw.config.options import ConfigError
    from tests.core.server.helpers import serve_config

    with pytest.raises(ConfigError, match="--lora-path-roots: must be absolute paths .*~/adapters"):
        serve_config(lora_path_roots=["~/adapters"])
