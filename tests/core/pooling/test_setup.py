"""What a model's pooling runner does (fw.pooling.setup), with vLLM's runner and conversion
rules, and what a sentence-transformers folder says (fw.pooling.sentence_transformers)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from fw.config import EngineConfig
from fw.errors import ConfigurationError, ModelLoadError
from fw.pooling.sentence_transformers import read_sentence_transformers
from fw.pooling.setup import resolve_pooling


class Causal:
    def compute_logits(self, hidden):
        return hidden


class Encoder:
    pooling_tasks = ("embed",)
    default_pooling_type = "CLS"


class Classifier(Encoder):
    pooling_tasks = ("classify",)


HF = SimpleNamespace(hidden_size=16, num_labels=2, id2label={0: "neg", 1: "pos"})


def resolve(model_cls, folder, hf=HF, **options):
    return resolve_pooling(model_cls, hf, EngineConfig.from_options(**options).model, folder)


def test_auto_runs_encoders_with_the_pooling_runner_and_decoders_with_generate(tmp_path):
    setup = resolve(Encoder, tmp_path)
    assert setup.runner == "pooling" and setup.tasks == ["embed", "encode"] and setup.whole_prompts
    assert setup.poolers == {"embed": "CLS", "encode": "ALL"} and setup.normalize
    assert resolve(Causal, tmp_path) is None


def test_enable_embeddings_adds_last_token_embeddings_to_a_generative_model(tmp_path):
    setup = resolve(Causal, tmp_path, enable_embeddings=True)
    assert setup.runner == "generate" and setup.tasks == ["embed", "encode"]
    assert setup.poolers["embed"] == "LAST" and setup.normalize and not setup.whole_prompts
    assert resolve(Causal, tmp_path, enable_embeddings=True,
                   pooler_config={"pooling_type": "MEAN", "normalize": False}).poolers["embed"] == "MEAN"


def test_the_pooling_runner_converts_a_generative_model_to_embed(tmp_path):
    for options in (dict(runner="pooling"), dict(convert="embed"), dict(task="embed")):
        setup = resolve(Causal, tmp_path, **options)
        assert setup.runner == "pooling" and setup.tasks == ["embed", "encode"] and setup.poolers["embed"] == "LAST"


@pytest.mark.parametrize("model_cls, options, reason", [
    (Encoder, dict(runner="generate"), "Encoder does not generate text: it is served by the pooling runner"),
    (Causal, dict(runner="pooling", convert="none"), "Causal has no pooling head; --convert embed"),
    (Encoder, dict(convert="classify"), "--convert classify: Encoder has no classification head"),
    (Encoder, dict(pooler_config={"dimensions": 8}), "does not support Matryoshka"),
])
def test_what_cannot_apply_to_the_model_fails_at_start_up(tmp_path, model_cls, options, reason):
    with pytest.raises(ConfigurationError, match=reason):
        resolve(model_cls, tmp_path, **options)


def test_a_classifier_classifies_with_its_labels(tmp_path):
    setup = resolve(Classifier, tmp_path)
    assert setup.tasks == ["classify", "encode"] and setup.labels == ["neg", "pos"] and setup.num_labels == 2
    assert resolve(Classifier, tmp_path, pooler_config={"activation": False}).activation is False
    assert resolve(Classifier, tmp_path, pooler_config={"softmax": False}).activation is False
    assert resolve(Classifier, tmp_path, convert="embed").tasks == ["embed", "encode"]


def test_matryoshka_models_take_default_dimensions(tmp_path):
    hf = SimpleNamespace(hidden_size=16, matryoshka_dimensions=[4, 8, 16])
    assert resolve(Encoder, tmp_path, hf, pooler_config={"dimensions": 8}).dimensions == 8
    with pytest.raises(ConfigurationError, match=r"supports dimensions \[4, 8, 16\], not 5"):
        resolve(Encoder, tmp_path, hf, pooler_config={"dimensions": 5})
    assert resolve(Encoder, tmp_path, SimpleNamespace(hidden_size=16, is_matryoshka=True)).matryoshka


def _st_folder(tmp_path, modules, pooling=None, max_len=None):
    (tmp_path / "modules.json").write_text(json.dumps(
        [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
         for i, (kind, path) in enumerate(modules)]))
    if pooling is not None:
        (tmp_path / "1_Pooling").mkdir()
        (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if max_len is not None:
        (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_len}))
    return tmp_path


def test_a_sentence_transformers_folder_picks_pooling_normalisation_and_length(tmp_path):
    folder = _st_folder(tmp_path, [("Transformer", ""), ("Pooling", "1_Pooling"), ("Normalize", "2_Normalize")],
                        {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}, 128)
    files = read_sentence_transformers(folder)
    assert (files.pooling_type, files.normalize, files.max_seq_length) == ("MEAN", True, 128)
    setup = resolve(Encoder, folder)
    assert setup.poolers["embed"] == "MEAN" and setup.normalize and setup.max_seq_length == 128
    assert resolve(Encoder, folder, pooler_config={"pooling_type": "CLS"}).poolers["embed"] == "CLS"


def test_sentence_transformers_settings_fw_cannot_honour_fail(tmp_path):
    assert read_sentence_transformers(tmp_path) is None
    folder = _st_folder(tmp_path, [("Transformer", ""), ("Pooling", "1_Pooling")], {"pooling_mode": "lasttoken"})
    files = read_sentence_transformers(folder)
    assert files.pooling_type == "LAST" and not files.normalize
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}))
    with pytest.raises(ModelLoadError, match="asks for 2 pooling modes"):
        read_sentence_transformers(folder)
    _st_folder(tmp_path, [("Transformer", ""), ("Dense", "2_Dense")])
    with pytest.raises(ModelLoadError, match="module '2_Dense' is a Dense, which fw does not run"):
        read_sentence_transformers(folder)
