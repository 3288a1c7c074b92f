"""GPT.decode_step, the engine's one-token-per-row forward: the same logits as GPT.forward through the
engine's slot pool, for every architecture option, rows at different lengths, and weights that change."""

from __future__ import annotations

import pytest
import torch

from colossus.infer.kv_pool import SlotPool
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT

SHAPES = {
    "gqa-relu2-qknorm": dict(n_kv_head=2, mlp="relu2", qk_norm=True),
    "mha-swiglu-qknorm": dict(n_kv_head=4, mlp="swiglu", qk_norm=True),
    "mqa-swiglu-plain": dict(n_kv_head=1, mlp="swiglu", qk_norm=False),
    # what imported families add
    "moe-swiglu": dict(n_kv_head=2, mlp="swiglu", qk_norm=False, n_experts=4, experts_per_token=2),
    "window-qkvbias": dict(n_kv_head=2, mlp="swiglu", qk_norm=False, sliding_window=6, qkv_bias=True),
    "yarn-tied-headsize": dict(n_kv_head=2, mlp="swiglu", head_size=24, tie_embeddings=True, rope_scaling=dict(
        rope_type="yarn", factor=4.0, original_max_position_embeddings=16)),
}


def random_model(**kw) -> GPT:
    """Every weight random (the zero-initialised projections and unit norms would hide mistakes)."""
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=300, seq_len=64, n_layer=2, d_model=64, n_head=4, **kw))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m.eval()


def prefill(m: GPT, pools: list[SlotPool], prompts: list[torch.Tensor]) -> None:
    for slot, prompt in enumerate(prompts):
        for pool in pools:
            m(prompt[None], cache=pool.prefill_view(slot, 0, len(prompt)), positions=torch.arange(len(prompt)))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lengths", [[7], [5, 5], [5, 11, 3]])  # one row; equal lengths (no mask); ragged
def test_decode_step_matches_forward(shape, lengths):
    m = random_model(**SHAPES[shape])
    a, b = SlotPool(m.cfg, 4, 64), SlotPool(m.cfg, 4, 64)
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        prefill(m, [a, b], [torch.randint(0, 300, (n,), generator=g) for n in lengths])
        pos = list(lengths)
        for _ in range(5):
            tokens = torch.randint(0, 300, (len(pos),), generator=g)
            va, vb = a.decode_view(pos), b.decode_view(pos)
            want = m(tokens[:, None], cache=va, positions=va.positions[:, None])[:, -1]
            got = m.decode_step(tokens, vb.positions, vb)
            assert got.shape == (len(pos), 300) and got.dtype == torch.float32
            assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
            pos = [p + 1 for p in pos]
        assert torch.allclose(a.k, b.k, atol=1e-5) and torch.allclose(a.v, b.v, atol=1e-5)  # the same cache


def test_packed_weights_follow_parameter_changes():
    m = random_model(n_kv_head=2)
    pool = SlotPool(m.cfg, 1, 64)
    prompt = torch.arange(6)
    tokens = torch.tensor([7])

    def step() -> torch.Tensor:
        prefill(m, [pool], [prompt])
        view = pool.decode_view([6])
        return m.decode_step(tokens, view.positions, view)

    with torch.inference_mode():
        before = step()
        assert m.decode_weights() is m.decode_weights()  # packed once, not per step
    with torch.no_grad():
        m.blocks[1].mlp.down.weight.mul_(2.0)  # in place, as an optimizer step
    with torch.inference_mode():
        after = step()
        view = pool.decode_view([6])
        want = m(tokens[:, None], cache=view, positions=view.positions[:, None])[:, -1]
    assert not torch.allclose(before, after)
    assert torch.allclose(after, want, atol=1e-4)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["lm_head.weight"].zero_()
    m.load_state_dict(state)
    with torch.inference_mode():
        assert step().abs().max() == 0  # the head is all zeros now
        packed = m.decode_weights()
        m.double()  # new storage for every parameter
        assert m.decode_weights() is not packed and m.decode_weights().head.dtype == torch.float64


def test_rope_table_grows_past_the_trained_length():
    m = random_model(n_kv_head=2)
    a, b = SlotPool(m.cfg, 1, 200), SlotPool(m.cfg, 1, 200)
    g = torch.Generator().manual_seed(2)
    with torch.inference_mode():
        prefill(m, [a, b], [torch.randint(0, 300, (100,), generator=g)])  # seq_len is 64
        va, vb = a.decode_view([100]), b.decode_view([100])
        tokens = torch.tensor([5])
        want = m(tokens[:, None], cache=va, positions=va.positions[:, None])[:, -1]
        assert torch.allclose(m.decode_step(tokens, vb.positions, vb), want, atol=1e-4)
