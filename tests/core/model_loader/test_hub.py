"""Hub ids as model sources: the local Hugging Face cache first (offline), a download
from a stand-in hub otherwise (HF_ENDPOINT), quant tags for GGUF repos, and one clear
line when nothing can be had."""

from __future__ import annotations

import json

import pytest

from fw.config import LoadConfig, ModelConfig
from fw.model_loader import hub
from fw.errors import ModelLoadError
from fw.model_loader.select import load_tokenizer, resolve_model, resolve_model_path
from tests.fake_hub import FakeHub, folder_files, lay_out_cache
from tests.tiny_gguf import make_tiny_gguf


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE=1, as huggingface_hub read it at import."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def fake_hub(monkeypatch):
    """A started FakeHub that huggingface_hub talks to (HF_ENDPOINT), stopped after the test."""
    from huggingface_hub import constants

    server = FakeHub().start()
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    yield server
    server.stop()


def test_hub_ids_are_told_from_paths():
    assert hub.parse_hub_id("Qwen/Qwen2.5-0.5B-Instruct") == ("Qwen/Qwen2.5-0.5B-Instruct", None)
    assert hub.parse_hub_id("bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M") == (
        "bartowski/SmolLM2-135M-Instruct-GGUF", "Q4_K_M")
    for not_an_id in ("model.gguf", "/abs/path", "org/model.gguf", "a/b/c", "./org/name", "org/na--me", "org/"):
        assert hub.parse_hub_id(not_an_id) is None, not_an_id


def test_a_cached_model_is_served_offline(tiny_llama, tmp_path, offline, llm_factory):
    cache = tmp_path / "hub"
    snapshot = lay_out_cache(cache, "org/tiny", folder_files(tiny_llama))
    resolved = resolve_model(ModelConfig(model="org/tiny"), LoadConfig(download_dir=str(cache)))
    assert resolved.path == snapshot
    # The same weights as the local folder: the same greedy tokens.
    from fw import SamplingParams

    params = SamplingParams(max_tokens=6, temperature=0)
    from_hub = llm_factory("org/tiny", download_dir=str(cache)).generate(["The capital of"], params)
    local = llm_factory(tiny_llama).generate(["The capital of"], params)
    assert from_hub[0].outputs[0].token_ids == local[0].outputs[0].token_ids


def test_offline_with_nothing_cached_says_what_to_do(tmp_path, offline):
    with pytest.raises(ModelLoadError) as error:
        resolve_model_path("org/missing", hub.HubOptions(cache_dir=str(tmp_path)))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("org/missing: is not in the Hugging Face cache") and str(tmp_path) in message
    assert "HF_HUB_OFFLINE=1" in message and "hf download org/missing" in message


def test_a_cached_branch_is_used_without_asking_the_hub(tiny_llama, tmp_path, fake_hub):
    fake_hub.add("org/tiny", folder_files(tiny_llama))
    cache = tmp_path / "hub"
    snapshot = lay_out_cache(cache, "org/tiny", folder_files(tiny_llama))
    assert hub.resolve("org/tiny", hub.HubOptions(cache_dir=str(cache))) == snapshot
    assert fake_hub.requests == []


def test_download_with_progress_skipping_what_fw_never_reads(tiny_llama, tmp_path, fake_hub, capfd):
    files = folder_files(tiny_llama) | {"pytorch_model.bin": b"old copy", "onnx/model.onnx": b"onnx",
                                        "original/consolidated.pth": b"meta"}
    commit = fake_hub.add("org/tiny", files)
    cache = tmp_path / "hub"
    path = hub.resolve("org/tiny", hub.HubOptions(cache_dir=str(cache)))
    assert path == cache / "models--org--tiny" / "snapshots" / commit
    fetched = {p.rsplit("/", 1)[1] for p in fake_hub.downloads()}
    assert fetched == set(folder_files(tiny_llama)), fetched
    assert (path / "model.safetensors").read_bytes() == (tiny_llama / "model.safetensors").read_bytes()
    assert "100%" in capfd.readouterr().err  # the progress bar, also when stderr is not a terminal
    fake_hub.requests.clear()
    assert hub.resolve("org/tiny", hub.HubOptions(cache_dir=str(cache))) == path
    assert fake_hub.requests == []


def test_revision_picks_the_commit(tiny_llama, tmp_path, fake_hub):
    files = {name: path.read_bytes() for name, path in folder_files(tiny_llama).items()}
    old_config = json.loads(files["config.json"])
    first = fake_hub.add("org/tiny", files, branch="v1")
    fake_hub.add("org/tiny", files | {"config.json": json.dumps({**old_config, "max_position_embeddings": 256}).encode()})
    cache = str(tmp_path / "hub")
    latest = resolve_model(ModelConfig(model="org/tiny"), LoadConfig(download_dir=cache)).path
    tagged = resolve_model(ModelConfig(model="org/tiny", revision="v1"), LoadConfig(download_dir=cache)).path
    by_commit = resolve_model(ModelConfig(model="org/tiny", revision=first), LoadConfig(download_dir=cache)).path
    assert tagged.name == by_commit.name == first != latest.name
    assert json.loads((latest / "config.json").read_text())["max_position_embeddings"] == 256
    assert json.loads((tagged / "config.json").read_text()) == old_config
    with pytest.raises(ModelLoadError, match="^org/tiny: the hub has no revision 'v9'"):
        resolve_model(ModelConfig(model="org/tiny", revision="v9"), LoadConfig(download_dir=cache))


def test_patterns_choose_the_files(tiny_llama, tmp_path, fake_hub):
    fake_hub.add("org/tiny", folder_files(tiny_llama) | {"notes.txt": b"x"})
    path = resolve_model(ModelConfig(model="org/tiny"),
                         LoadConfig(download_dir=str(tmp_path), allow_patterns=["*.json", "*.safetensors"],
                                    ignore_patterns=["generation_config.json"])).path
    names = sorted(p.name for p in path.iterdir())
    assert names == sorted(n for n in folder_files(tiny_llama) if n.endswith((".json", ".safetensors"))
                           and n != "generation_config.json")


def test_a_quant_tag_picks_that_gguf_file(tiny_llama, tmp_path, fake_hub):
    gguf = make_tiny_gguf(tmp_path / "tiny.gguf", tiny_llama).read_bytes()
    fake_hub.add("org/tiny-GGUF", {"tiny.Q8_0.gguf": gguf, "tiny.q4_k_m.gguf": gguf + bytes(32),
                                   "tiny-F16.gguf": b"f16", "README.md": b"r"})
    options = hub.HubOptions(cache_dir=str(tmp_path / "hub"))
    path = hub.resolve("org/tiny-GGUF:Q8_0", options)
    assert path.name == "tiny.Q8_0.gguf" and path.read_bytes() == gguf
    assert hub.resolve("org/tiny-GGUF", options).name == "tiny.q4_k_m.gguf"  # llama.cpp's default tag
    assert fake_hub.downloads() == ["/org/tiny-GGUF/resolve/main/tiny.Q8_0.gguf",
                                    "/org/tiny-GGUF/resolve/main/tiny.q4_k_m.gguf"]
    with pytest.raises(ModelLoadError, match=r"^org/tiny-GGUF: no GGUF file tagged 'Q5_K_S'; name one as "
                                             r"org/tiny-GGUF:TAG, with TAG one of F16, Q8_0, q4_k_m$"):
        hub.resolve("org/tiny-GGUF:Q5_K_S", options)
    # Its tokenizer comes from the file itself.
    text = "What is the capital of France?"
    assert load_tokenizer("org/tiny-GGUF:Q8_0").encode(text) == load_tokenizer(str(tiny_llama)).encode(text)


def test_offline_a_tagless_gguf_repo_is_its_only_cached_file(tmp_path, offline):
    cache = tmp_path / "hub"
    snapshot = lay_out_cache(cache, "org/m-GGUF", {"m.Q8_0.gguf": b"GGUF"})
    assert hub.resolve("org/m-GGUF", hub.HubOptions(cache_dir=str(cache))) == snapshot / "m.Q8_0.gguf"
    with pytest.raises(ModelLoadError, match="is not in the Hugging Face cache"):
        hub.resolve("org/m-GGUF:Q4_0", hub.HubOptions(cache_dir=str(cache)))


def test_unknown_repo_and_unreachable_hub(tmp_path, fake_hub, monkeypatch):
    with pytest.raises(ModelLoadError, match="^org/nothing: neither a local file or folder nor a model on the hub"):
        hub.resolve("org/nothing", hub.HubOptions(cache_dir=str(tmp_path)))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ModelLoadError, match=r"^org/nothing: cannot reach the Hugging Face hub \(.*\) and it is not "
                                             r"in the cache") as error:
        hub.resolve("org/nothing", hub.HubOptions(cache_dir=str(tmp_path)))
    assert "\n" not in str(error.value)


def test_the_tokenizer_from_the_hub_fetches_only_tokenizer_files(tiny_llama, tmp_path, fake_hub):
    fake_hub.add("org/tok", folder_files(tiny_llama))
    resolved = resolve_model(ModelConfig(model=str(tiny_llama), tokenizer="org/tok"),
                             LoadConfig(download_dir=str(tmp_path)))
    assert resolved.path == tiny_llama
    assert resolved.model_config.tokenizer == str(tmp_path / "models--org--tok" / "snapshots" /
                                                  fake_hub.refs["org/tok"]["main"])
    fetched = {p.rsplit("/", 1)[1] for p in fake_hub.downloads()}
    assert "tokenizer.json" in fetched and not any(name.endswith(".safetensors") for name in fetched)


@pytest.mark.parametrize("option, flag", [({"revision": "v1"}, "--revision"),
                                          ({"download_dir": "/tmp/x"}, "--download-dir"),
                                          ({"hf_token": "hf_x"}, "--hf-token"),
                                          ({"allow_patterns": ["*.json"]}, "--allow-patterns"),
                                          ({"ignore_patterns": ["*.bin"]}, "--ignore-patterns"),
                                          ({"tokenizer_revision": "v1"}, "--tokenizer-revision")])
def test_hub_options_for_a_local_model_are_refused(tiny_llama, option, flag):
    model = {k: v for k, v in option.items() if k in ModelConfig.model_fields}
    load = {k: v for k, v in option.items() if k in LoadConfig.model_fields}
    with pytest.raises(ModelLoadError, match="applies only to a hub id") as error:
        resolve_model(ModelConfig(model=str(tiny_llama), **model), LoadConfig(**load))
    assert flag in str(error.value)
