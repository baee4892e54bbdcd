"""What a sentence-transformers folder says about its pooling, so ``fw serve FOLDER``
embeds as ``SentenceTransformer(FOLDER).encode`` does.

``modules.json`` lists the pipeline: the transformer, a ``Pooling`` module (its
``config.json`` picks the pooling), optionally ``Normalize``. ``sentence_bert_config.json``
caps the input length (``max_seq_length``). A module fw does not run (``Dense``, say) is
an error at start-up rather than an embedding that silently differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fw.errors import ModelLoadError

#: 1_Pooling/config.json's switches -> fw's pooler names
_MODES = {
    "pooling_mode_cls_token": "CLS",
    "pooling_mode_mean_tokens": "MEAN",
    "pooling_mode_lasttoken": "LAST",
    "pooling_mode_max_tokens": "MAX",
    "pooling_mode_mean_sqrt_len_tokens": "MEAN_SQRT_LEN",
    "pooling_mode_weightedmean_tokens": "WEIGHTED_MEAN",
}
#: the newer spelling (``"pooling_mode": "mean"``)
_NAMES = {"cls": "CLS", "mean": "MEAN", "lasttoken": "LAST", "max": "MAX", "mean_sqrt_len_tokens": "MEAN_SQRT_LEN",
          "weightedmean": "WEIGHTED_MEAN"}
_KNOWN = ("Transformer", "Pooling", "Normalize")


@dataclass
class SentenceTransformerFiles:
    #: the pooler the Pooling module stands for (None: the folder has no Pooling module)
    pooling_type: str | None
    #: whether the pipeline ends with Normalize
    normalize: bool
    #: sentence_bert_config.json's max_seq_length, if any
    max_seq_length: int | None


def _json(file: Path) -> dict | list:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(file, f"is not valid JSON: {exc}") from exc


def _pooling_type(config: dict, file: Path) -> str:
    if isinstance(config.get("pooling_mode"), str):
        mode = config["pooling_mode"]
        if mode not in _NAMES:
            raise ModelLoadError(file, f"pooling_mode {mode!r} is not one fw knows ({', '.join(_NAMES)})")
        return _NAMES[mode]
    chosen = [name for key, name in _MODES.items() if config.get(key)]
    if len(chosen) != 1:
        raise ModelLoadError(file, f"asks for {len(chosen)} pooling modes ({', '.join(chosen) or 'none'}); fw "
                                   "pools with exactly one")
    return chosen[0]


def read_sentence_transformers(folder: Path) -> SentenceTransformerFiles | None:
    """The folder's sentence-transformers settings, or None if it is not such a folder."""
    folder = folder if folder.is_dir() else folder.parent
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    pooling_type, normalize = None, False
    for module in _json(modules_file):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _KNOWN:
            raise ModelLoadError(modules_file, f"module {module.get('path') or kind!r} is a {kind}, which fw does "
                                               f"not run (it runs {', '.join(_KNOWN)})")
        if kind == "Pooling":
            config_file = folder / module.get("path", "") / "config.json"
            pooling_type = _pooling_type(_json(config_file), config_file) if config_file.is_file() else "MEAN"
        normalize = normalize or kind == "Normalize"
    max_len = None
    config_file = folder / "sentence_bert_config.json"
    if config_file.is_file():
        max_len = _json(config_file).get("max_seq_length")
    return SentenceTransformerFiles(pooling_type, normalize, int(max_len) if max_len else None)
