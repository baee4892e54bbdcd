"""Tiny random Hugging Face checkpoints for tests.

Nothing may download weights here, so every test that needs a model builds one: a real
transformers architecture with a few thousand random parameters, saved exactly as a hub
checkpoint would be (config.json, model.safetensors, generation_config.json and a
tokenizer with a ChatML template). transformers loads the folder unchanged, which makes
it the reference the engine is compared against.

The tokenizer is a small byte-level BPE trained in-process on an embedded corpus, so
encoding real English gives a handful of tokens per word (like a real model) and every
byte sequence stays encodable. Training takes ~10 ms and is done once per process.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

#: the special tokens every tiny tokenizer has, in id order (ids 0, 1, 2)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
#: the tokenizer's size including the special tokens (= the model's vocab_size)
VOCAB_SIZE = 448

#: supported architecture -> its transformers config class
ARCHITECTURES = {
    "LlamaForCausalLM": "LlamaConfig",
    "MistralForCausalLM": "MistralConfig",
    "Qwen2ForCausalLM": "Qwen2Config",
    "Qwen3ForCausalLM": "Qwen3Config",
    "Gemma2ForCausalLM": "Gemma2Config",
    "Gemma3ForCausalLM": "Gemma3TextConfig",
    "Phi3ForCausalLM": "Phi3Config",
    "MixtralForCausalLM": "MixtralConfig",
    "Qwen2MoeForCausalLM": "Qwen2MoeConfig",
    "Qwen3MoeForCausalLM": "Qwen3MoeConfig",
    # encoders, for the pooling runner (no generation config)
    "BertModel": "BertConfig",
    "BertForSequenceClassification": "BertConfig",
    "RobertaModel": "RobertaConfig",
    "RobertaForSequenceClassification": "RobertaConfig",
    "XLMRobertaModel": "XLMRobertaConfig",
    "XLMRobertaForSequenceClassification": "XLMRobertaConfig",
}

#: what each architecture's tiny checkpoint sets beyond the shared sizes, so that what sets
#: it apart shows in a short prompt: weights drawn 5x wider than transformers' default (a
#: peaked next-token distribution, which a bug moves visibly), windows of a few tokens
#: beside global layers, soft caps that bend the scores, an attention scale other than
#: head_dim ** -0.5, LongRoPE factors with part of each head rotating, 4 experts (top 2)
#: beside a dense layer. Gemma's are untied: with random weights its sqrt(hidden)-scaled
#: embedding outweighs the layers, and a tied head then predicts the input token again.
_WIDE = {"initializer_range": 0.1}
_GEMMA = {**_WIDE, "layer_types": ["sliding_attention", "full_attention"], "sliding_window": 6,
          "query_pre_attn_scalar": 24, "tie_word_embeddings": False}
_EXPERTS = {**_WIDE, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64}
ARCHITECTURE_DEFAULTS = {
    "MistralForCausalLM": {"sliding_window": None},  # full attention unless a test asks for a window
    "Gemma2ForCausalLM": {**_GEMMA, "attn_logit_softcapping": 2.0, "final_logit_softcapping": 4.0},
    "Gemma3ForCausalLM": {**_GEMMA, "max_position_embeddings": 512},
    "Phi3ForCausalLM": {**_WIDE, "max_position_embeddings": 2048, "original_max_position_embeddings": 512,
                        "partial_rotary_factor": 0.75,
                        "rope_scaling": {"type": "longrope", "short_factor": [1.0 + 0.25 * i for i in range(6)],
                                         "long_factor": [2.0 + i for i in range(6)]}},
    "MixtralForCausalLM": {**_WIDE, "num_local_experts": 4, "num_experts_per_tok": 2, "intermediate_size": 64},
    "Qwen3MoeForCausalLM": {**_EXPERTS, "norm_topk_prob": True, "mlp_only_layers": [1]},
    "Qwen2MoeForCausalLM": {**_EXPERTS, "shared_expert_intermediate_size": 96},
}

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Plain, varied English so that merges cover common words, punctuation and digits.
CORPUS = """\
The quick brown fox jumps over the lazy dog. What is the capital of France? The capital
of France is Paris. Paris is a city on the river Seine, and it is known for its museums,
its cafes and the Eiffel Tower. Berlin is the capital of Germany; Rome is the capital of
Italy; Madrid is the capital of Spain. Hello! How are you today? I am fine, thank you.
Can you tell me a story about a small robot who wanted to learn how to paint? Once upon a
time there was a little robot. It lived in a quiet house at the edge of a forest. Every
morning the robot watched the sun rise and wondered what colors were made of. One day it
found a box of paints and began to make pictures of trees, rivers, birds and clouds.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 42 100 2024 3.14 1,000. Write a function that returns
the sum of two numbers. def add(a, b): return a + b. The answer is 4. Please explain why
the sky is blue: sunlight is scattered by the air, and blue light is scattered more than
red light. Water boils at 100 degrees Celsius. The weather is nice and warm this week.
You are a helpful assistant. The user asks a question and the assistant answers it with
care. Tell me three facts about the moon. The moon has no air, it has many craters, and
it moves around the Earth about once a month. Thanks for your help, that was very useful.
"""


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    """The trained tokenizer (a ``PreTrainedTokenizerFast``), built once per process."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<|endoftext|>", unk_token="<|endoftext|>", chat_template=CHAT_TEMPLATE,
        model_max_length=512, clean_up_tokenization_spaces=False,
    )
    if len(tokenizer) != VOCAB_SIZE:
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens, expected {VOCAB_SIZE}")
    return tokenizer


@functools.lru_cache(maxsize=1)
def encoder_tokenizer():
    """The tiny tokenizer with BERT's framing, for the encoder architectures: a text is
    ``<|im_start|> text <|im_end|>`` (as [CLS] ... [SEP]) and a pair's second text and its
    separator have token type 1."""
    import copy

    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    core = copy.deepcopy(tiny_tokenizer().backend_tokenizer)
    cls, sep = SPECIAL_TOKENS[1], SPECIAL_TOKENS[2]
    core.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, SPECIAL_TOKENS.index(cls)), (sep, SPECIAL_TOKENS.index(sep))])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, cls_token=cls, sep_token=sep, pad_token=SPECIAL_TOKENS[0], unk_token=SPECIAL_TOKENS[0],
        model_input_names=["input_ids", "token_type_ids", "attention_mask"], model_max_length=512,
        clean_up_tokenization_spaces=False)


def _config(architecture: str, tokenizer, dtype: torch.dtype, overrides: dict):
    import transformers

    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; available: {', '.join(ARCHITECTURES)}")
    config_class = getattr(transformers, ARCHITECTURES[architecture])
    values = dict(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    values.update(ARCHITECTURE_DEFAULTS.get(architecture, {}))
    values.update(overrides)
    config = config_class(**values)
    config.architectures = [architecture]
    config.dtype = dtype
    return config


def make_tiny_checkpoint(directory: Path, architecture: str = "LlamaForCausalLM", *,
                         seed: int = 0, dtype: torch.dtype = torch.float32,
                         **config_overrides) -> Path:
    """Write a tiny random checkpoint of ``architecture`` into ``directory``; returns it.

    ``config_overrides`` go to the transformers config class (``tie_word_embeddings=True``,
    ``num_hidden_layers=3``, ``rope_parameters={...}``). The same arguments always give
    the same bytes, so a test may rebuild a checkpoint instead of sharing one.
    """
    import transformers
    from transformers import GenerationConfig

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    generates = architecture.endswith("ForCausalLM")
    tokenizer = tiny_tokenizer() if generates else encoder_tokenizer()
    config = _config(architecture, tokenizer, dtype, config_overrides)
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(config)
    _perturb_constant_parameters(model)
    model = model.to(dtype).eval()
    if generates:
        model.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
        )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    _check_written(directory, generates=generates)
    return directory


@torch.no_grad()
def _perturb_constant_parameters(model) -> None:
    """Add noise to the 1-D parameters (norm weights start at 1, biases at 0).

    With their initial constant values a model that forgets to load a norm weight or the
    Qwen2 qkv bias would still match transformers; random values make such a bug show.
    """
    for parameter in model.parameters():
        if parameter.dim() == 1:
            parameter.add_(torch.randn_like(parameter) * 0.1)


def _check_written(directory: Path, generates: bool = True) -> None:
    """Fail loudly if a transformers upgrade changes what ``save_pretrained`` writes."""
    names = ("config.json", "model.safetensors", "tokenizer.json") + (("generation_config.json",) if generates else ())
    for name in names:
        if not (directory / name).is_file():
            raise RuntimeError(f"tiny checkpoint in {directory} lacks {name}")
    json.loads((directory / "config.json").read_text())
