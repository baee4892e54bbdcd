"""The mixture-of-experts MLP: its result is each token's top-k experts' outputs weighted by
the router's softmax (renormalised or not), plus the gated shared expert; a step's tokens
are grouped by expert so each expert runs once per step; fw's C kernel gives a token the
same result whatever other tokens share the step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fw.layers.mlp import GatedMLP
from fw.layers.moe import MixtureOfExperts
from fw.models.interface import ModelContext
from fw_kernels import cpu

HIDDEN, INTER, EXPERTS, TOP_K, SHARED = 64, 96, 6, 2, 160


def make_moe(dtype=torch.float32, quantization=None, *, renormalize=True, shared=False, seed=0) -> MixtureOfExperts:
    ctx = ModelContext(dtype=dtype, device=torch.device("cpu"), attention_backend=None, quantization=quantization)
    moe = MixtureOfExperts(HIDDEN, INTER, EXPERTS, TOP_K, ctx, renormalize=renormalize,
                           shared_intermediate=SHARED if shared else 0, shared_gate=shared)
    generator = torch.Generator().manual_seed(seed)
    for param in moe.parameters():
        param.data.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    for module in moe.modules():
        if module is not moe and callable(getattr(module, "post_load", None)):
            module.post_load()
    return moe


def expert_weights(mlp: GatedMLP) -> tuple[torch.Tensor, torch.Tensor]:
    return mlp.gate_up_proj.packed.dequantize(), mlp.down_proj.packed.dequantize()


def one_token_at_a_time(moe: MixtureOfExperts, x: torch.Tensor) -> torch.Tensor:
    """The definition, token by token, in float32 from the weights the layouts hold."""
    def mlp(weights, row):
        gate, up = (row @ weights[0].T).chunk(2)
        return (F.silu(gate) * up) @ weights[1].T

    router = moe.gate.weight.float()
    out = []
    for row in x.float():
        probs = (router @ row).softmax(-1)
        weights, ids = probs.topk(moe.top_k)
        if moe.renormalize:
            weights = weights / weights.sum()
        total = sum(w * mlp(expert_weights(moe.experts[i]), row) for w, i in zip(weights, ids.tolist()))
        if moe.shared_expert is not None:
            gate = torch.sigmoid(moe.shared_expert_gate.weight.float()[0] @ row)
            total = total + gate * mlp(expert_weights(moe.shared_expert), row)
        out.append(total)
    return torch.stack(out)


@pytest.mark.parametrize("renormalize", [True, False])
@pytest.mark.parametrize("shared", [False, True])
def test_grouped_experts_give_the_per_token_definition(renormalize, shared):
    moe = make_moe(renormalize=renormalize, shared=shared)
    assert moe.fused() is None  # float32 plain weights: the torch path
    x = torch.randn(37, HIDDEN)
    expected = one_token_at_a_time(moe, x)
    torch.testing.assert_close(moe(x), expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def test_each_expert_runs_once_per_step_on_all_its_tokens(monkeypatch):
    moe = make_moe()
    calls = []
    original = GatedMLP.run_in_step

    def spy(self, x, step_rows):
        calls.append((list(moe.experts).index(self), x.shape[0], step_rows))
        return original(self, x, step_rows)

    monkeypatch.setattr(GatedMLP, "run_in_step", spy)
    x = torch.randn(40, HIDDEN)
    moe(x)
    _, ids = moe.route(x)
    counts = torch.bincount(ids.flatten(), minlength=EXPERTS).tolist()
    assert calls == [(e, n, 40) for e, n in enumerate(counts) if n]
    assert sum(n for _, n, _ in calls) == 40 * TOP_K


needs_kernels = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shared", [False, True])
def test_the_c_kernel_computes_the_definition(dtype, shared):
    from fw_builtins.quantization.int4 import Int4WeightOnly

    moe = make_moe(dtype, Int4WeightOnly(), shared=shared)
    assert moe.fused() is not None
    x = torch.randn(6, HIDDEN).to(dtype)
    expected = one_token_at_a_time(moe, x)
    tolerance = 1e-4 if dtype == torch.float32 else 0.05
    torch.testing.assert_close(moe(x).float(), expected, rtol=tolerance, atol=tolerance * expected.abs().max())


@needs_kernels
def test_a_tokens_result_does_not_depend_on_the_tokens_beside_it():
    from fw_builtins.quantization.int4 import Int4WeightOnly

    moe = make_moe(torch.bfloat16, Int4WeightOnly(), shared=True)
    x = torch.randn(8, HIDDEN).to(torch.bfloat16)
    together = moe(x)
    for i in range(8):
        assert torch.equal(moe(x[i:i + 1]), together[i:i + 1])


def test_top_k_beyond_the_experts_is_refused():
    ctx = ModelContext(dtype=torch.float32, device=torch.device("cpu"), attention_backend=None)
    with pytest.raises(ValueError, match="num_experts_per_tok 5 must be between 1 and the 4 experts"):
        MixtureOfExperts(HIDDEN, INTER, 4, 5, ctx, renormalize=True)
