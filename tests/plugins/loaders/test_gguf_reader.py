"""Malformed and truncated GGUF files: each gives a ModelLoadError naming the file and
what is wrong with it, never a struct/numpy error."""

from __future__ import annotations

import struct

import pytest

from fw.errors import ModelLoadError
from fw_builtins.loaders.gguf_reader import GGUFFile
from tests.plugins.loaders.helpers import loader_for
from tests.tiny_gguf import make_tiny_gguf


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(*, magic=b"GGUF", version=3, kv=(), tensors=(), tensor_count=None, data=b"") -> bytes:
    """A GGUF file from parts: kv is (key, type id, packed value); tensors are
    (name, shape, ggml type, offset)."""
    out = magic + struct.pack("<IQQ", version, len(tensors) if tensor_count is None else tensor_count, len(kv))
    for key, value_type, value in kv:
        out += _string(key) + struct.pack("<I", value_type) + value
    for name, shape, ggml_type, offset in tensors:
        out += _string(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
        out += struct.pack("<IQ", ggml_type, offset)
    return out + b"\0" * (-len(out) % 32) + data


ARCH = ("general.architecture", 8, _string("llama"))


def test_a_well_formed_handmade_file_parses(tmp_path):
    path = tmp_path / "ok.gguf"
    path.write_bytes(gguf_bytes(kv=[ARCH, ("n", 4, struct.pack("<I", 7))],
                                tensors=[("t.weight", (4, 2), 0, 0)], data=b"\0" * 32))
    gguf = GGUFFile(path)
    assert gguf.metadata == {"general.architecture": "llama", "n": 7}
    assert gguf.tensors[0].torch_shape == (2, 4) and gguf.tensors[0].nbytes == 32


@pytest.mark.parametrize("content, problem", [
    (b"GGUF", "not a GGUF file: only 4 bytes"),
    (gguf_bytes(magic=b"GGML"), "not a GGUF file: it starts with b'GGML'"),
    (gguf_bytes(version=1), "GGUF version 1; fw reads versions 2 and 3"),
    (gguf_bytes(version=3 << 24), r"a big-endian file\?"),
    (gguf_bytes(tensor_count=1 << 40), "malformed header: claims 1099511627776 tensor entries"),
    (gguf_bytes(kv=[ARCH])[:60], "truncated or malformed: reading metadata 'general.architecture'"),
    (gguf_bytes(kv=[("x", 42, b"\0" * 8)]), "metadata 'x' has unknown value type 42"),
    (gguf_bytes(kv=[("general.alignment", 4, struct.pack("<I", 3))]), "general.alignment is 3"),
    (gguf_bytes(tensors=[("t.weight", (4, 2, 1, 1, 1), 0, 0)]), "tensor 't.weight' has 5 dimensions"),
    (gguf_bytes(tensors=[("t.weight", (4,), 999, 0)], data=b"\0" * 64), "unknown ggml type 999"),
    (gguf_bytes(tensors=[("t.weight", (33,), 8, 0)], data=b"\0" * 64), "not a whole number of Q8_0 blocks"),
    (gguf_bytes(tensors=[("t.weight", (64, 64), 0, 0)], data=b"\0" * 64), "truncated: tensor 't.weight' needs"),
])
def test_malformed_file_is_named_with_its_problem(tmp_path, content, problem):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=problem) as error:
        GGUFFile(path)
    assert error.value.path == path and str(error.value).startswith(str(path))


def test_truncated_download_fails_before_any_weight_is_read(tiny_llama, tmp_path):
    path = make_tiny_gguf(tmp_path / "tiny.gguf", tiny_llama, tensor_type="Q8_0")
    path.write_bytes(path.read_bytes()[:-100])
    loader = loader_for(path)
    with pytest.raises(ModelLoadError, match=r"is truncated: tensor .*was the download cut short"):
        loader.hf_config()
    with pytest.raises(ModelLoadError, match="is truncated"):
        next(loader.iter_weights())


def test_unsupported_architecture_and_unknown_tensor(tmp_path):
    path = tmp_path / "gpt2.gguf"
    path.write_bytes(gguf_bytes(kv=[("general.architecture", 8, _string("gpt2"))]))
    with pytest.raises(ModelLoadError, match="holds a 'gpt2' model; fw's GGUF loader reads llama, qwen2, qwen3"):
        loader_for(path).hf_config()
    path = tmp_path / "odd.gguf"
    path.write_bytes(gguf_bytes(tensors=[("blk.0.mystery.weight", (4,), 0, 0)], data=b"\0" * 32))
    with pytest.raises(ModelLoadError, match="holds tensor 'blk.0.mystery.weight'"):
        loader_for(path, "gguf").hf_name("blk.0.mystery.weight")
