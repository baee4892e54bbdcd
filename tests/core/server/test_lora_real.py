"""LoRA serving end to end on the real engine: a tiny random Llama (fp32) with random PEFT
adapters behind a live server. Adapter outputs must equal the offline API's
(``fw.LLM(..., enable_lora=True).generate(..., lora_request=...)``) and differ from the
base model's, through start-up adapters, run-time loading, unloading under load and
--max-cpu-loras eviction."""

from __future__ import annotations

import asyncio
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from fw import LLM, LoRARequest, SamplingParams
from fw.engine.async_engine import AsyncEngine
from tests.core.engine.conftest import PROMPTS
from tests.core.lora.adapters import make_test_adapters
from tests.core.server.helpers import serve_config

PROMPT = PROMPTS[2]
TOKENS = 12
LONG_TOKENS = 300  # a streamed request long enough to still run when its adapter is unloaded


@pytest.fixture(scope="module")
def adapters(tiny_llama, tmp_path_factory):
    return make_test_adapters(tiny_llama, tmp_path_factory.mktemp("adapters"))


@pytest.fixture(scope="module")
def offline(tiny_llama, adapters):
    """``offline(adapter name or None, max_tokens)`` -> the offline API's greedy text."""
    llm = LLM(str(tiny_llama), dtype="float32", enable_lora=True, max_loras=2)
    cache: dict = {}

    def text(name: str | None, max_tokens: int = TOKENS) -> str:
        if (name, max_tokens) not in cache:
            lora = LoRARequest(name, 1, str(adapters[name])) if name else None
            params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
            cache[name, max_tokens] = llm.generate(PROMPT, params, lora_request=lora, use_tqdm=False)[0].outputs[0].text
        return cache[name, max_tokens]

    return text


@pytest.fixture
def serve(start_server, tiny_llama):
    """``serve(**options)``: a live server over a real engine on the tiny Llama with LoRA on."""
    engines = []

    def start(**options):
        options = {"model": str(tiny_llama), "dtype": "float32", "enable_lora": True, **options}
        engine = AsyncEngine.from_config(serve_config(**options).engine_config())
        engines.append(engine)
        return start_server(engine, **options)

    yield start
    for engine in engines:
        asyncio.run(engine.shutdown())


def complete(http, model: str, max_tokens: int = TOKENS):
    return http.post("/v1/completions", json={"model": model, "prompt": PROMPT, "max_tokens": max_tokens,
                                              "temperature": 0, "ignore_eos": True})


def text_of(http, model: str) -> str:
    response = complete(http, model)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == model
    return response.json()["choices"][0]["text"]


def test_models_list_and_requests_by_adapter_name(serve, adapters, offline):
    chat = json.dumps({"name": "chat", "path": str(adapters["chat"]), "base_model_name": "tiny"})
    live = serve(served_model_name=["tiny"], max_loras=2, lora_modules=[f"sql={adapters['sql']}", chat])
    with live.http() as http:
        cards = http.get("/v1/models").json()["data"]
        assert [(c["id"], c["parent"]) for c in cards] == [("tiny", None), ("sql", "tiny"), ("chat", "tiny")]
        assert [c["root"] for c in cards] == ["tiny", "sql", "chat"]  # names, not folders
        texts = {name: text_of(http, name) for name in ("tiny", "sql", "chat")}
    assert texts == {"tiny": offline(None), "sql": offline("sql"), "chat": offline("chat")}
    assert len(set(texts.values())) == 3  # each adapter really changes the output


def test_load_use_and_unload_while_in_use(serve, adapters, offline, monkeypatch):
    monkeypatch.setenv("FW_ALLOW_RUNTIME_LORA_UPDATING", "1")
    live = serve(max_loras=2, lora_path_roots=[str(adapters["sql"].parent)])
    with live.http() as http, live.http() as control:
        bad = control.post("/v1/load_lora_adapter", json={"lora_name": "sql", "lora_path": str(adapters["sql"].parent)})
        assert bad.status_code == 400 and "no LoRA adapter this server may load" in bad.json()["error"]["message"]
        loaded = control.post("/v1/load_lora_adapter", json={"lora_name": "sql", "lora_path": str(adapters["sql"])})
        assert loaded.status_code == 200, loaded.text
        assert text_of(http, "sql") == offline("sql")
        with http.stream("POST", "/v1/completions", json={
                "model": "sql", "prompt": PROMPT, "max_tokens": LONG_TOKENS, "temperature": 0,
                "ignore_eos": True, "stream": True}) as stream:
            events = (line.removeprefix("data: ") for line in stream.iter_lines() if line.startswith("data: "))
            received = [next(events)]
            assert control.post("/v1/unload_lora_adapter", json={"lora_name": "sql"}).status_code == 200
            assert live.engine.stats().num_running == 1  # the streamed request is still running
            assert complete(control, "sql").status_code == 404  # new requests are refused at once
            received += events
        assert received[-1] == "[DONE]"
        chunks = [json.loads(event)["choices"][0] for event in received[:-1]]
        assert chunks[-1]["finish_reason"] == "length"
        assert "".join(c["text"] for c in chunks) == offline("sql", LONG_TOKENS)
        assert [m["id"] for m in control.get("/v1/models").json()["data"]] == [live.engine.model_info.name]


def test_one_adapter_in_memory_with_two_alternating(serve, adapters, offline):
    live = serve(max_loras=1, max_cpu_loras=1,
                 lora_modules=[f"sql={adapters['sql']}", f"chat={adapters['chat']}"])
    base = live.engine.model_info.name
    with live.http() as http:
        for name in ("sql", "chat", "sql", "chat"):
            assert text_of(http, name) == offline(name)
    order = ["sql", "chat", base, "chat", "sql", "sql", "chat", base]

    def one(name: str) -> str:
        with live.http() as http:
            return text_of(http, name)

    with ThreadPoolExecutor(len(order)) as pool:
        texts = list(pool.map(one, order))
    assert texts == [offline(None if name == base else name) for name in order]


def test_an_adapter_whose_files_vanished_fails_only_its_requests(serve, adapters, offline, tmp_path):
    chat = shutil.copytree(adapters["chat"], tmp_path / "chat")
    live = serve(max_loras=1, max_cpu_loras=1, lora_modules=[f"sql={adapters['sql']}", f"chat={chat}"])
    with live.http() as http:
        assert text_of(http, "sql") == offline("sql")  # sql in memory, chat dropped
        shutil.rmtree(chat)
        failed = complete(http, "chat")
        assert failed.status_code == 400
        error = failed.json()["error"]
        assert error["param"] == "lora_path"
        assert error["message"] == (
            f"LoRA adapter 'chat' ({chat}): the folder does not exist; the adapter had been dropped from "
            "memory (--max-cpu-loras 1) and reading it again failed")
        assert http.get("/health").status_code == 200
        assert text_of(http, "sql") == offline("sql")
        assert text_of(http, live.engine.model_info.name) == offline(None)
