"""What a GGUF file says besides its tensors: the Hugging Face config and the tokenizer.

The config keys follow llama.cpp's metadata names (``{arch}.block_count`` ...) and give
the same config as ``AutoConfig.from_pretrained(folder, gguf_file=...)``, plus
``architectures`` so fw can pick the model class.

The tokenizer is converted by transformers' GGUF tokenizer converter (so its ids match
transformers' exactly) and saved in a cache folder keyed by the file's path, size and
mtime: later loads read that folder, which needs neither the GGUF file nor torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from fw.errors import ModelLoadError
from fw.model_loader.tokenizer import load_hf_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from fw_builtins.loaders.gguf_reader import GGUFFile

logger = logging.getLogger("fw.loaders.gguf")

#: GGUF general.architecture -> the Hugging Face architecture it holds
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                 "gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM", "phi3": "Phi3ForCausalLM"}
#: GGUF architecture -> the Hugging Face model_type (Gemma 3's file holds the text model)
MODEL_TYPES = {"gemma3": "gemma3_text"}
#: tokenizer.ggml.* special-token keys -> config keys
TOKEN_IDS = {"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id",
             "unknown_token_id": "unk_token_id", "padding_token_id": "pad_token_id"}
#: tokenizer attribute -> the tokenizer.ggml.* key holding its id
SPECIAL_TOKENS = {"bos_token": "bos_token_id", "eos_token": "eos_token_id",
                  "unk_token": "unknown_token_id", "pad_token": "padding_token_id"}
#: bump when the conversion changes, so stale cache entries are not used
CACHE_VERSION = 1
_REQUIRED = object()


def config_dict(gguf: "GGUFFile") -> dict[str, Any]:
    """The Hugging Face config (as a dict) that ``gguf``'s metadata describes."""
    meta = gguf.metadata
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise ModelLoadError(gguf.path, f"holds a {arch!r} model; fw's GGUF loader reads {', '.join(ARCHITECTURES)}")
    tensor_names = {t.name for t in gguf.tensors}
    if "rope_freqs.weight" in tensor_names:
        raise ModelLoadError(gguf.path, "uses llama3 RoPE frequency factors (rope_freqs.weight), which fw's "
                                        "GGUF loader does not support; load the Hugging Face folder instead")
    if "rope_factors_long.weight" in tensor_names:
        raise ModelLoadError(gguf.path, "uses LongRoPE factors (rope_factors_long.weight), which fw's GGUF loader "
                                        "does not read; load the Hugging Face folder instead")

    def get(key: str, default: Any = _REQUIRED) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        if value is _REQUIRED:
            raise ModelLoadError(gguf.path, f"lacks the metadata key {arch}.{key}")
        return value

    heads = get("attention.head_count")
    config = {
        "architectures": [ARCHITECTURES[arch]], "model_type": MODEL_TYPES.get(arch, arch),
        "hidden_size": get("embedding_length"), "intermediate_size": get("feed_forward_length"),
        "num_hidden_layers": get("block_count"), "num_attention_heads": heads,
        "num_key_value_heads": get("attention.head_count_kv", heads),
        "max_position_embeddings": get("context_length"),
        "rms_norm_eps": get("attention.layer_norm_rms_epsilon"),
        "rope_theta": get("rope.freq_base", 10000.0),
        "vocab_size": get("vocab_size", None) or len(meta.get("tokenizer.ggml.tokens", ())),
        "tie_word_embeddings": "output.weight" not in tensor_names,
    }
    head_dim = get("attention.key_length", None) or (get("rope.dimension_count", None) if arch == "llama" else None)
    if head_dim:
        config["head_dim"] = head_dim
    if arch in ("gemma2", "gemma3"):
        config.update(_gemma(get, config))
    if arch == "phi3":
        size = head_dim or config["hidden_size"] // heads
        rotary = get("rope.dimension_count", None)
        if rotary and rotary != size:
            config["partial_rotary_factor"] = rotary / size
        config["sliding_window"] = get("attention.sliding_window", None)
    scaling = get("rope.scaling.type", "none")
    if scaling in ("linear", "yarn"):
        config["rope_scaling"] = {"rope_type": scaling, "factor": get("rope.scaling.factor")}
        if scaling == "yarn":
            config["rope_scaling"]["original_max_position_embeddings"] = get("rope.scaling.original_context_length")
    elif scaling != "none":
        raise ModelLoadError(gguf.path, f"uses RoPE scaling {scaling!r}, which fw's GGUF loader does not support")
    for key, name in TOKEN_IDS.items():
        if f"tokenizer.ggml.{key}" in meta:
            config[name] = meta[f"tokenizer.ggml.{key}"]
    return config


def _gemma(get, config: dict[str, Any]) -> dict[str, Any]:
    """What Gemma 2/3 files say besides the llama keys. llama.cpp scales attention by
    head_dim ** -0.5, except for the 27B models (by (hidden / heads) ** -0.5), which it
    tells apart by their layer count: so does fw (the file does not store the scalar)."""
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    big = config["num_hidden_layers"] in (46, 62)  # Gemma 2 27B, Gemma 3 27B
    values = {"sliding_window": get("attention.sliding_window", None),
              "query_pre_attn_scalar": config["hidden_size"] // config["num_attention_heads"] if big else head_dim,
              "hidden_activation": "gelu_pytorch_tanh"}
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        value = get(key, None)
        if value is not None:
            values[key] = value
    # which layers attend through the window: a per-layer list, or every n-th layer global
    # (llama.cpp's default: every 2nd for Gemma 2, every 6th for Gemma 3)
    pattern = get("attention.sliding_window_pattern", None)
    if isinstance(pattern, int):
        values["sliding_window_pattern"] = pattern
    elif isinstance(pattern, list) and len(pattern) == config["num_hidden_layers"]:
        values["layer_types"] = ["sliding_attention" if windowed else "full_attention" for windowed in pattern]
    return values


#: the model types whose configs ``GGUFConfig`` holds without transformers (its defaults
#: are theirs); the others (Gemma 3's RoPE base per layer type, derived from its defaults)
#: get transformers' config class
LIGHT_MODEL_TYPES = ("llama", "qwen2", "qwen3")


def hf_config(gguf: "GGUFFile"):
    """The model config (a ``GGUFConfig`` for the Llama family: transformers' config
    classes cost seconds to import)."""
    from fw_builtins.loaders.gguf_config import GGUFConfig

    config = GGUFConfig(config_dict(gguf), gguf.path)
    return config if config.model_type in LIGHT_MODEL_TYPES else config.transformers_config()


# -- the tokenizer -------------------------------------------------------------------

def cache_root() -> Path:
    """Where fw keeps derived files: ``$FW_CACHE_DIR``, else ``~/.cache/fw``."""
    return Path(os.environ.get("FW_CACHE_DIR") or Path.home() / ".cache" / "fw")


def tokenizer_cache_dir(path: Path) -> Path:
    """The cache folder of ``path``'s tokenizer; a changed file gets a new folder."""
    stat = path.stat()
    transformers_version = importlib.metadata.version("transformers")
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{CACHE_VERSION}|{transformers_version}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_root() / "gguf-tokenizers" / f"{path.stem}-{digest}"


def load_gguf_tokenizer(path: Path, parsed: "GGUFFile | None" = None) -> "PreTrainedTokenizerBase":
    """The tokenizer stored in GGUF ``path``: from the cache, or converted (from ``parsed``,
    the file's header if already read) and cached."""
    folder = tokenizer_cache_dir(path)
    if folder.is_dir():
        return load_hf_tokenizer(folder)
    with _converting(folder):  # `fw serve`'s API server and engine core both want it: one converts
        if folder.is_dir():
            return load_hf_tokenizer(folder)
        tokenizer = convert_tokenizer(path, parsed)
        try:
            _save_atomically(tokenizer, folder)
        except OSError as exc:
            logger.warning("cannot cache the tokenizer of %s in %s (%s); it is converted again next time",
                           path, folder, exc)
            return tokenizer
    return load_hf_tokenizer(folder)


@contextlib.contextmanager
def _converting(folder: Path) -> Iterator[None]:
    """One process at a time converts into ``folder`` (an exclusive lock beside it); where
    the lock cannot be had (a read-only cache), each converts on its own."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        handle = open(folder.parent / f".{folder.name}.lock", "w")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def convert_tokenizer(path: Path, parsed: "GGUFFile | None" = None) -> "PreTrainedTokenizerBase":
    """Build the tokenizer from the metadata with transformers' GGUF converter.

    The inputs are gathered as transformers' ``get_gguf_tokenizer`` gathers them, but from
    this package's reader: that function's own reader imports torch (~4 s).
    """
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

    from fw_builtins.loaders.gguf_reader import GGUFFile

    meta = (parsed or GGUFFile(path)).metadata
    tokenizer_dict, tokenizer_config = (
        {name: meta[f"tokenizer.{key}"] for key, name in GGUF_TOKENIZER_MAPPING[group].items()
         if f"tokenizer.{key}" in meta}
        for group in ("tokenizer", "tokenizer_config")
    )
    tokens = tokenizer_dict.get("tokens")
    if not tokens:
        raise ModelLoadError(path, "holds no tokenizer (tokenizer.ggml.tokens is missing)")
    if tokenizer_dict.get("tokenizer_type") == "llama":
        # sentencepiece vocabularies get a BOS unless the file says otherwise (llama.cpp's rule)
        tokenizer_config.setdefault("add_bos_token", True)
    for name, key in SPECIAL_TOKENS.items():
        token_id = meta.get(f"tokenizer.ggml.{key}")
        tokenizer_config[name] = tokens[token_id] if token_id is not None and token_id < len(tokens) else None
    try:
        backend, extra = convert_gguf_tokenizer(meta["general.architecture"], tokenizer_dict)
    except (ValueError, KeyError, IndexError) as exc:
        raise ModelLoadError(path, f"its tokenizer cannot be converted: {exc}") from exc
    return PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer_config, **extra)


def _save_atomically(tokenizer: "PreTrainedTokenizerBase", folder: Path) -> None:
    """Save into a temporary folder, then rename it: readers never see half a cache entry."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=folder.parent))
    try:
        tokenizer.save_pretrained(staging)
        os.replace(staging, folder)
    except OSError:
        if not folder.is_dir():  # a concurrent process that finished first is fine
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
