import pytest
import torch

from colossus.errors import ColossusError
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT, apply_rope
from colossus.model.io import load_model, resolve_model_dir, save_model
from colossus.model.kv_cache import KVCache
from colossus.model.rope import rope_tables


def model(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(**{"vocab_size": 100, "seq_len": 32, "n_layer": 2, "d_model": 32, "n_head": 4,
                         "n_kv_head": 2, **kw})
    m = GPT(cfg)
    with torch.no_grad():  # the output projections start at zero; perturb them so layers matter
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return m.eval()


def test_forward_shapes_and_loss():
    m = model()
    x = torch.randint(0, 100, (3, 10))
    assert m(x).shape == (3, 10, 100)
    loss = m(x, x)
    assert loss.ndim == 0 and loss.item() > 0


def test_loss_mask_selects_targets():
    m = model()
    x = torch.randint(0, 100, (2, 8))
    y = torch.randint(0, 100, (2, 8))
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, 3] = True
    full = torch.nn.functional.cross_entropy(m(x).view(-1, 100), y.view(-1), reduction="none").view(2, 8)
    assert torch.allclose(m(x, y, mask), full[:, 3].mean(), atol=1e-5)


def test_a_sliding_window_hides_the_keys_before_it():
    m = model(sliding_window=4)
    x = torch.randint(0, 100, (1, 12))
    y = x.clone()
    y[0, :3] = (y[0, :3] + 1) % 100  # positions 0-2: outside the window of every query from 6 on, in every layer
    out_x, out_y = m(x), m(y)
    assert not torch.allclose(out_x[0, 3:6], out_y[0, 3:6])  # within two layers' reach
    assert torch.allclose(out_x[0, 9:], out_y[0, 9:], atol=1e-5)  # n_layer windows of 4 reach back 2 * 3 = 6


def test_attention_is_causal():
    m = model()
    x = torch.randint(0, 100, (1, 12))
    y = x.clone()
    y[0, 8:] = (y[0, 8:] + 1) % 100
    assert torch.allclose(m(x)[0, :8], m(y)[0, :8], atol=1e-5)
    assert not torch.allclose(m(x)[0, 8:], m(y)[0, 8:])


@pytest.mark.parametrize("mlp, window", [("relu2", 0), ("swiglu", 0), ("swiglu", 4)])
def test_kv_cache_matches_full_forward(mlp, window):
    m = model(mlp=mlp, sliding_window=window)
    x = torch.randint(0, 100, (2, 14))
    full = m(x)
    cache = KVCache(m.cfg, 2, 20)
    parts = [m(x[:, :6], cache=cache), m(x[:, 6:9], cache=cache)]
    parts += [m(x[:, i: i + 1], cache=cache) for i in range(9, 14)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-4)
    with pytest.raises(ValueError, match="full"):
        m(torch.randint(0, 100, (2, 7)), cache=cache)


def test_rope_rotation_preserves_norm_and_depends_on_relative_position():
    q = torch.randn(1, 1, 1, 8)
    k = torch.randn(1, 1, 1, 8)

    def rot(x, pos):
        cos, sin = rope_tables(8, torch.tensor([pos]), 10000.0)
        return apply_rope(x, cos, sin)

    assert torch.allclose(rot(q, 5).norm(), q.norm(), atol=1e-5)
    d1 = (rot(q, 7) * rot(k, 3)).sum()
    d2 = (rot(q, 14) * rot(k, 10)).sum()
    assert torch.allclose(d1, d2, atol=1e-4)


def test_gqa_has_fewer_kv_params_than_mha():
    assert model(n_kv_head=1).num_params() < model(n_kv_head=4).num_params()


def test_params_and_flops():
    m = model()
    emb = m.embed.weight.numel()
    assert m.num_params() - m.num_params(embedding=False) == emb
    assert m.flops_per_token() > 6 * m.num_params(embedding=False)


def test_embeddings_are_untied():
    m = model()
    assert m.embed.weight.data_ptr() != m.lm_head.weight.data_ptr()


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ColossusError, match="divisible"):
        ModelConfig(d_model=30, n_head=4)
    with pytest.raises(ColossusError, match="n_kv_head"):
        ModelConfig(d_model=32, n_head=4, n_kv_head=3)
    with pytest.raises(ColossusError, match="mlp"):
        ModelConfig(mlp="gelu")


def test_save_load_roundtrip_and_errors(tmp_path):
    m = model()
    save_model(tmp_path / "model", m)
    again = load_model(tmp_path / "model")
    x = torch.randint(0, 100, (1, 5))
    assert torch.equal(m(x), again(x))
    assert resolve_model_dir(tmp_path) == tmp_path / "model"  # a run directory holding model/
    with pytest.raises(ColossusError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "model" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ColossusError, match="corrupt"):
        load_model(tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text("{")
    with pytest.raises(ColossusError, match="not valid JSON"):
        load_model(tmp_path / "model")


def test_from_depth_derives_width_and_heads():
    c = ModelConfig.from_depth(4, vocab_size=1000, seq_len=64)
    assert (c.n_layer, c.d_model) == (4, 256) and c.d_model % c.n_head == 0
