"""Hugging Face hub ids as model sources, through ``huggingface_hub``.

``ORG/NAME`` names a model repo; ``ORG/NAME:TAG`` names one GGUF file of a repo by its
quantization tag (``:Q4_K_M`` picks ``*Q4_K_M*.gguf``), as llama.cpp and Ollama accept.

The local cache comes first: a revision already in the Hugging Face cache (HF_HOME,
HF_HUB_CACHE, or ``--download-dir``) is served from there without asking the hub, so a
cached model starts offline and as fast as a local folder. To pick up a newer commit of
a branch, name the commit with ``--revision`` (or refresh the cache with
``hf download``). Anything missing is downloaded with a progress bar, unless
HF_HUB_OFFLINE=1, where one line says what to do instead.

Only the files fw reads are fetched: for a repo with safetensors, no ``.bin`` copies,
no ONNX/TensorFlow/Flax weights and no ``original/`` folder (``--allow-patterns`` and
``--ignore-patterns`` replace that choice); for a tokenizer, only tokenizer files.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fw.errors import ModelLoadError

if TYPE_CHECKING:
    from fw.config import LoadConfig, ModelConfig

logger = logging.getLogger("fw.model_loader")

#: ORG/NAME with the hub's characters, optionally :TAG (a GGUF quantization)
HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::(?P<tag>[\w.-]+))?")
#: skipped unless --ignore-patterns says otherwise: files no fw loader reads
DEFAULT_IGNORE = ["original/*", "*.onnx", "*.onnx_data", "onnx/*", "*.msgpack", "*.h5", "*.tflite",
                  "*.ot", "openvino/*", "coreml/*", "*.mlmodel", "*.pth"]
#: what a model repo's tokenizer needs (tokenizer files, their configs, chat templates)
TOKENIZER_PATTERNS = ["tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab*", "merges.txt",
                      "*.model", "*.tiktoken", "chat_template*", "config.json", "generation_config.json"]
#: llama.cpp's choice when a GGUF repo is named without a tag
DEFAULT_TAG = "Q4_K_M"


@dataclass(frozen=True)
class HubOptions:
    """Where and how to fetch: the revision, the cache folder, the token, the patterns."""

    revision: str | None = None
    cache_dir: str | None = None
    token: str | None = None
    allow_patterns: list[str] | None = None
    ignore_patterns: list[str] | None = None
    progress: bool = True

    @classmethod
    def for_model(cls, model: "ModelConfig", load: "LoadConfig") -> "HubOptions":
        return cls(model.revision, load.download_dir, model.hf_token, load.allow_patterns, load.ignore_patterns,
                   load.use_tqdm_on_load)

    @classmethod
    def for_tokenizer(cls, model: "ModelConfig", load: "LoadConfig", revision: str | None) -> "HubOptions":
        return cls(revision, load.download_dir, model.hf_token, progress=load.use_tqdm_on_load)


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """(repo id, tag or None) if ``text`` reads as a hub id, else None."""
    match = HUB_ID.fullmatch(text)
    if match is None or text.endswith((".gguf", ".safetensors", ".bin")) or ".." in text or "--" in text:
        return None
    return match["repo"], match["tag"]


def resolve(hub_id: str, options: HubOptions, *, tokenizer_only: bool = False) -> Path:
    """The local path of ``hub_id``: a snapshot folder, or the GGUF file a tag picks.
    ``tokenizer_only`` fetches just what a tokenizer needs (a GGUF's tokenizer is inside
    the file, so a GGUF repo still gives its file)."""
    parsed = parse_hub_id(hub_id)
    if parsed is None:
        raise ModelLoadError(hub_id, "is not a Hugging Face hub id (ORG/NAME or ORG/NAME:QUANT)")
    repo, tag = parsed
    cached = _from_cache(repo, tag, options, tokenizer_only)
    if cached is not None:
        logger.info("%s: from the Hugging Face cache (%s)", hub_id, cached)
        return cached
    if not _online():
        raise ModelLoadError(hub_id, f"is not in the Hugging Face cache ({_cache_dir(options)}) and HF_HUB_OFFLINE=1 "
                                     "forbids downloading it: unset HF_HUB_OFFLINE, or run `hf download "
                                     f"{repo}` where the hub is reachable, or pass a local folder")
    return _download(hub_id, repo, tag, options, tokenizer_only)


# -- the cache -----------------------------------------------------------------------

def _from_cache(repo: str, tag: str | None, options: HubOptions, tokenizer_only: bool) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, IncompleteSnapshotError, LocalEntryNotFoundError

    patterns = [_tag_glob(tag)] if tag else options.allow_patterns
    try:
        folder = Path(snapshot_download(repo, revision=options.revision, cache_dir=options.cache_dir,
                                        local_files_only=True, allow_patterns=patterns,
                                        ignore_patterns=None if tag else options.ignore_patterns))
    except IncompleteSnapshotError as exc:
        # The cached listing names files fw may not need (another format's weights); what
        # fw needs is checked below.
        folder = Path(exc.snapshot_path)
    except LocalEntryNotFoundError:
        return None
    except HFValidationError as exc:
        raise ModelLoadError(repo, f"is not a valid hub id: {exc}") from None
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    if tag or not any(_is_config(f) for f in files):
        gguf = _pick_gguf(repo, tag, files, cached=True)
        return None if gguf is None else folder / gguf
    if tokenizer_only:
        return folder if any(f.startswith("tokenizer") for f in files) else None
    return folder if _has_weights(folder, files) else None


def _has_weights(folder: Path, files: list[str]) -> bool:
    """A complete set of weights: every shard an index names, or a single-file checkpoint."""
    import json

    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if index in files:
            try:
                shards = set(json.loads((folder / index).read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return False
            return all(shard in files for shard in shards)
    return any(f.endswith((".safetensors", ".bin", ".pt")) for f in files)


def _online() -> bool:
    from huggingface_hub import constants

    return not constants.is_offline_mode()


def _cache_dir(options: HubOptions) -> str:
    from huggingface_hub import constants

    return str(options.cache_dir or constants.HF_HUB_CACHE)


# -- the hub -------------------------------------------------------------------------

def _download(hub_id: str, repo: str, tag: str | None, options: HubOptions, tokenizer_only: bool) -> Path:
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    common = {"revision": options.revision, "cache_dir": options.cache_dir, "token": options.token,
              "tqdm_class": _progress_class(options.progress)}
    with _hub_errors(hub_id, repo, options), _quiet_http_logs():
        files = HfApi(token=options.token).list_repo_files(repo, revision=options.revision)
        if tag or not any(_is_config(f) for f in files):
            gguf = _pick_gguf(repo, tag, files, cached=False)
            logger.info("%s: downloading %s to %s", hub_id, gguf, _cache_dir(options))
            return Path(hf_hub_download(repo, gguf, **common))
        allow, ignore = options.allow_patterns, options.ignore_patterns
        if tokenizer_only:
            allow, ignore = TOKENIZER_PATTERNS, None
        elif ignore is None:
            ignore = default_ignore_patterns(files)
        logger.info("%s: downloading to %s", hub_id, _cache_dir(options))
        return Path(snapshot_download(repo, allow_patterns=allow, ignore_patterns=ignore, **common))


def default_ignore_patterns(files: list[str]) -> list[str]:
    """What fw skips in a model repo unless told: files no loader reads, and the
    pytorch/.pt copies of weights the repo also has as safetensors."""
    ignore = list(DEFAULT_IGNORE) + ["*.gguf"]
    if any(f.endswith(".safetensors") for f in files):
        ignore += ["*.bin", "*.pt"]
    return ignore


class _hub_errors:
    """Turns huggingface_hub's errors into one ModelLoadError line saying what to do."""

    def __init__(self, hub_id: str, repo: str, options: HubOptions):
        self.hub_id, self.repo, self.options = hub_id, repo, options

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, traceback) -> bool:
        if exc is None or isinstance(exc, ModelLoadError):
            return False
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

        if isinstance(exc, GatedRepoError):
            problem = "is a gated repo: accept its terms on the hub and pass --hf-token (or set HF_TOKEN)"
        elif isinstance(exc, RepositoryNotFoundError):
            problem = ("neither a local file or folder nor a model on the hub (a private repo needs --hf-token "
                       "or HF_TOKEN)")
        elif isinstance(exc, RevisionNotFoundError):
            problem = f"the hub has no revision {self.options.revision!r} of it (a branch, tag or commit id)"
        elif isinstance(exc, HfHubHTTPError):
            problem = f"the hub refused the download: {_first_line(exc)}"
        elif isinstance(exc, (OSError, ConnectionError)) or type(exc).__module__.startswith("httpx"):
            problem = (f"cannot reach the Hugging Face hub ({type(exc).__name__}: {_first_line(exc)}) and it is not "
                       f"in the cache ({_cache_dir(self.options)}); check the network or HF_ENDPOINT, or pass a "
                       "local folder")
        else:
            return False
        raise ModelLoadError(self.hub_id, problem) from exc


@contextlib.contextmanager
def _quiet_http_logs() -> Iterator[None]:
    """Hide the HTTP clients' INFO line per request while downloading (the bars show progress)."""
    loggers = [logging.getLogger(name) for name in ("httpx2", "httpx")]
    levels = [one.level for one in loggers]
    for one in loggers:
        one.setLevel(max(one.level, logging.WARNING))
    try:
        yield
    finally:
        for one, level in zip(loggers, levels):
            one.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _progress_class(enabled: bool) -> type:
    """A plain tqdm class (huggingface_hub's own hides its bars when stderr is not a
    terminal, e.g. in a service log); silent with --no-use-tqdm-on-load."""
    from tqdm.auto import tqdm

    class DownloadProgress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = not enabled
            super().__init__(*args, **kwargs)

    return DownloadProgress


# -- GGUF repos ----------------------------------------------------------------------

def _is_config(name: str) -> bool:
    return name == "config.json"


def _tag_glob(tag: str) -> str:
    """``*Q4_K_M*.gguf`` matching any case (fnmatch is case-sensitive on Linux)."""
    letters = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.sub(r"([*?\[])", r"[\1]", c) for c in tag)
    return f"*{letters}*.gguf"


def _pick_gguf(repo: str, tag: str | None, files: list[str], *, cached: bool) -> str | None:
    """The GGUF file ``tag`` names; without a tag, the one tagged ``DEFAULT_TAG``, else
    the only one. Among cached ``files``, None when it is not there; among the hub's, an
    error naming the repo's tags when it is not one file."""
    ggufs = [f for f in files if f.endswith(".gguf") and "mmproj" not in f.lower()]
    wanted = tag or DEFAULT_TAG
    matching = [f for f in ggufs if fnmatch.fnmatch(f, _tag_glob(wanted))]
    if tag is None and not matching and len(ggufs) == 1 and not (cached and _online()):
        matching = ggufs  # the repo's only file (in the cache, only offline: the hub may hold more)
    if len(matching) == 1:
        return matching[0]
    if cached:
        return None
    if not ggufs:
        raise ModelLoadError(repo, "holds neither a config.json nor a .gguf file, so fw cannot load it")
    split = [f for f in matching if re.search(r"-\d{5}-of-\d{5}\.gguf$", f)]
    if matching and len(split) == len(matching):
        raise ModelLoadError(repo, f"stores {wanted} split over {len(split)} files; fw's GGUF loader reads "
                                   "single files (merge them with llama-gguf-split --merge)")
    tags = sorted({_tag_of(f) for f in ggufs})
    if matching:
        raise ModelLoadError(repo, f"has several GGUF files matching {wanted!r}: {', '.join(matching)}")
    named = f"no GGUF file tagged {wanted!r}" if tag else f"several GGUF files and none tagged {DEFAULT_TAG}"
    raise ModelLoadError(repo, f"{named}; name one as {repo}:TAG, with TAG one of {', '.join(tags)}")


def _tag_of(name: str) -> str:
    """``SmolLM2-135M-Instruct.Q4_K_M.gguf`` -> ``Q4_K_M``, the usual last part of the name."""
    stem = Path(name).name.removesuffix(".gguf")
    match = re.search(r"(?i)(?:^|[.\-_])((?:I?Q\d[\w]*?|F16|F32|BF16))$", stem)
    return match.group(1) if match else stem
